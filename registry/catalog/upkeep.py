"""Keeping catalog and storage true to each other: ``fsck`` and ``gc``.

Invariants: every file a version lists has a blob row; every blob row's bytes are in
storage with that size (and, with ``deep``, that sha256). Blobs in storage that no
version references are left by interrupted pushes; gc removes them once they are older
than a grace period, so a push in progress (which uploads, then commits within the grace
period, and touches any old unreferenced blob it reuses) never loses a blob.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from registry.db import models as m
from registry.db.database import Database
from registry.errors import BlobNotFound
from registry.storage.base import BlobStore


@dataclass
class FsckReport:
    versions: int = 0
    files: int = 0
    blobs: int = 0
    missing: list[str] = field(default_factory=list)  # referenced, not in storage
    wrong_size: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # bytes do not hash to the key (deep)
    unreferenced: list[str] = field(default_factory=list)  # in storage, no version uses it
    damaged_versions: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_size or self.corrupt)

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, **self.__dict__}


def fsck(db: Database, store: BlobStore, *, deep: bool = False, repair: bool = False) -> FsckReport:
    """Check the catalog against storage. With ``repair``, damaged blobs are deleted from
    storage so that pushing the same files again re-uploads them (the versions that use
    them are listed in ``damaged_versions``; their metadata is never rewritten)."""
    report = FsckReport()
    with db.read() as s:
        registered = dict(s.execute(select(m.Blob.sha256, m.Blob.size)).all())
        uses: dict[str, set[str]] = {}
        rows = s.execute(
            select(m.Namespace.name, m.Adapter.name, m.AdapterVersion.number, m.VersionFile.sha256)
            .join(m.AdapterVersion, m.AdapterVersion.id == m.VersionFile.version_id)
            .join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
            .join(m.Namespace, m.Namespace.id == m.Adapter.namespace_id)
        ).all()
        for ns, name, number, sha in rows:
            uses.setdefault(sha, set()).add(f"{ns}/{name}:{number}")
            report.files += 1
        report.versions = len({ref for refs in uses.values() for ref in refs})
    stored = {b.sha256: b.size for b in store.list_blobs()}
    report.blobs = len(stored)
    for sha, size in sorted(registered.items()):
        if sha not in stored:
            report.missing.append(sha)
        elif stored[sha] != size:
            report.wrong_size.append(sha)
        elif deep and _digest(store, sha) != sha:
            report.corrupt.append(sha)
    for sha in sorted(uses):
        if sha not in registered and sha not in report.missing:
            report.missing.append(sha)  # a file row without a blob row: never written so
    report.unreferenced = sorted(set(stored) - set(registered))
    bad = set(report.missing) | set(report.wrong_size) | set(report.corrupt)
    report.damaged_versions = sorted({ref for sha in bad for ref in uses.get(sha, ())})
    if repair:
        for sha in sorted(set(report.wrong_size) | set(report.corrupt)):
            store.delete(sha)
            report.repaired.append(f"deleted damaged blob {sha}; push the same files again")
    return report


def _digest(store: BlobStore, sha256: str) -> str:
    h = hashlib.sha256()
    try:
        for chunk in store.iter_bytes(sha256):
            h.update(chunk)
    except BlobNotFound:
        return ""
    return h.hexdigest()


@dataclass
class GcReport:
    deleted: list[str] = field(default_factory=list)
    kept_recent: int = 0
    referenced: int = 0
    bytes_freed: int = 0
    dry_run: bool = False


def gc(
    db: Database,
    store: BlobStore,
    *,
    grace: timedelta = timedelta(hours=24),
    dry_run: bool = False,
    now: datetime | None = None,
) -> GcReport:
    """Delete blobs no version references and that are older than ``grace``."""
    now = now or datetime.now(UTC)
    report = GcReport(dry_run=dry_run)
    candidates = list(store.list_blobs())
    with db.read() as s:
        registered = set(s.scalars(select(m.Blob.sha256)))
    for blob in candidates:
        if blob.sha256 in registered:
            report.referenced += 1
            continue
        modified = blob.modified if blob.modified.tzinfo else blob.modified.replace(tzinfo=UTC)
        if now - modified < grace:
            report.kept_recent += 1
            continue
        # Re-read the registry right before deleting: a push may have just committed it.
        with db.read() as s:
            if s.get(m.Blob, blob.sha256) is not None:
                report.referenced += 1
                continue
        if not dry_run:
            store.delete(blob.sha256)
        report.deleted.append(blob.sha256)
        report.bytes_freed += blob.size
    return report

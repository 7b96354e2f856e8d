"""Keeping catalog and storage true to each other: ``fsck`` and ``gc``.

Invariants: every file a version lists has a blob row; every blob row's bytes are in
storage with that size (and, with ``deep``, readable and hashing to their name). Blobs in
storage that no version references are left by interrupted pushes; gc removes them once
they are older than a grace period and no upload row was touched within it, so a push in
progress (which uploads, then commits within the grace period, and touches the upload row
of any old unreferenced blob it reuses) never loses a blob. Interrupted writers also leave
temp files, staged or unfinished uploads and server spool files ("leftovers"): fsck
reports them, gc removes those older than the grace period whose writer is not running.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select

from registry.db import models as m
from registry.db.database import Database
from registry.errors import BlobNotFound, LoraregError
from registry.storage.base import BlobStore, Leftover, pid_alive
from registry.storage.spool import Spool


@dataclass
class DamagedBlob:
    sha256: str
    problem: str  # missing, wrong size, corrupt, unreadable
    detail: str
    versions: list[str]  # ns/name:N that use it
    paths: list[str]  # the file names it has in those versions


@dataclass
class FsckReport:
    versions: int = 0
    files: int = 0
    blobs: int = 0
    missing: list[str] = field(default_factory=list)  # referenced, not in storage
    wrong_size: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)  # bytes do not hash to the key (deep)
    unreadable: list[str] = field(default_factory=list)  # storage fails to serve it (deep)
    unreferenced: list[str] = field(default_factory=list)  # in storage, no version uses it
    damaged: list[DamagedBlob] = field(default_factory=list)  # every blob above, with users
    damaged_versions: list[str] = field(default_factory=list)
    leftovers: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> summary
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_size or self.corrupt or self.unreadable)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"ok": self.ok, **self.__dict__}
        out["damaged"] = [d.__dict__ for d in self.damaged]
        return out


def fsck(
    db: Database,
    store: BlobStore,
    *,
    deep: bool = False,
    repair: bool = False,
    spool: Spool | None = None,
    now: datetime | None = None,
) -> FsckReport:
    """Check the catalog against storage; every damaged blob is listed (a blob that cannot
    be read never stops the check). With ``repair``, damaged blobs are deleted from storage
    so that pushing the same files again re-uploads them; ``repaired`` says, per blob, what
    to push (versions' metadata is never rewritten)."""
    report = FsckReport()
    with db.read() as s:
        registered = dict(s.execute(select(m.Blob.sha256, m.Blob.size)).all())
        uses: dict[str, set[str]] = {}
        paths: dict[str, set[str]] = {}
        rows = s.execute(
            select(
                m.Namespace.name,
                m.Adapter.name,
                m.AdapterVersion.number,
                m.VersionFile.sha256,
                m.VersionFile.path,
            )
            .join(m.AdapterVersion, m.AdapterVersion.id == m.VersionFile.version_id)
            .join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
            .join(m.Namespace, m.Namespace.id == m.Adapter.namespace_id)
        ).all()
        for ns, name, number, sha, path in rows:
            uses.setdefault(sha, set()).add(f"{ns}/{name}:{number}")
            paths.setdefault(sha, set()).add(path)
            report.files += 1
        report.versions = len({ref for refs in uses.values() for ref in refs})
    stored = {b.sha256: b.size for b in store.list_blobs()}
    report.blobs = len(stored)
    problems: dict[str, tuple[str, str]] = {}
    for sha, size in sorted(registered.items()):
        if sha not in stored:
            problems[sha] = ("missing", "not in storage")
        elif stored[sha] != size:
            problems[sha] = ("wrong size", f"{stored[sha]} bytes stored, {size} registered")
        elif deep:
            try:
                actual = _digest(store, sha)
            except LoraregError as exc:
                problems[sha] = ("unreadable", exc.message)
                continue
            if actual != sha:
                problems[sha] = ("corrupt", f"bytes hash to {actual}")
    for sha in sorted(uses):
        if sha not in registered and sha not in problems:
            problems[sha] = ("missing", "no blob row")  # a file row without one: never so
    lists = {
        "missing": report.missing,
        "wrong size": report.wrong_size,
        "corrupt": report.corrupt,
        "unreadable": report.unreadable,
    }
    for sha, (problem, detail) in sorted(problems.items()):
        lists[problem].append(sha)
        report.damaged.append(
            DamagedBlob(
                sha256=sha,
                problem=problem,
                detail=detail,
                versions=sorted(uses.get(sha, ())),
                paths=sorted(paths.get(sha, ())),
            )
        )
    report.unreferenced = sorted(set(stored) - set(registered))
    report.damaged_versions = sorted({v for d in report.damaged for v in d.versions})
    report.leftovers = _summarise(_leftovers(store, spool), now or datetime.now(UTC))
    if repair:
        for d in report.damaged:
            if d.problem != "missing":
                store.delete(d.sha256)
            report.repaired.append(_how_to_restore(d))
    return report


def _how_to_restore(d: DamagedBlob) -> str:
    names = " or ".join(d.paths) or "it"
    repos = sorted({v.rsplit(":", 1)[0] for v in d.versions})
    push = "; ".join(f"lorareg push DIR {r}" for r in repos) or "lorareg push DIR REPO"
    done = "deleted the damaged copy of" if d.problem != "missing" else "missing:"
    return (
        f"{done} blob {d.sha256} ({d.problem}, used by {', '.join(d.versions) or 'no version'}):"
        f" restore it by pushing a folder that holds the original {names} again ({push})"
    )


def _digest(store: BlobStore, sha256: str) -> str:
    h = hashlib.sha256()
    try:
        for chunk in store.iter_bytes(sha256):
            h.update(chunk)
    except BlobNotFound:
        return ""
    return h.hexdigest()


def _leftovers(store: BlobStore, spool: Spool | None) -> Iterator[Leftover]:
    yield from store.list_leftovers()
    if spool is not None:
        yield from spool.leftovers()


def _summarise(items: Iterator[Leftover], now: datetime) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for item in items:
        s = out.setdefault(item.kind, {"count": 0, "bytes": 0, "oldest_age_s": 0.0})
        s["count"] += 1
        s["bytes"] += item.size
        s["oldest_age_s"] = max(s["oldest_age_s"], _age(item.modified, now).total_seconds())
    return out


def _age(modified: datetime, now: datetime) -> timedelta:
    return now - (modified if modified.tzinfo else modified.replace(tzinfo=UTC))


@dataclass
class GcReport:
    deleted: list[str] = field(default_factory=list)
    kept_recent: int = 0
    referenced: int = 0
    bytes_freed: int = 0
    leftovers_removed: list[str] = field(default_factory=list)
    leftover_bytes_freed: int = 0
    leftovers_kept: int = 0  # younger than the grace period, or their writer runs
    uploads_expired: int = 0
    dry_run: bool = False


def gc(
    db: Database,
    store: BlobStore,
    *,
    grace: timedelta = timedelta(hours=24),
    dry_run: bool = False,
    now: datetime | None = None,
    spool: Spool | None = None,
) -> GcReport:
    """Delete blobs no version references, older than ``grace`` and not reused within it;
    remove leftovers older than ``grace`` (abort unfinished uploads, delete temp, staged
    and spool files of writers that no longer run); forget upload rows older than it."""
    now = now or datetime.now(UTC)
    cutoff = now - grace
    report = GcReport(dry_run=dry_run)
    candidates = list(store.list_blobs())
    with db.read() as s:
        registered = set(s.scalars(select(m.Blob.sha256)))
        fresh = set(s.scalars(select(m.Upload.sha256).where(m.Upload.touched_at > cutoff)))
    for blob in candidates:
        if blob.sha256 in registered:
            report.referenced += 1
            continue
        if _age(blob.modified, now) < grace or blob.sha256 in fresh:
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
    _remove_leftovers(store, spool, report, grace=grace, now=now)
    if not dry_run:
        with db.write() as s:
            gone = s.execute(delete(m.Upload).where(m.Upload.touched_at <= cutoff))
            report.uploads_expired = int(gone.rowcount or 0)  # type: ignore[attr-defined]
    return report


def _remove_leftovers(
    store: BlobStore, spool: Spool | None, report: GcReport, *, grace: timedelta, now: datetime
) -> None:
    for item in list(_leftovers(store, spool)):
        if _age(item.modified, now) < grace or (item.pid is not None and pid_alive(item.pid)):
            report.leftovers_kept += 1
            continue
        if not report.dry_run:
            if item.kind == "spool file" and spool is not None:
                spool.remove(item)
            else:
                store.remove_leftover(item)
        report.leftovers_removed.append(f"{item.kind} {item.name}")
        report.leftover_bytes_freed += item.size

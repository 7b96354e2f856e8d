"""Keeping regional copies true to the catalog: ``fsck --regions`` and regional gc
(issue 20; the regional half of an erasure is ``registry.catalog.region_upkeep``).

``blob_replicas`` says which copies a region holds. fsck reads every copy a region is said
to hold, streamed, and hashes it: a copy that is not there, has the wrong size or does not
hash to its name is reported and its row goes back to ``missing`` (needed again now),
so it is no longer served from that region and replication copies it again; a damaged
copy is deleted first. A blob of a version with no row for a region at all
(pushed before the region was configured) gets one. Network reads happen outside any
transaction; the rows change in short writes at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from registry.db import models as m
from registry.db.database import Database
from registry.errors import BlobNotFound, LoraregError
from registry.regions.copies import adopt_unrecorded, mark_missing_again
from registry.storage.base import BlobStore


class RegionalProblem(BaseModel):
    model_config = ConfigDict(frozen=True)

    region: str
    sha256: str
    problem: str  # missing, wrong size, corrupt, unreadable
    detail: str


class RegionFsckReport(BaseModel):
    """What ``fsck --regions`` found per region; every problem's copy is needed again."""

    regions: dict[str, int]  # region -> copies verified (bytes read and hashed)
    problems: list[RegionalProblem]
    untracked: dict[str, int]  # region -> blobs that had no row there (now needed)
    unreachable: dict[str, str]  # region -> why its store could not be listed

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unreachable


def fsck_regions(
    db: Database, stores: Mapping[str, BlobStore], *, repair: bool = True
) -> RegionFsckReport:
    """Verify every copy each region in ``stores`` (the non-primary regions) is said to
    hold; with ``repair`` (the default), damaged copies are deleted and every problem's
    row is set back to ``missing`` so replication fills it again."""
    with db.read() as s:
        sizes = {sha: size for sha, size in s.execute(select(m.Blob.sha256, m.Blob.size))}
        used = set(s.scalars(select(m.VersionFile.sha256).distinct()))
        claimed: dict[str, set[str]] = {r: set() for r in stores}
        tracked: dict[str, set[str]] = {r: set() for r in stores}
        for sha, region, state in s.execute(
            select(m.BlobReplica.sha256, m.BlobReplica.region, m.BlobReplica.state).where(
                m.BlobReplica.region.in_(list(stores))
            )
        ):
            tracked[region].add(sha)
            if state == "present":
                claimed[region].add(sha)
    verified: dict[str, int] = {}
    problems: list[RegionalProblem] = []
    unreachable: dict[str, str] = {}
    for region, store in sorted(stores.items()):
        verified[region] = 0
        try:
            listed = {b.sha256: b.size for b in store.list_blobs()}
        except LoraregError as exc:
            unreachable[region] = exc.message
            continue
        for sha in sorted(claimed[region]):
            found = _check(store, sha, sizes.get(sha), listed)
            if found is None:
                verified[region] += 1
                continue
            problems.append(
                RegionalProblem(region=region, sha256=sha, problem=found[0], detail=found[1])
            )
    untracked = {r: sorted(used - tracked[r]) for r in stores if r not in unreachable}
    if repair:
        for p in problems:
            if p.problem in ("wrong size", "corrupt"):
                # On failure it is still not served: its row is no longer present.
                with contextlib.suppress(LoraregError):
                    stores[p.region].delete(p.sha256)
        for p in problems:
            mark_missing_again(db, p.sha256, p.region)
        adopt_unrecorded(db, [r for r, shas in untracked.items() if shas], limit=1_000_000)
    return RegionFsckReport(
        regions=verified,
        problems=problems,
        untracked={r: len(v) for r, v in untracked.items() if v},
        unreachable=unreachable,
    )


def _check(
    store: BlobStore, sha: str, size: int | None, listed: dict[str, int]
) -> tuple[str, str] | None:
    """None when the copy is there, of the registered size, and hashes to its name."""
    if sha not in listed:
        return "missing", "not in the regional store"
    if size is not None and listed[sha] != size:
        return "wrong size", f"{listed[sha]} bytes stored, {size} registered"
    h = hashlib.sha256()
    try:
        for chunk in store.iter_bytes(sha):
            h.update(chunk)
    except BlobNotFound:
        return "missing", "not in the regional store"
    except LoraregError as exc:
        return "unreadable", exc.message
    if h.hexdigest() != sha:
        return "corrupt", f"bytes hash to {h.hexdigest()}"
    return None


@dataclass
class RegionalGc:
    deleted: dict[str, list[str]] = field(default_factory=dict)  # region -> sha256s
    bytes_freed: int = 0
    kept_recent: int = 0
    unreachable: dict[str, str] = field(default_factory=dict)


def gc_regions(
    db: Database,
    stores: Mapping[str, BlobStore],
    *,
    grace: timedelta,
    dry_run: bool = False,
    now: datetime | None = None,
) -> RegionalGc:
    """Delete from each regional store the blobs no version references (no blob row),
    once older than ``grace``, and their rows."""
    now = now or datetime.now(UTC)
    out = RegionalGc()
    for region, store in sorted(stores.items()):
        try:
            listed = list(store.list_blobs())
        except LoraregError as exc:
            out.unreachable[region] = exc.message
            continue
        with db.read() as s:
            registered = set(s.scalars(select(m.Blob.sha256)))
        for blob in listed:
            if blob.sha256 in registered:
                continue
            modified = blob.modified if blob.modified.tzinfo else blob.modified.replace(tzinfo=UTC)
            if now - modified < grace:
                out.kept_recent += 1
                continue
            with db.read() as s:  # a push may have registered it since
                if s.get(m.Blob, blob.sha256) is not None:
                    continue
            if not dry_run:
                try:
                    store.delete(blob.sha256)
                except LoraregError:
                    continue
            out.deleted.setdefault(region, []).append(blob.sha256)
            out.bytes_freed += blob.size
    return out

"""The catalog of regional copies: what each region needs, holds and failed to get.

Every function takes the Database (or a Session, for callers already in a transaction)
and plain values, and returns plain values or ``registry.regions.models``. Leases follow
the merge jobs' pattern: a short transaction claims a row with a conditional UPDATE, the
slow copy runs outside any transaction, another short transaction records the outcome
(only while the lease is still the worker's own).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from registry.catalog.replicas import record_needed_copies
from registry.db import models as m
from registry.db.database import Database
from registry.regions.models import RegionStats, ReplicaFailure, VersionRegions
from registry.regions.stores import RegionSet

R = m.BlobReplica
MAX_ERROR = 500
# Lag percentiles are taken over this many of the most recent copies per region.
LAG_SAMPLE = 10_000
_IN_CHUNK = 500


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def record_needed(db: Database, shas: Iterable[str], regions: Sequence[str]) -> int:
    """Record that each blob needs a copy in each region (kept as is when recorded)."""
    with db.write() as s:
        return record_needed_copies(s, shas, regions)


def adopt_unrecorded(db: Database, regions: Sequence[str], *, limit: int = 1000) -> int:
    """Record the needed copies of blobs that versions use but no row names for a region:
    blobs pushed before the region was configured, or by a process that did not know it.
    At most ``limit`` per region per call; returns how many were recorded."""
    total = 0
    for region in regions:
        with db.write() as s:
            used = select(m.VersionFile.sha256).distinct()
            recorded = select(R.sha256).where(R.region == region)
            shas = list(
                s.scalars(
                    select(m.Blob.sha256)
                    .where(m.Blob.sha256.in_(used), m.Blob.sha256.not_in(recorded))
                    .limit(limit)
                )
            )
            total += record_needed_copies(s, shas, [region])
    return total


@dataclass(frozen=True)
class Claim:
    """A copy a worker leased: copy (or look for) it, then mark it present or failed."""

    sha256: str
    region: str
    size: int
    attempts: int


def claim_due(
    db: Database,
    region: str,
    *,
    owner: str,
    lease_s: float,
    limit: int = 8,
    now: datetime | None = None,
) -> list[Claim]:
    """Lease up to ``limit`` copies of ``region`` that are due (not present, retry time
    reached, no live lease). A conditional UPDATE per row: two workers never hold the same
    copy; a worker that dies holds it until ``lease_s`` has passed."""
    t = _now(now)
    due = and_(
        R.region == region,
        R.state != "present",
        R.next_try_at <= t,
        or_(R.lease_until.is_(None), R.lease_until < t),
    )
    claimed: list[Claim] = []
    with db.write() as s:
        rows = s.execute(
            select(R.sha256, R.attempts, m.Blob.size)
            .join(m.Blob, m.Blob.sha256 == R.sha256)
            .where(due)
            .order_by(R.next_try_at, R.sha256)
            .limit(limit * 2)
        ).all()
        until = t + timedelta(seconds=lease_s)
        for sha, attempts, size in rows:
            if len(claimed) >= limit:
                break
            res = s.execute(
                update(R)
                .where(R.sha256 == sha, due)
                .values(lease_owner=owner, lease_until=until)
                .execution_options(synchronize_session=False)
            )
            if res.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(Claim(sha256=sha, region=region, size=int(size), attempts=attempts))
    return claimed


def _leased(sha256: str, region: str, owner: str | None):  # type: ignore[no-untyped-def]
    cond = and_(R.sha256 == sha256, R.region == region)
    return cond if owner is None else and_(cond, R.lease_owner == owner)


def mark_present(
    db: Database, sha256: str, region: str, *, owner: str | None = None, now: datetime | None = None
) -> bool:
    """The copy is in the region and verified; ``owner``: only while that lease holds.
    ``present_since`` keeps its first value. False when the row is gone or leased away."""
    t = _now(now)
    with db.write() as s:
        res = s.execute(
            update(R)
            .where(_leased(sha256, region, owner))
            .values(
                state="present",
                present_since=func.coalesce(R.present_since, t),
                last_error=None,
                lease_owner=None,
                lease_until=None,
                checked_at=t,
            )
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def backoff_s(attempts: int, *, base_s: float, cap_s: float) -> float:
    """Seconds before attempt ``attempts + 1``: doubling from ``base_s`` up to ``cap_s``,
    with up to 20% jitter so a region's backlog does not retry in lockstep."""
    delay = min(cap_s, base_s * (2 ** min(attempts, 30)))
    return float(delay * (1 + random.random() * 0.2))


def mark_failed(
    db: Database,
    sha256: str,
    region: str,
    *,
    owner: str | None,
    error: str,
    retry_in_s: float,
    state: str = "failed",
    now: datetime | None = None,
) -> bool:
    """The attempt failed (``state="failed"``) or, for an external region, the blob is
    not there yet (``state="missing"``): count it, keep the error (bounded) and try again
    in ``retry_in_s``."""
    t = _now(now)
    with db.write() as s:
        res = s.execute(
            update(R)
            .where(_leased(sha256, region, owner), R.state != "present")
            .values(
                state=state,
                attempts=R.attempts + 1,
                last_error=error[:MAX_ERROR] if error else None,
                next_try_at=t + timedelta(seconds=retry_in_s),
                lease_owner=None,
                lease_until=None,
                checked_at=t,
            )
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def mark_missing_again(db: Database, sha256: str, region: str) -> bool:
    """A copy recorded present turned out absent or corrupt (``fsck --regions``): needed
    again now, and not served from that region until copied anew."""
    t = datetime.now(UTC)
    with db.write() as s:
        res = s.execute(
            update(R)
            .where(R.sha256 == sha256, R.region == region)
            .values(state="missing", present_since=None, next_try_at=t, needed_since=t)
            .execution_options(synchronize_session=False)
        )
        return res.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def present_in(
    session: Session, shas: Iterable[str], regions: Sequence[str]
) -> dict[str, set[str]]:
    """For each of ``regions``, which of ``shas`` the catalog says are present there."""
    found: dict[str, set[str]] = {r: set() for r in regions}
    wanted = sorted(set(shas))
    if not wanted or not regions:
        return found
    for start in range(0, len(wanted), _IN_CHUNK):
        rows = session.execute(
            select(R.region, R.sha256).where(
                R.sha256.in_(wanted[start : start + _IN_CHUNK]),
                R.region.in_(list(regions)),
                R.state == "present",
            )
        ).all()
        for region, sha in rows:
            found[region].add(sha)
    return found


def missing_files(
    session: Session, version_id: int, regions: Sequence[str]
) -> dict[str, list[str]]:
    """Inside any session: for each of ``regions`` (non-primary names), the paths of
    version ``version_id`` whose blob is not present there (empty list: it holds them all).
    The promotion gate's question (``--require-regions``)."""
    files = session.execute(
        select(m.VersionFile.path, m.VersionFile.sha256).where(
            m.VersionFile.version_id == version_id
        )
    ).all()
    have = present_in(session, (sha for _, sha in files), regions)
    return {r: sorted(p for p, sha in files if sha not in have[r]) for r in regions}


def version_regions(db: Database, version_id: int, regions: RegionSet) -> VersionRegions:
    """Which regions hold every file of the version (the primary always does), and the
    files each other region still misses."""
    names = [r.name for r in regions.replicas()]
    with db.read() as s:
        missing = missing_files(s, version_id, names)
    present = [regions.primary.name, *(r for r in names if not missing[r])]
    return VersionRegions(present=present, missing={r: p for r, p in missing.items() if p})


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q * (len(values) - 1)))))
    return values[k]


def region_stats(db: Database, regions: RegionSet) -> list[RegionStats]:
    """Per region, primary first: present copies, backlog in blobs and bytes, failures,
    replication lag p50/p99 (push to present) and the last error."""
    out = [RegionStats(name=regions.primary.name, mode="primary", url=regions.primary.url)]
    with db.read() as s:
        for region in regions.replicas():
            counts = dict(
                s.execute(
                    select(R.state, func.count()).where(R.region == region.name).group_by(R.state)
                ).all()
            )
            backlog = s.execute(
                select(
                    func.count(), func.coalesce(func.sum(m.Blob.size), 0), func.min(R.needed_since)
                )
                .join(m.Blob, m.Blob.sha256 == R.sha256)
                .where(R.region == region.name, R.state != "present")
            ).one()
            recent = s.execute(
                select(R.needed_since, R.present_since)
                .where(R.region == region.name, R.state == "present", R.present_since.is_not(None))
                .order_by(R.present_since.desc())
                .limit(LAG_SAMPLE)
            ).all()
            lags = [
                max(0.0, (_aware(done) - _aware(need)).total_seconds())
                for need, done in recent
                if done is not None
            ]
            last_error = s.scalar(
                select(R.last_error)
                .where(R.region == region.name, R.state == "failed")
                .order_by(R.checked_at.desc())
                .limit(1)
            )
            oldest = backlog[2]
            out.append(
                RegionStats(
                    name=region.name,
                    mode=region.mode,
                    url=region.url,
                    present_blobs=int(counts.get("present", 0)),
                    backlog_blobs=int(backlog[0]),
                    backlog_bytes=int(backlog[1]),
                    failed_blobs=int(counts.get("failed", 0)),
                    lag_p50_s=_percentile(lags, 0.5),
                    lag_p99_s=_percentile(lags, 0.99),
                    oldest_missing_since=_aware(oldest) if oldest is not None else None,
                    last_error=last_error,
                )
            )
    return out


def failures(db: Database, *, region: str | None = None, limit: int = 100) -> list[ReplicaFailure]:
    """Copies whose last attempt failed, oldest retry first (at most ``limit``, <= 1000)."""
    limit = max(1, min(limit, 1000))
    q = select(R).where(R.state == "failed")
    if region is not None:
        q = q.where(R.region == region)
    with db.read() as s:
        rows = s.scalars(q.order_by(R.next_try_at, R.sha256).limit(limit)).all()
        return [
            ReplicaFailure(
                sha256=r.sha256,
                region=r.region,
                attempts=r.attempts,
                last_error=r.last_error,
                next_try_at=_aware(r.next_try_at),
            )
            for r in rows
        ]


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)

"""Which blobs need a copy in which regions: the rows a push writes (issue 20).

The catalog layer only records the need, inside the version's own transaction; copying,
checking and reading regional copies are ``registry.regions``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.db import models as m


def record_needed_copies(
    session: Session, shas: Iterable[str], regions: Sequence[str], *, now: datetime | None = None
) -> int:
    """Inside a write transaction: a ``missing`` copy of each blob in each region, needed
    since ``now``. A copy already recorded (present, or needed since an earlier push) is
    left as it is. Returns the number of (blob, region) pairs asked for."""
    wanted = sorted(set(shas))
    if not wanted or not regions:
        return 0
    when = now or datetime.now(UTC)
    ins = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    rows = [
        {
            "sha256": sha,
            "region": region,
            "state": "missing",
            "needed_since": when,
            "next_try_at": when,
            "attempts": 0,
        }
        for sha in wanted
        for region in regions
    ]
    # Batches keep each statement under SQLite's bound-parameter limit.
    for start in range(0, len(rows), 500):
        session.execute(
            ins(m.BlobReplica).values(rows[start : start + 500]).on_conflict_do_nothing()
        )
    return len(rows)

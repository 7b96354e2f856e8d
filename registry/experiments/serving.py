"""What serving needs of an experiment, small enough to cache: salt, ranges, pinned versions.

``ExperimentDef`` is read once and kept per process; ``DefinitionCache`` drops it when the
catalog changes (the newest event id moves, checked at most every 200 ms, and at once
after this process commits), like the resolve route's version cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from threading import Lock

from registry.catalog.refs import Repo
from registry.db.commit_hooks import after_commits
from registry.db.database import Database
from registry.experiments.assignment import (
    BucketRange,
    bucket_of,
    check_subject,
    ranges_from_rows,
    variant_for_bucket,
)
from registry.experiments.domain import Assignment
from registry.experiments.records import experiment_row, version_numbers
from registry.lifecycle.events import last_event_id


@dataclass(frozen=True)
class ExperimentDef:
    name: str
    state: str
    salt: str
    base_model: str
    ranges: tuple[BucketRange, ...]
    versions: dict[str, int | None]

    def target(self, subject: str) -> tuple[int, str | None, str, str | None]:
        """(bucket, variant, revision, base) for ``subject``: the variant's pinned version
        while running; afterwards production for the experiment's base model."""
        bucket = bucket_of(self.salt, check_subject(subject))
        if self.state != "running":
            return bucket, None, "production", self.base_model
        variant = variant_for_bucket(bucket, self.ranges)
        number = self.versions.get(variant)
        return bucket, variant, str(number) if number is not None else "erased", None


def load_definition(db: Database, repo: Repo, name: str) -> ExperimentDef:
    with db.read() as s:
        row = experiment_row(s, repo, name)
        return ExperimentDef(
            name=row.name,
            state=row.state,
            salt=row.salt,
            base_model=row.base_model,
            ranges=tuple(ranges_from_rows(row.ranges)),
            versions=version_numbers(s, row),
        )


class DefinitionCache:
    """Definitions by key, valid while the newest event id stays the same."""

    def __init__(
        self, db: Database, *, check_interval_s: float = 0.2, max_stale_s: float = 0.5
    ) -> None:
        self._db = db
        self._interval = check_interval_s
        self._max_stale = max_stale_s
        self._checking = False
        self._check_lock = Lock()
        self._entries: dict[Hashable, ExperimentDef] = {}
        self._stamp: int | None = None
        self._checked_at = float("-inf")
        self._lock = Lock()
        after_commits(db, self, DefinitionCache.recheck)

    def recheck(self) -> None:
        """Check the catalog before the next answer."""
        self._checked_at = float("-inf")

    def peek(self, key: Hashable) -> tuple[ExperimentDef | None, bool]:
        """(a hit that may be served without I/O, whether the caller should start
        ``refresh`` in the background). Within the check interval hits are fresh; up to
        ``max_stale_s`` they are still served while one caller re-checks."""
        age = time.monotonic() - self._checked_at
        if age <= self._interval:
            return self._entries.get(key), False
        if age > self._max_stale:
            return None, False
        with self._lock:
            start, self._checking = not self._checking, True
        return self._entries.get(key), start

    def refresh(self) -> None:
        try:
            self._check(force=True)
        finally:
            self._checking = False

    def _check(self, *, force: bool) -> None:
        with self._check_lock:
            started = time.monotonic()
            if started - self._checked_at <= (0.0 if force else self._interval):
                return
            stamp = last_event_id(self._db)
            with self._lock:
                if stamp != self._stamp:
                    self._entries.clear()
                    self._stamp = stamp
                self._checked_at = started

    def load(self, key: Hashable, loader: Callable[[], ExperimentDef]) -> ExperimentDef:
        """Blocking: re-check the catalog when due, then the cached definition or ``loader()``."""
        self._check(force=False)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                return hit
            stamp = self._stamp
        definition = loader()
        with self._lock:
            # One read across an invalidation may predate the change: not kept.
            if stamp == self._stamp:
                if len(self._entries) >= 10_000:
                    del self._entries[next(iter(self._entries))]
                self._entries[key] = definition
        return definition


def assignment_for(db: Database, repo: Repo, name: str, subject: str) -> Assignment:
    """Which variant (and version) ``subject`` gets; the same answer as resolve gives."""
    definition = load_definition(db, repo, name)
    bucket, variant, _, _ = definition.target(subject)
    version = definition.versions.get(variant) if variant is not None else None
    if variant is None:
        from registry.catalog.resolve import resolve

        version = resolve(db, repo, ref="production", base=definition.base_model).number
    return Assignment(
        experiment=definition.name,
        subject=subject,
        bucket=bucket,
        variant=variant,
        version=version,
        state=definition.state,
    )

"""Reads: which region's store a reader gets each blob from.

A reader in region X gets a blob from X when the catalog says X's copy is present and
X's store is not known to be down; otherwise from the next region of its fallback order
(``LORAREG_REGION_FALLBACK``), and finally from the primary, which holds every blob. A
fallback is never an error; each is counted in
``lorareg_region_fallbacks_total{region,reason}`` (``reason``: ``missing`` copy or region
``unavailable``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from registry.db.database import Database
from registry.errors import BlobNotFound, RangeNotSatisfiable, StorageUnavailable
from registry.observability.metrics import REGION_FALLBACKS
from registry.regions.copies import present_in
from registry.regions.stores import Region, RegionSet
from registry.storage.base import CHUNK, BlobStore

# How long a region whose store failed stays out of the reading order before it is
# tried again (a background probe or readyz may bring it back sooner).
DOWN_FOR_S = 10.0


class RegionHealth:
    """Which regional stores failed recently: a failed read or probe marks a region down
    for ``down_for_s``; a successful probe marks it up again. Thread-safe.

    ``epoch`` changes whenever a region goes down or comes back: answers rendered for
    readers (resolve documents with download URLs) are keyed by it, so none outlives
    the state it was rendered for."""

    def __init__(self, down_for_s: float = DOWN_FOR_S) -> None:
        self.down_for_s = down_for_s
        self._down_until: dict[str, float] = {}
        self._probed: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self.epoch = 0

    def mark_down(self, region: str) -> None:
        with self._lock:
            now = time.monotonic()
            if self._down_until.get(region, 0.0) <= now:
                self.epoch += 1
            self._down_until[region] = now + self.down_for_s

    def mark_up(self, region: str) -> None:
        with self._lock:
            if self._down_until.pop(region, None) is not None:
                self.epoch += 1

    def is_up(self, region: str) -> bool:
        with self._lock:
            until = self._down_until.get(region)
        return until is None or until <= time.monotonic()

    def probe(self, region: Region) -> str:
        """Check the region's store now and remember the answer: ``ok`` or why not."""
        try:
            region.store.check()
        except Exception as exc:  # a probe answers whatever broke
            self.mark_down(region.name)
            answer = getattr(exc, "message", None) or f"error: {type(exc).__name__}"
        else:
            self.mark_up(region.name)
            answer = "ok"
        with self._lock:
            self._probed[region.name] = (time.monotonic(), answer)
        return answer

    def status(self, region: Region, *, max_age_s: float = 5.0) -> str:
        """The last probe's answer when under ``max_age_s`` old, else a new probe's (so a
        frequent readiness check does not wait on a slow store every time)."""
        with self._lock:
            last = self._probed.get(region.name)
        if last is not None and time.monotonic() - last[0] <= max_age_s:
            return last[1]
        return self.probe(region)


@dataclass(frozen=True)
class ReadChoice:
    """Where one blob is read from: ``region``'s ``store``; ``fallback`` when that is not
    the reader's own region."""

    region: Region
    fallback: bool


class ReadRouter:
    """Chooses a store per blob for a reader region (see the module docstring)."""

    def __init__(self, regions: RegionSet, db: Database, health: RegionHealth | None = None):
        self.regions = regions
        self.db = db
        self.health = health or RegionHealth()

    def reader_region(self, explicit: str | None, *, token_default: str | None = None) -> str:
        """The region a request reads from: ``explicit`` (``?region=``; UnknownRegion if
        not configured), else the token's default region, else this process's
        ``LORAREG_REGION``, else the primary. A token default that is no longer
        configured is ignored (the request is still served)."""
        if explicit:
            return self.regions.get(explicit).name
        if token_default and token_default in self.regions.names:
            return token_default
        return self.regions.settings.region or self.regions.primary.name

    def order(self, reader: str) -> list[Region]:
        """The regions a reader in ``reader`` tries, in order, the primary last."""
        return [self.regions.get(n) for n in self.regions.order_for(reader)]

    def choose(
        self, reader: str, shas: Sequence[str], *, count: bool = True
    ) -> dict[str, ReadChoice]:
        """For each blob, the store to read it from (every blob gets one: the primary
        holds them all). One catalog query for the whole set. ``count``: record each
        fallback in the metric."""
        order = self.order(reader)
        primary = self.regions.primary
        wanted = list(dict.fromkeys(shas))
        if order[0].is_primary:
            return {sha: ReadChoice(primary, fallback=False) for sha in wanted}
        names = [r.name for r in order if not r.is_primary]
        with self.db.read() as s:
            present = present_in(s, wanted, names)
        reader_up = self.health.is_up(reader)
        out: dict[str, ReadChoice] = {}
        for sha in wanted:
            chosen = primary
            for region in order:
                if region.is_primary:
                    break
                if sha in present[region.name] and self.health.is_up(region.name):
                    chosen = region
                    break
            out[sha] = ReadChoice(chosen, fallback=chosen.name != reader)
            if count and chosen.name != reader:
                reason = "unavailable" if not reader_up else "missing"
                REGION_FALLBACKS.labels(reader, reason).inc()
        return out

    def store_for(self, reader: str, sha256: str) -> ReadChoice:
        """The store one blob is read from (see ``choose``)."""
        return self.choose(reader, [sha256])[sha256]

    def next_after(self, reader: str, sha256: str, failed: str) -> ReadChoice:
        """After a read from ``failed`` broke (its store is down): mark it down, count
        the fallback and choose again."""
        self.health.mark_down(failed)
        return self.choose(reader, [sha256])[sha256]

    def read(self, reader: str, sha256: str) -> Iterator[bytes]:
        """The blob's bytes from ``store_for``'s choice. When that store fails part way (a
        region going down in the middle of a download), the rest is read from the next
        choice at the same offset, so the reader never sees a regional failure while
        another copy answers (the caller verifies the whole blob's sha256 as always).
        The primary's own failures are the caller's."""
        choice = self.store_for(reader, sha256)
        sent = 0
        while True:
            store = choice.region.store
            try:
                pieces = store.iter_bytes(sha256) if sent == 0 else _rest(store, sha256, sent)
                for piece in pieces:
                    sent += len(piece)
                    yield piece
                return
            except (StorageUnavailable, BlobNotFound, OSError):
                if choice.region.is_primary:
                    raise
                choice = self.next_after(reader, sha256, choice.region.name)


def _rest(store: BlobStore, sha256: str, offset: int) -> Iterator[bytes]:
    """The blob's bytes from ``offset`` on, a ranged read a chunk."""
    while True:
        try:
            piece = store.read_range(sha256, offset, CHUNK)
        except RangeNotSatisfiable:
            return  # the first store's bytes ended exactly at the end
        if not piece:
            return
        offset += len(piece)
        yield piece
        if len(piece) < CHUNK:
            return

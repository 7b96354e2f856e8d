"""The change feed inside one server process: recent events in memory, every reader woken
at once when new ones arrive.

A single ``EventWatcher`` (PostgreSQL LISTEN/NOTIFY, or one poller on SQLite) reads each
new event once and hands it to the ``EventHub`` on the event loop, which keeps the newest
``keep`` events and wakes every waiting long poll and stream. A reader filters the batch
itself with the same rule as the catalog query (``Audience``), so 10,000 readers cost no
database query while they wait: only the one that reads an event the hub no longer holds
(or from before the server started) asks the catalog.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi.concurrency import run_in_threadpool

from registry.db.database import Database
from registry.domain import EventInfo
from registry.lifecycle.events import last_event_id
from registry.lifecycle.watch import EventWatcher
from registry.observability.metrics import EVENT_DELIVERY_LAG


@dataclass(frozen=True)
class Audience:
    """Which events a reader may see: the catalog's rule in ``events_after``, in memory."""

    namespaces: frozenset[str] | None  # the token's scope; None = every namespace
    namespace: str | None = None  # the reader asked for this one only

    def sees(self, e: EventInfo) -> bool:
        if self.namespaces is not None and e.namespace not in self.namespaces:
            return False
        return self.namespace is None or e.namespace == self.namespace


class EventHub:
    """Recent events and the readers waiting for more. Used from the event loop only.

    ``floor``: every event with an id up to it is older than what the hub holds; a reader
    whose cursor is below it reads the catalog first. ``head``: the newest id seen.
    """

    def __init__(
        self,
        db: Database,
        *,
        keep: int = 4096,
        heartbeat_s: float = 15.0,
        stream_max_s: float = 300.0,
        poll_s: float = 0.1,
    ) -> None:
        self.db = db
        self.keep = keep
        # Streams: a comment this often so proxies and clients know the line is alive, and
        # an end after this long (the client resumes, and its token is checked again).
        self.heartbeat_s = heartbeat_s
        self.stream_max_s = stream_max_s
        self.poll_s = poll_s
        self.floor = 0
        self.head = 0
        self.closed = False
        self._ids: list[int] = []
        self._events: list[EventInfo] = []
        # Each event's stream frame, encoded once for every stream that sends it.
        self._frames: dict[int, bytes] = {}
        self._wake: asyncio.Event | None = None
        self._starting: asyncio.Task[None] | None = None
        self._watcher: EventWatcher | None = None

    async def start(self) -> None:
        """Start watching the catalog (once; later calls wait for the first to finish)."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.floor = self.head = await run_in_threadpool(last_event_id, self.db)

        def deliver(batch: list[EventInfo]) -> None:
            # A loop that closed meanwhile: the watcher stops on its next turn.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.publish, batch)

        # An app driven without its lifespan (a test's ASGI transport) is never closed:
        # its watcher stops with the event loop it serves.
        self._watcher = EventWatcher(
            self.db,
            deliver,
            head=self.head,
            poll_s=self.poll_s,
            alive=lambda: not loop.is_closed(),
        )
        if not self.closed:
            self._watcher.start()

    def close(self) -> None:
        """End every wait and stream now (the server is stopping) and stop watching."""
        self.closed = True
        if self._watcher is not None:
            self._watcher.stop(timeout=0)  # it notices within half a second
        self._notify()

    @property
    def started(self) -> bool:
        return self._watcher is not None

    def publish(self, batch: list[EventInfo]) -> None:
        """Add events read by the watcher and wake every reader."""
        now = datetime.now(UTC)
        for e in batch:
            # Commit -> every follower of this process woken (they are, just below).
            created = e.created_at if e.created_at.tzinfo else e.created_at.replace(tzinfo=UTC)
            EVENT_DELIVERY_LAG.observe(max(0.0, (now - created).total_seconds()))
            if e.id > self.head:
                self._ids.append(e.id)
                self._events.append(e)
                self.head = e.id
            elif e.id > self.floor:
                # Committed after a later id: put it in its place (once).
                i = bisect.bisect_left(self._ids, e.id)
                if i == len(self._ids) or self._ids[i] != e.id:
                    self._ids.insert(i, e.id)
                    self._events.insert(i, e)
        extra = len(self._ids) - self.keep
        if extra > 0:
            self.floor = self._ids[extra - 1]
            for gone in self._ids[:extra]:
                self._frames.pop(gone, None)
            del self._ids[:extra], self._events[:extra]
        self._notify()

    def frame(self, e: EventInfo) -> bytes:
        """``e`` as a Server-Sent Event; made once per event the hub holds."""
        held = self._frames.get(e.id)
        if held is None:
            held = sse_frame(e)
            if self._ids and self.floor < e.id <= self.head:
                self._frames[e.id] = held
        return held

    def _notify(self) -> None:
        if self._wake is not None:
            self._wake.set()
            self._wake = asyncio.Event()

    def after(
        self, cursor: int, audience: Audience, *, limit: int
    ) -> tuple[list[EventInfo], int] | None:
        """Events after ``cursor`` the audience sees (at most ``limit``) and the cursor to
        wait from next; None when the hub no longer holds what follows ``cursor``."""
        if cursor < self.floor:
            return None
        start = bisect.bisect_right(self._ids, cursor)
        found: list[EventInfo] = []
        for e in self._events[start:]:
            if audience.sees(e):
                found.append(e)
                if len(found) >= limit:
                    return found, e.id
        return found, max(cursor, self.head)

    async def wait(
        self, cursor: int, audience: Audience, *, timeout: float, limit: int
    ) -> tuple[list[EventInfo], int] | None:
        """``after``, waiting up to ``timeout`` seconds for something to show; an empty
        list when nothing did (or the server is stopping)."""
        await self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            answer = self.after(cursor, audience, limit=limit)
            if answer is None or answer[0] or self.closed:
                return answer
            cursor = answer[1]
            left = deadline - loop.time()
            if left <= 0 or self._wake is None:
                return answer
            try:
                async with asyncio.timeout(left):
                    await self._wake.wait()
            except TimeoutError:
                pass


def sse_frame(e: EventInfo) -> bytes:
    """One event of the stream. The data is one JSON line (a data field may hold no newline,
    and ``model_dump_json`` writes none), the same document as one item of the list."""
    return f"id: {e.id}\nevent: {e.kind}\ndata: {e.model_dump_json()}\n\n".encode()

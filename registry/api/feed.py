"""The change feed inside one server process: recent events in memory, every reader woken
at once when new ones arrive.

A single ``EventWatcher`` (PostgreSQL LISTEN/NOTIFY, or one poller on SQLite) reads each
new event once and hands it to the ``EventHub`` on the event loop, which keeps the newest
``keep`` events. A reader filters them with the same rule as the catalog query
(``Audience``), so 10,000 readers cost no database query while they wait: only the one
that reads an event the hub no longer holds (or from before the server started) asks the
catalog.

Long polls wait on one ``asyncio.Event``. Streams are pushed to: each open stream is a
``Subscriber`` in the hub, and ``publish`` writes the new events to every one of them in one
pass, with no task woken per stream. The bytes are made once per event batch and audience
(visibility class), and written with the stream's ASGI ``send`` stepped once by hand: that
completes at once unless the client's socket is full, and only then does a task take
over, for that stream alone (the others never wait for a slow reader).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi.concurrency import run_in_threadpool

from registry.db.database import Database
from registry.domain import EventInfo
from registry.lifecycle.events import last_event_id
from registry.lifecycle.watch import EventWatcher
from registry.observability.metrics import EVENT_DELIVERY_LAG

# Events per write (and per catalog read while a stream catches up).
PAGE = 1000
# Streams written per turn of the event loop when an event goes out to all of them.
FAN_STEP = 500
KEEP_ALIVE = b": keep-alive\n\n"

Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Audience:
    """Which events a reader may see: the catalog's rule in ``events_after``, in memory."""

    namespaces: frozenset[str] | None  # the token's scope; None = every namespace
    namespace: str | None = None  # the reader asked for this one only

    def sees(self, e: EventInfo) -> bool:
        if self.namespaces is not None and e.namespace not in self.namespaces:
            return False
        return self.namespace is None or e.namespace == self.namespace


class Subscriber:
    """One open stream as the hub sees it: what it may see, how far it got, how to write.

    ``cursor``: every event up to it was written (or is not for this audience). ``busy``:
    the task finishing a write the client's socket could not take at once; the hub skips
    the stream meanwhile and the task brings it up to date. ``behind``: the hub no longer
    holds what follows ``cursor``; the stream's own task reads the catalog. ``wake``:
    done when the stream's task has something to do (it ended, or it is behind).
    """

    __slots__ = ("audience", "cursor", "send", "busy", "behind", "ended", "wake", "written_at",
                 "beat_s", "ends_at")  # fmt: skip

    def __init__(
        self, audience: Audience, cursor: int, send: Send, *, beat_s: float, ends_at: float
    ) -> None:
        self.audience = audience
        self.cursor = cursor
        self.send = send
        self.busy: asyncio.Future[None] | None = None
        self.behind = False
        self.ended = False
        self.wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.written_at = 0.0
        self.beat_s = beat_s  # a comment after this long without a write (jittered)
        self.ends_at = ends_at

    def signal(self) -> None:
        if not self.wake.done():
            self.wake.set_result(None)

    def end(self) -> None:
        self.ended = True
        self.signal()


class EventHub:
    """Recent events, the long polls waiting for more, and the open streams. Used from the
    event loop only.

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
        # Open streams (a dict: insertion order, so the first to connect is written first).
        self._subs: dict[Subscriber, None] = {}
        self._tending: asyncio.Future[None] | None = None
        self._fanning: asyncio.Future[None] | None = None
        self._dirty = False

    async def start(self) -> None:
        """Start watching the catalog (once; later calls wait for the first to finish)."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        if not self._starting.done():
            await asyncio.shield(self._starting)
        else:
            self._starting.result()

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
        for sub in list(self._subs):
            self.leave(sub)
            sub.end()

    @property
    def started(self) -> bool:
        return self._watcher is not None

    def publish(self, batch: list[EventInfo]) -> None:
        """Add events read by the watcher, write them to every stream, wake every poll."""
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
        self._fan_out()

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

    # Streams

    def subscriber(self, audience: Audience, cursor: int, send: Send) -> Subscriber:
        """A stream's place in the hub (not yet joined: see ``join``)."""
        now = asyncio.get_running_loop().time()
        # Jittered, so that thousands of streams opened together do not beat together, nor
        # end (and reconnect, each re-authenticated) in the same instant.
        beat = self.heartbeat_s * random.uniform(0.5, 1.0)
        ends_at = now + self.stream_max_s * random.uniform(0.8, 1.0)
        return Subscriber(audience, cursor, send, beat_s=beat, ends_at=ends_at)

    def join(self, sub: Subscriber) -> None:
        """From now on ``publish`` writes to ``sub``; whatever the hub holds after its
        cursor is written now."""
        if self.closed:
            sub.end()
            return
        sub.behind = False
        sub.written_at = asyncio.get_running_loop().time()
        if sub.wake.done():
            sub.wake = asyncio.get_running_loop().create_future()
        self._subs[sub] = None
        if self._tending is None or self._tending.done():
            self._tending = asyncio.ensure_future(self._tend())
        self._offer(sub, None, sub.written_at)

    def leave(self, sub: Subscriber) -> None:
        self._subs.pop(sub, None)
        if sub.busy is not None:
            sub.busy.cancel()
            sub.busy = None

    def _fan_out(self) -> None:
        """Write what is new to every stream (in a task: see ``_fanning``)."""
        self._dirty = True
        if self._subs and (self._fanning is None or self._fanning.done()):
            self._fanning = asyncio.ensure_future(self._fan())

    async def _fan(self) -> None:
        """One pass over the streams per publish, the bytes made once per audience; the
        loop serves other requests every ``FAN_STEP`` streams (a resolve waits for a slice
        of the pass, not the whole). Events published during a pass make another pass."""
        loop = asyncio.get_running_loop()
        while self._dirty and self._subs:
            self._dirty = False
            made: dict[tuple[int, Audience], tuple[bytes, int] | None] = {}
            now = loop.time()
            for i, sub in enumerate(list(self._subs)):
                if i and not i % FAN_STEP:
                    await asyncio.sleep(0)
                    now = loop.time()
                if sub in self._subs:  # (it may have left meanwhile)
                    self._offer(sub, made, now)

    def _offer(
        self,
        sub: Subscriber,
        made: dict[tuple[int, Audience], tuple[bytes, int] | None] | None,
        now: float,
    ) -> None:
        """Write to ``sub`` what the hub holds after its cursor (nothing while a write of
        its own is still in flight, or it must read the catalog first)."""
        while sub.busy is None and not sub.behind and not sub.ended:
            key = (sub.cursor, sub.audience)
            if made is not None and key in made:
                got = made[key]
            else:
                answer = self.after(sub.cursor, sub.audience, limit=PAGE)
                got = None if answer is None else (b"".join(map(self.frame, answer[0])), answer[1])
                if made is not None:
                    made[key] = got
            if got is None:  # a burst larger than the hub holds: the catalog has it
                sub.behind = True
                self._subs.pop(sub, None)
                sub.signal()
                return
            data, sub.cursor = got
            if not data:
                return
            self._write(sub, data, now)
            if sub.cursor >= self.head:
                return

    def _write(self, sub: Subscriber, data: bytes, now: float) -> None:
        """``sub.send`` with ``data``, stepped once here: a write the socket takes at once
        ends in that step. One that must wait is finished by a task of its own."""
        sub.written_at = now
        sent = sub.send({"type": "http.response.body", "body": data, "more_body": True})
        step = sent if asyncio.iscoroutine(sent) else _awaited(sent)
        try:
            waiting = step.send(None)
        except StopIteration:
            return
        except Exception:  # the connection broke: the stream's task ends it
            self._drop(sub)
            return
        sub.busy = task = asyncio.ensure_future(_finish(step, waiting))
        task.add_done_callback(lambda t: self._written(sub, t))

    def _written(self, sub: Subscriber, task: asyncio.Future[None]) -> None:
        if sub.busy is not task:
            return  # the stream left meanwhile
        sub.busy = None
        if task.cancelled() or task.exception() is not None:
            self._drop(sub)
        elif sub in self._subs:
            self._offer(sub, None, asyncio.get_running_loop().time())

    def _drop(self, sub: Subscriber) -> None:
        self._subs.pop(sub, None)
        sub.end()

    async def _tend(self) -> None:
        """Heartbeats for quiet streams and the end of old ones, while any is open."""
        loop = asyncio.get_running_loop()
        while self._subs and not self.closed:
            await asyncio.sleep(min(1.0, self.heartbeat_s / 4, self.stream_max_s / 8))
            now = loop.time()
            for sub in list(self._subs):
                if now >= sub.ends_at:
                    self.leave(sub)
                    sub.end()
                elif now - sub.written_at >= sub.beat_s and sub.busy is None:
                    self._write(sub, KEEP_ALIVE, now)


async def _finish(step: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Run the rest of a coroutine that was stepped once by hand and is ``waiting`` on a
    future (or yielded None: a bare ``sleep(0)``)."""
    while True:
        if waiting is None:
            await asyncio.sleep(0)
        else:
            # However the future ends, the coroutine reads its outcome itself when resumed
            # (a cancelled future included: this task's cancellation cancels it). As a task
            # does with what a coroutine yields: the future is taken, no longer "blocking".
            waiting._asyncio_future_blocking = False
            try:
                await waiting
            except asyncio.CancelledError:
                if not waiting.cancelled():  # this task was cancelled, not the future
                    step.close()
                    raise
            except BaseException:  # noqa: S110 - the coroutine raises it when resumed
                pass
        try:
            waiting = step.send(None)
        except StopIteration:
            return


async def _awaited(sent: Awaitable[None]) -> None:
    await sent


def sse_frame(e: EventInfo) -> bytes:
    """One event of the stream. The data is one JSON line (a data field may hold no newline,
    and ``model_dump_json`` writes none), the same document as one item of the list."""
    return f"id: {e.id}\nevent: {e.kind}\ndata: {e.model_dump_json()}\n\n".encode()

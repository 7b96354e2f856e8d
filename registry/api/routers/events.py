"""The change feed: ``GET /api/v1/events`` as a list, a long poll (``wait``) or a stream of
Server-Sent Events (``Accept: text/event-stream``).

Every form shows only events of the caller's namespaces (events of no namespace, such as
token changes, only to unscoped tokens). Waiting readers are woken by the process's one
``EventHub`` and cost no catalog query while they wait. A token holds at most
``LORAREG_MAX_WAITS_PER_TOKEN`` waits and streams at once: more is 429 ``too_many_waits``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from registry.api.deps import MAX_ID, CurrentUser, Reader, RuntimeDep
from registry.api.feed import PAGE, Audience, EventHub, Subscriber
from registry.api.responses import ERRORS
from registry.api.waits import WaitLimiter, wait_key
from registry.catalog.refs import check_name
from registry.db.database import Database
from registry.domain import EventInfo
from registry.errors import InvalidInput
from registry.lifecycle import events

router = APIRouter(prefix="/api/v1", tags=["admin"], responses=ERRORS)

STREAM_TYPE = "text/event-stream"
# How long the end of a stream may wait for the client to take it.
END_WRITE_S = 5.0

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "With `Accept: text/event-stream`: one event per change, "
        "`id: <event id>`, `event: <kind>`, `data: <the event as in the list>`; "
        "comments as heartbeats. Resume with `Last-Event-ID` (or `since`).",
        "content": {STREAM_TYPE: {"schema": {"type": "string"}}},
    }
}


@router.get("/events", response_model=list[EventInfo], dependencies=[Reader], responses=_STREAM_DOC)
async def follow_events(
    request: Request,
    rt: RuntimeDep,
    user: CurrentUser,
    since: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    after: Annotated[int | None, Query(ge=0, le=MAX_ID, description="same as since")] = None,
    namespace: str | None = None,
    wait: Annotated[float, Query(ge=0, le=60)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> Any:
    """Events after ``since`` (oldest first) in the caller's namespaces; with ``wait``, a
    long poll that answers as soon as one arrives (or with ``[]`` after ``wait`` seconds);
    with ``Accept: text/event-stream``, a stream of them that stays open."""
    if namespace is not None:
        check_name(namespace, what="namespace")
    cursor = after if after is not None else since
    audience = Audience(user.namespaces, namespace)
    hub: EventHub = request.app.state.feed
    limiter: WaitLimiter = request.app.state.waits
    if STREAM_TYPE in request.headers.get("accept", ""):
        if last_event_id is not None:
            cursor = _event_id(last_event_id)
        release = limiter.acquire(wait_key(user), what="stream")
        return FeedStream(
            db=rt.db,
            hub=hub,
            cursor=cursor,
            audience=audience,
            blind=_blind(user, namespace),
            on_close=release,
        )
    if _blind(user, namespace):
        return []
    if wait == 0:
        return await run_in_threadpool(_read, rt.db, cursor, audience, limit)
    await hub.start()
    answer = hub.after(cursor, audience, limit=limit)
    if answer is None:  # older than what the hub holds: the catalog first
        head = hub.head
        found = await run_in_threadpool(_read, rt.db, cursor, audience, limit)
        if found:
            return found
        cursor = max(cursor, head)
    elif answer[0]:
        return answer[0]  # found at once: never counts as a wait
    with limiter.hold(wait_key(user)):
        waiting = asyncio.ensure_future(hub.wait(cursor, audience, timeout=wait, limit=limit))
        # A client that leaves gives its slot back now, not when its wait would have ended.
        left = asyncio.ensure_future(_disconnected(request.receive))
        try:
            await asyncio.wait((waiting, left), return_when=asyncio.FIRST_COMPLETED)
        finally:
            left.cancel()
            if not waiting.done():
                waiting.cancel()
        if waiting.cancelled():
            return []  # nobody is there to read it
        answer = waiting.result()
        if answer is None:  # a burst larger than the hub holds passed while we waited
            return await run_in_threadpool(_read, rt.db, cursor, audience, limit)
        return answer[0]


class FeedStream(StreamingResponse):
    """The stream of Server-Sent Events, as a plain ASGI response.

    It writes the past from the catalog itself (when the hub no longer holds it), then
    joins the hub, which writes every later event to it as it is published (see
    ``registry.api.feed``); this task only waits for the stream to end: the client leaves,
    the server stops, the stream reaches its end (``hub.stream_max_s``, less up to a
    fifth: spread). Its wait slot is given back however it ends (even if it never started).
    """

    def __init__(
        self,
        *,
        db: Database,
        hub: EventHub,
        cursor: int,
        audience: Audience,
        blind: bool,
        on_close: Callable[[], None],
    ) -> None:
        self.status_code = 200
        self.media_type = STREAM_TYPE
        self.background = None
        self.init_headers({"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self.db, self.hub, self.cursor, self.audience = db, hub, cursor, audience
        self.blind = blind
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._stream(receive, send)
        except OSError:
            pass  # the client went away mid-write
        finally:
            self.on_close()

    async def _stream(self, receive: Receive, send: Send) -> None:
        hub = self.hub
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await _body(send, f"retry: 1000\n: lorareg event feed after {self.cursor}\n\n".encode())
        await hub.start()
        audience = self.audience
        if self.blind:  # asked for a namespace it may not see: heartbeats only, never an event
            audience = Audience(frozenset())
            self.cursor = max(self.cursor, hub.head)
        sub = hub.subscriber(audience, self.cursor, send)
        sub.behind = sub.cursor < hub.floor  # older than the hub holds: the catalog first
        left = asyncio.ensure_future(_disconnected(receive))
        try:
            while not (sub.ended or hub.closed or left.done()):
                if sub.behind:
                    await self._catch_up(sub, send, left)
                    continue
                hub.join(sub)  # from here on, the hub writes each new event
                await asyncio.wait((left, sub.wake), return_when=asyncio.FIRST_COMPLETED)
        finally:
            hub.leave(sub)
            left.cancel()
        if not left.done():
            # A client that stopped reading (its socket full) would hold this send forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(END_WRITE_S):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _catch_up(self, sub: Subscriber, send: Send, left: asyncio.Future[None]) -> None:
        """Write the events after ``sub.cursor`` from the catalog, a page at a time, up to
        where the hub takes over."""
        while not (self.hub.closed or left.done()):
            head = self.hub.head  # before the read: whatever commits after it, the hub brings
            page = await run_in_threadpool(_read, self.db, sub.cursor, sub.audience, PAGE)
            if page:
                await _body(send, b"".join(self.hub.frame(e) for e in page))
                sub.cursor = page[-1].id
            if len(page) < PAGE:
                sub.cursor = max(sub.cursor, head)
                sub.behind = False
                return


async def _body(send: Send, data: bytes) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    """Returns when the client closed the connection."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _read(db: Database, cursor: int, audience: Audience, limit: int) -> list[EventInfo]:
    return events.events_after(
        db, cursor, namespaces=audience.namespaces, namespace=audience.namespace, limit=limit
    )


def _blind(user: Any, namespace: str | None) -> bool:
    """True when the caller asked for one namespace outside its scope: it sees nothing
    (and is not told whether the namespace exists)."""
    return namespace is not None and not user.sees(namespace)


def _event_id(value: str) -> int:
    if not value.strip().isdigit() or int(value) > MAX_ID:
        raise InvalidInput(
            f"Last-Event-ID must be an event id (a whole number up to {MAX_ID}), got {value!r}"
        )
    return int(value)

"""The change feed: ``GET /api/v1/events`` as a list, a long poll (``wait``) or a stream of
Server-Sent Events (``Accept: text/event-stream``).

Every form shows only events of the caller's namespaces (events of no namespace, such as
token changes, only to unscoped tokens). Waiting readers are woken by the process's one
``EventHub`` and cost no catalog query while they wait. A token holds at most
``LORAREG_MAX_WAITS_PER_TOKEN`` waits and streams at once: more is 429 ``too_many_waits``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from registry.api.deps import MAX_ID, CurrentUser, Reader, RuntimeDep
from registry.api.feed import Audience, EventHub
from registry.api.responses import ERRORS
from registry.api.waits import WaitLimiter, wait_key
from registry.catalog.refs import check_name
from registry.db.database import Database
from registry.domain import EventInfo
from registry.errors import InvalidInput
from registry.lifecycle import events

router = APIRouter(prefix="/api/v1", tags=["admin"], responses=ERRORS)

STREAM_TYPE = "text/event-stream"
# Events per catalog read while a stream catches up.
PAGE = 1000

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
        body = _stream(rt.db, hub, cursor, audience, blind=_blind(user, namespace))
        return FeedStream(body, on_close=release)
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
        answer = await hub.wait(cursor, audience, timeout=wait, limit=limit)
        if answer is None:  # a burst larger than the hub holds passed while we waited
            return await run_in_threadpool(_read, rt.db, cursor, audience, limit)
        return answer[0]


class FeedStream(StreamingResponse):
    """A stream that gives its wait slot back however it ends (even if it never started)."""

    def __init__(self, body: AsyncIterator[bytes], *, on_close: Any) -> None:
        super().__init__(
            body,
            media_type=STREAM_TYPE,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


async def _stream(
    db: Database, hub: EventHub, cursor: int, audience: Audience, *, blind: bool
) -> AsyncIterator[bytes]:
    """The events after ``cursor``: first from the catalog, then live from the hub, with a
    heartbeat comment when nothing happened for ``hub.heartbeat_s``; ends after
    ``hub.stream_max_s`` or when the server stops."""
    yield f"retry: 1000\n: lorareg event feed after {cursor}\n\n".encode()
    await hub.start()
    clock = asyncio.get_running_loop().time
    ends = clock() + hub.stream_max_s
    caught_up = False
    waited_from = cursor  # where the hub takes over (past events the caller does not see)
    if blind:  # asked for a namespace it may not see: heartbeats only, never an event
        audience = Audience(frozenset())
        caught_up = True
    while not hub.closed and clock() < ends:
        if not caught_up:
            head = hub.head  # before the read: whatever commits after it, the hub brings
            page = await run_in_threadpool(_read, db, cursor, audience, PAGE)
            if page:
                yield b"".join(hub.frame(e) for e in page)
                cursor = page[-1].id
            if len(page) < PAGE:
                caught_up, waited_from = True, max(cursor, head)
            continue
        # Jittered, so that thousands of streams opened together do not beat together.
        left = min(hub.heartbeat_s * random.uniform(0.5, 1.0), ends - clock())
        answer = await hub.wait(waited_from, audience, timeout=max(left, 0.0), limit=PAGE)
        if answer is None:  # a burst larger than the hub holds: read it from the catalog
            caught_up = False
            continue
        page, waited_from = answer
        if page:
            yield b"".join(hub.frame(e) for e in page)  # one write for a burst
            cursor = page[-1].id
        elif not hub.closed:
            yield b": keep-alive\n\n"


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

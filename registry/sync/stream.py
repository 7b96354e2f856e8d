"""The change feed as Server-Sent Events, read by a thread: ``sync --follow`` over HTTP.

One ``EventStream`` is one ``GET /api/v1/events`` with ``Accept: text/event-stream``, resumed
from a cursor with ``Last-Event-ID``. A thread reads it and queues each event; the follower
takes what is queued, waiting up to its poll time. When the stream breaks or the server ends
it, the reader queues the reason and stops; the source opens a new one from the follower's
cursor. A server that answers with a plain list instead (one from before streams) is noted,
and the source long-polls from then on.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpx

from registry.domain import EventInfo
from registry.errors import LoraregError, Unavailable

STREAM_TYPE = "text/event-stream"
# The server sends a comment every 15 s: three missed ones mean the line is dead.
READ_TIMEOUT_S = 45.0
# Events handed over per take: a burst is applied in batches like a long poll's.
BATCH = 1000


class NotStreaming(Exception):
    """The server answered the stream request with something else (an older server)."""


class StreamEnded(Exception):
    """The server closed the stream (it stops, or streams have a lifetime): resume."""


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str | None, str, str]]:
    """(id, event, data) for each event of a text/event-stream; comments are skipped."""
    event_id: str | None = None
    kind, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event_id, kind, "\n".join(data)
            event_id, kind, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "id":
            event_id = value
        elif field == "event":
            kind = value
        elif field == "data":
            data.append(value)


class EventStream:
    """One stream of the feed after ``since``, read into a queue by a daemon thread."""

    def __init__(
        self, http: httpx.Client, *, since: int, namespace: str | None, check: Any
    ) -> None:
        self.http = http
        self.since = since  # the cursor the next take continues from
        self.namespace = namespace
        self.check = check  # raises the registry's error for a refused request
        self.opened_at = time.monotonic()
        self.items: queue.Queue[EventInfo | BaseException] = queue.Queue()
        self.broken: BaseException | None = None
        self._response: httpx.Response | None = None
        self._closed = False
        self.thread = threading.Thread(target=self._read, name="event-stream", daemon=True)
        self.thread.start()

    def take(self, wait: float) -> list[EventInfo]:
        """Events queued (waiting up to ``wait`` s for the first); raises what broke the
        stream once nothing is left before it."""
        if self.broken is not None:
            raise self.broken
        got: list[EventInfo] = []
        try:
            item = self.items.get(timeout=wait) if wait > 0 else self.items.get_nowait()
            while True:
                if isinstance(item, BaseException):
                    self.broken = item
                    break
                got.append(item)
                if len(got) >= BATCH:
                    break
                item = self.items.get_nowait()
        except queue.Empty:
            pass
        if not got and self.broken is not None:
            raise self.broken
        if got:
            self.since = got[-1].id
        return got

    @property
    def closed(self) -> bool:
        """``close`` was called (by the reader's owner, not by the server)."""
        return self._closed

    def close(self) -> None:
        """Stop reading; a ``take`` waiting meanwhile returns at once."""
        self._closed = True
        self.items.put(StreamEnded())
        if self._response is not None:
            with contextlib.suppress(Exception):  # the reader thread may be closing it too
                self._response.close()

    def _read(self) -> None:
        params: dict[str, Any] = {"since": self.since}
        if self.namespace:
            params["namespace"] = self.namespace
        headers = {"Accept": STREAM_TYPE, "Last-Event-ID": str(self.since)}
        timeout = httpx.Timeout(30.0, read=READ_TIMEOUT_S)
        try:
            with self.http.stream(
                "GET", "/api/v1/events", params=params, headers=headers, timeout=timeout
            ) as resp:
                self._response = resp
                if resp.status_code >= 400:
                    resp.read()
                    self.check(resp)
                if not resp.headers.get("content-type", "").startswith(STREAM_TYPE):
                    raise NotStreaming()
                for _id, _kind, data in parse_sse(resp.iter_lines()):
                    self.items.put(EventInfo.model_validate_json(data))
            self.items.put(StreamEnded())
        except (LoraregError, NotStreaming) as exc:
            self.items.put(exc)
        except (httpx.HTTPError, OSError, ValueError) as exc:
            if self._closed:
                return
            self.items.put(Unavailable(f"the event stream broke off: {exc}"))

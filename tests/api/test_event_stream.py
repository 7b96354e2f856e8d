"""The change feed at fleet scale: one watcher per server wakes every waiting reader, the
feed as Server-Sent Events (replay, live, resume, tenancy), the per-token cap on waits and
streams together, and a server that stops with streams open. Both catalogs: PostgreSQL
wakes readers through LISTEN/NOTIFY, SQLite through one poller."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from registry.access import create_token
from registry.db import models as m
from registry.lifecycle import events
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer


@pytest.fixture
def storage_backend() -> str:
    return "local"  # nothing here touches the store


def _add_event(rt: Runtime, namespace: str | None, kind: str = "test.changed") -> int:
    """One event as a change would record it (its own transaction, as every change)."""
    with rt.db.write() as s:
        row = m.Event(kind=kind, namespace=namespace, adapter="a", actor="t", payload={"n": 1})
        s.add(row)
        s.flush()
        return int(row.id)


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class StreamReader:
    """Reads one event stream in a thread: its events (id, kind, data) and its comments."""

    def __init__(self, url: str, headers: dict[str, str], params: dict[str, Any]) -> None:
        self.events: list[tuple[int, str, dict[str, Any]]] = []
        self.comments: list[str] = []
        self.status = 0
        self.ended = threading.Event()
        self.opened = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=60))
        self._args = (url, {**headers, "Accept": "text/event-stream"}, params)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.opened.wait(20), "the stream did not open"

    def _read(self) -> None:
        url, headers, params = self._args
        try:
            with self._client.stream(
                "GET", f"{url}/api/v1/events", headers=headers, params=params
            ) as resp:
                self.status = resp.status_code
                self.content_type = resp.headers.get("content-type", "")
                self.opened.set()
                fields: dict[str, str] = {}
                for line in resp.iter_lines():
                    if line.startswith(":"):
                        self.comments.append(line)
                    elif line:
                        key, _, value = line.partition(": ")
                        fields[key] = value
                    elif "id" in fields:
                        self.events.append(
                            (int(fields["id"]), fields["event"], json.loads(fields["data"]))
                        )
                        fields = {}
        except httpx.HTTPError:
            pass  # closed by the test
        finally:
            self.opened.set()
            self.ended.set()

    def wait_events(self, n: int, timeout: float = 10) -> list[tuple[int, str, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.events)

    def close(self) -> None:
        self._client.close()
        self.thread.join(timeout=10)


@pytest.fixture
def served(runtime: Runtime) -> Iterator[tuple[Any, str, str]]:
    """An app requiring tokens, its URL and an unscoped admin token."""
    root, _ = create_token(runtime.db, name="root", role="admin", actor="t")
    many = runtime.settings.model_copy(update={"max_waits_per_token": 100})
    rt = Runtime(many, db=runtime.db, store=runtime.store)
    app = create_app(rt, require_auth=True, background=False)
    app.state.feed.heartbeat_s = 0.3  # quick heartbeats, to see them
    with LiveServer(app) as srv:
        yield app, srv.url, root


def test_stream_replays_then_follows_live_and_resumes(
    runtime: Runtime, served: tuple[Any, str, str]
) -> None:
    _app, url, root = served
    before = events.last_event_id(runtime.db)
    first = [_add_event(runtime, "acme"), _add_event(runtime, "beta")]
    reader = StreamReader(url, _as(root), {"since": before})
    try:
        assert reader.status == 200 and reader.content_type.startswith("text/event-stream")
        assert [e[0] for e in reader.wait_events(2)] == first  # the past, from the catalog
        live = [_add_event(runtime, "acme", kind="stage.promoted") for _ in range(3)]
        got = reader.wait_events(5)
        assert [e[0] for e in got] == first + live  # then live, in order, each once
        assert got[-1][1] == "stage.promoted"
        listed = httpx.get(f"{url}/api/v1/events?since={before}", headers=_as(root)).json()
        assert [e[2] for e in got] == listed  # data is the list's item, as is
        # Heartbeats keep a quiet stream alive.
        deadline = time.monotonic() + 5
        while not any("keep-alive" in c for c in reader.comments):
            assert time.monotonic() < deadline, reader.comments
            time.sleep(0.05)
    finally:
        reader.close()
    # Resume: Last-Event-ID (or `after`) gives only what followed.
    again = StreamReader(url, {**_as(root), "Last-Event-ID": str(live[0])}, {})
    by_param = StreamReader(url, _as(root), {"after": str(live[1])})
    try:
        assert [e[0] for e in again.wait_events(2)] == live[1:]
        assert [e[0] for e in by_param.wait_events(1)] == live[2:]
        time.sleep(0.3)
        assert len(again.events) == 2 and len(by_param.events) == 1
    finally:
        again.close()
        by_param.close()


def test_a_scoped_stream_holds_only_its_namespaces(
    runtime: Runtime, served: tuple[Any, str, str]
) -> None:
    _app, url, _root = served
    beta, _ = create_token(runtime.db, name="b", role="reader", actor="t", namespaces=["beta"])
    before = events.last_event_id(runtime.db)
    mine = StreamReader(url, _as(beta), {"since": before})
    peek = StreamReader(url, _as(beta), {"since": before, "namespace": "acme"})
    try:
        ids = {ns: _add_event(runtime, ns) for ns in ("acme", "beta", None, "gamma")}
        ids["beta2"] = _add_event(runtime, "beta")
        got = mine.wait_events(2)
        time.sleep(0.5)  # anything else would have arrived by now
        assert [e[0] for e in mine.events] == [ids["beta"], ids["beta2"]]
        assert {e[2]["namespace"] for e in got} == {"beta"}
        # Another tenant's namespace by name: heartbeats only, not even its existence.
        assert peek.status == 200 and peek.events == []
        assert any("keep-alive" in c for c in peek.comments)
    finally:
        mine.close()
        peek.close()


def test_waiting_readers_cost_no_catalog_query_each(
    runtime: Runtime, served: tuple[Any, str, str]
) -> None:
    """Finding 4: each waiter used to query the catalog every 100 ms. Now one watcher per
    process reads each new event once and hands it to every waiter."""
    _app, url, root = served
    tail = _add_event(runtime, "acme")
    statements: list[str] = []

    def count(_conn: Any, _cur: Any, sql: str, *_: Any) -> None:
        statements.append(sql)

    waiters = 20
    answers: list[httpx.Response] = []
    with httpx.Client(timeout=30, headers=_as(root)) as c:
        c.get(f"{url}/api/v1/events?since={tail}&wait=0.1")  # the watcher is running
        event.listen(runtime.db.engine, "before_cursor_execute", count)
        try:
            threads = [
                threading.Thread(
                    target=lambda: answers.append(c.get(f"{url}/api/v1/events?since={tail}&wait=5"))
                )
                for _ in range(waiters)
            ]
            for t in threads:
                t.start()
            time.sleep(0.7)  # every request in, its token checked
            start = len(statements)
            time.sleep(1.0)
            quiet = len(statements) - start
            news = _add_event(runtime, "acme")
            for t in threads:
                t.join(timeout=20)
        finally:
            event.remove(runtime.db.engine, "before_cursor_execute", count)
    assert [r.status_code for r in answers] == [200] * waiters
    assert all([e["id"] for e in r.json()] == [news] for r in answers)
    # In a quiet second: the SQLite poller reads 10 times for the whole process (a BEGIN
    # and a SELECT each) and PostgreSQL's watcher not at all (it reads when notified),
    # where 20 waiters polling every 100 ms made 400 statements.
    assert quiet <= 30, quiet


def test_streams_and_long_polls_share_the_per_token_cap(runtime: Runtime) -> None:
    rt = Runtime(
        runtime.settings.model_copy(update={"max_waits_per_token": 2}),
        db=runtime.db,
        store=runtime.store,
    )
    one, _ = create_token(runtime.db, name="one", role="reader", actor="t")
    two, _ = create_token(runtime.db, name="two", role="reader", actor="t")
    app = create_app(rt, require_auth=True, background=False)
    with LiveServer(app) as srv:
        streams = [StreamReader(srv.url, _as(one), {}) for _ in range(2)]
        try:
            assert [s.status for s in streams] == [200, 200]
            third = httpx.get(
                f"{srv.url}/api/v1/events",
                headers={**_as(one), "Accept": "text/event-stream"},
                timeout=10,
            )
            tail = events.last_event_id(runtime.db)  # nothing newer: the poll would wait
            poll = httpx.get(
                f"{srv.url}/api/v1/events?since={tail}&wait=1", headers=_as(one), timeout=10
            )
            for refused in (third, poll):
                assert refused.status_code == 429, refused.text
                assert refused.json()["error"]["code"] == "too_many_waits"
                assert int(refused.headers["retry-after"]) > 0
            other = StreamReader(srv.url, _as(two), {})  # another token is unaffected
            assert other.status == 200
            other.close()
            streams.pop().close()  # a closed stream gives its slot back
            deadline = time.monotonic() + 10
            while app.state.waits.active.get(_key(runtime, "one"), 0) > 1:
                assert time.monotonic() < deadline, app.state.waits.active
                time.sleep(0.05)
            assert httpx.get(
                f"{srv.url}/api/v1/events?since={tail}&wait=0.2", headers=_as(one), timeout=10
            ).is_success
            found = httpx.get(f"{srv.url}/api/v1/events?wait=1", headers=_as(one), timeout=10)
            assert found.is_success and found.json()  # found at once: never counts
        finally:
            for s in streams:
                s.close()
        deadline = time.monotonic() + 10
        while app.state.waits.active:
            assert time.monotonic() < deadline, app.state.waits.active
            time.sleep(0.05)


def _key(rt: Runtime, name: str) -> str:
    from registry.access import list_tokens

    return f"token:{next(t.id for t in list_tokens(rt.db) if t.name == name)}"


def test_the_server_stops_with_streams_and_waits_open(runtime: Runtime) -> None:
    app = create_app(runtime, require_auth=False, background=False)
    srv = LiveServer(app).__enter__()
    streams = [StreamReader(srv.url, {}, {}) for _ in range(3)]
    answer: list[Any] = []

    def long_poll() -> None:
        try:
            answer.append(httpx.get(f"{srv.url}/api/v1/events?since=999&wait=60", timeout=90))
        except httpx.HTTPError as exc:
            answer.append(exc)

    poll = threading.Thread(target=long_poll, daemon=True)
    poll.start()
    deadline = time.monotonic() + 10
    while sum(app.state.waits.active.values()) < 4:  # three streams and the long poll
        assert time.monotonic() < deadline, app.state.waits.active
        time.sleep(0.02)
    srv.server.should_exit = True
    srv.thread.join(timeout=10)
    assert not srv.thread.is_alive(), "the server hung on its open streams"
    for s in streams:
        assert s.ended.wait(5), "a stream outlived its server"
        s.close()
    poll.join(timeout=5)
    assert not poll.is_alive()
    assert isinstance(answer[0], httpx.Response), answer
    assert answer[0].status_code == 200 and answer[0].json() == []  # answered, not cut


def test_a_bad_last_event_id_is_one_clear_error(served: tuple[Any, str, str]) -> None:
    _app, url, root = served
    for bad in ("abc", "-1", "9" * 19):
        resp = httpx.get(
            f"{url}/api/v1/events",
            headers={**_as(root), "Accept": "text/event-stream", "Last-Event-ID": bad},
            timeout=10,
        )
        assert resp.status_code in (400, 422), (bad, resp.status_code)
        assert "Last-Event-ID" in resp.text or "last-event-id" in resp.text


def test_a_stream_that_stops_reading_holds_back_no_other_and_loses_nothing(
    runtime: Runtime, served: tuple[Any, str, str]
) -> None:
    """The hub writes each event to every stream in one pass: one whose socket is full is
    left to a task of its own (the others go on), and when it reads again it gets every
    event, in order, once."""
    import socket

    app, url, root = served
    host, port = url.removeprefix("http://").split(":")
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect((host, int(port)))
    slow.settimeout(30)
    before = events.last_event_id(runtime.db)
    request = (
        f"GET /api/v1/events?since={before} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {root}\r\nAccept: text/event-stream\r\n\r\n"
    )
    slow.sendall(request.encode())
    assert slow.recv(1024).startswith(b"HTTP/1.1 200")
    fast = StreamReader(url, _as(root), {"since": before})
    try:
        deadline = time.monotonic() + 20
        while len(app.state.feed._subs) < 2:  # both streams joined the hub
            assert time.monotonic() < deadline
            time.sleep(0.02)
        big = "x" * 16_000  # 400 of these: more than the kernel and the server buffer
        ids = []
        for _ in range(400):
            with runtime.db.write() as s:
                row = m.Event(kind="test.big", namespace="acme", actor="t", payload={"b": big})
                s.add(row)
                s.flush()
                ids.append(int(row.id))
        got = fast.wait_events(400, timeout=60)
        assert [e[0] for e in got] == ids  # while the slow one read nothing
        received = b""
        seen: list[int] = []
        while len(seen) < 400:
            chunk = slow.recv(1 << 20)
            assert chunk, "the slow stream ended"
            received += chunk
            *lines, received = received.split(b"\n")
            seen += [int(line[4:]) for line in lines if line.startswith(b"id: ")]
        assert seen == ids
    finally:
        slow.close()
        fast.close()


def test_a_long_poll_whose_client_left_gives_its_slot_back_at_once(runtime: Runtime) -> None:
    rt = Runtime(
        runtime.settings.model_copy(update={"max_waits_per_token": 2}),
        db=runtime.db,
        store=runtime.store,
    )
    one, _ = create_token(runtime.db, name="one", role="reader", actor="t")
    app = create_app(rt, require_auth=True, background=False)
    tail = events.last_event_id(runtime.db)
    with LiveServer(app) as srv:
        host, port = srv.url.removeprefix("http://").rsplit(":", 1)
        polls = []
        for _ in range(2):  # the cap, each waiting up to a minute
            s = socket.create_connection((host, int(port)), timeout=30)
            s.sendall(
                f"GET /api/v1/events?since={tail}&wait=60 HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {one}\r\n\r\n".encode()
            )
            polls.append(s)
        key = _key(runtime, "one")
        deadline = time.monotonic() + 10
        while app.state.waits.active.get(key, 0) < 2:
            assert time.monotonic() < deadline, app.state.waits.active
            time.sleep(0.05)
        for s in polls:
            s.close()
        while app.state.waits.active.get(key, 0):  # well before the minute is up
            assert time.monotonic() < deadline + 10, app.state.waits.active
            time.sleep(0.05)
        again = httpx.get(
            f"{srv.url}/api/v1/events?since={tail}&wait=0.2", headers=_as(one), timeout=10
        )
        assert again.status_code == 200 and again.json() == []

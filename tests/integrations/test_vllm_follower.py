"""The plugin's follower without vLLM: it reads the change feed as ``lorareg sync --follow``
does (one stream of Server-Sent Events, resumed with ``Last-Event-ID`` whenever the server
ends it; long polls with a server that does not stream) and switches the names it served
when their version moves. The engine is a recorder of the calls vLLM would get."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from registry.client.remote import RemoteClient
from registry.integrations.vllm.follower import NameFollower
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer
from tests.integrations.conftest import make_resolver

pytestmark = [
    pytest.mark.parametrize(
        ("db_backend", "storage_backend"), [("sqlite", "local")], indirect=True
    ),
    pytest.mark.parametrize("client_kind", ["local"], indirect=True),
]


class Engine:
    """Records what the follower asks of vLLM."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []

    def switch(self, name: str, path: str) -> None:
        self.calls.append(("switch", name, path))

    def unload(self, name: str) -> bool:
        self.calls.append(("unload", name, None))
        return True


class FeedRequests:
    """ASGI wrapper: notes each request for the feed (its query and headers); with
    ``streams=False`` it drops ``Accept``, as a server from before streams would ignore it."""

    def __init__(self, app: Any, *, streams: bool = True) -> None:
        self.app = app
        self.streams = streams
        self.seen: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/v1/events":
            headers = {k.decode(): v.decode() for k, v in scope["headers"]}
            self.seen.append((scope["query_string"].decode(), headers))
            if not self.streams:
                kept = [(k, v) for k, v in scope["headers"] if k != b"accept"]
                scope = {**scope, "headers": kept}
        await self.app(scope, receive, send)

    def streams_opened(self) -> list[dict[str, str]]:
        return [h for _, h in self.seen if h.get("accept") == "text/event-stream"]

    def long_polls(self) -> list[str]:
        """Requests that wait (plain reads, ``wait=0``, find the feed's head)."""
        return [q for q, _ in self.seen if float(parse_qs(q).get("wait", ["0"])[0]) > 0]


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextmanager
def following(
    runtime: Runtime, base: Path, cache: Path, *, streams: bool = True
) -> Iterator[tuple[NameFollower, Engine, FeedRequests, Any]]:
    app = create_app(runtime, background=False)
    app.state.feed.stream_max_s = 1.2  # streams end often: the follower must resume them
    wrapped = FeedRequests(app, streams=streams)
    with LiveServer(wrapped) as srv:
        remote = RemoteClient(srv.url)
        resolver = make_resolver(remote, base, cache)
        engine = Engine()
        # As the plugin builds it: the resolver's source is the follower's too.
        follower = NameFollower(resolver, resolver.source, engine, log=lambda _: None)  # type: ignore[arg-type]
        try:
            yield follower, engine, wrapped, resolver
        finally:
            follower.close()
            resolver.close()
            remote.close()


def switched_to(engine: Engine, resolver: Any, name: str, version: int) -> bool:
    served = resolver.served.get(name)
    return (
        served is not None
        and served.version == version
        and ("switch", name, str(served.path)) in engine.calls
    )


def test_the_follower_streams_resumes_and_switches_promoted_names(
    registry: Any, runtime: Runtime, base_library: dict[str, Path], tmp_path: Path
) -> None:
    with following(runtime, base_library["tiny"], tmp_path / "cache") as (f, engine, seen, r):
        first = r.resolve("acme/voice")
        assert first is not None and first.version == 1
        f.start()
        wait_for(lambda: seen.streams_opened(), "the follower's stream")
        registry.promote("acme/voice:2", to="production")
        wait_for(lambda: switched_to(engine, r, "acme/voice", 2), "the switch to v2")
        assert r.served["acme/voice"].path != first.path  # a new content-id folder
        # The server ends streams after 1.2 s here: the follower resumes from its cursor.
        opened = len(seen.streams_opened())
        wait_for(lambda: len(seen.streams_opened()) > opened, "a resumed stream")
        resumed = seen.streams_opened()[-1]
        assert int(resumed["last-event-id"]) == f.cursor
        registry.promote("acme/voice:1", to="production")
        wait_for(lambda: switched_to(engine, r, "acme/voice", 1), "the switch back to v1")
        assert seen.long_polls() == []  # the stream, never a long poll
        assert f.source.streaming is True  # type: ignore[attr-defined]
        f.close()  # closing ends the wait on the stream (poll_wait_s is 10 s)
        assert not f.thread.is_alive()


def test_the_follower_long_polls_a_server_without_streams(
    registry: Any, runtime: Runtime, base_library: dict[str, Path], tmp_path: Path
) -> None:
    with following(runtime, base_library["tiny"], tmp_path / "c", streams=False) as (
        f,
        engine,
        seen,
        r,
    ):
        assert r.resolve("acme/voice") is not None
        f.start()
        wait_for(lambda: f.source.streaming is False, "the switch to long polls")  # type: ignore[attr-defined]
        registry.promote("acme/voice:2", to="production")
        wait_for(lambda: switched_to(engine, r, "acme/voice", 2), "the switch to v2")
        assert seen.long_polls()

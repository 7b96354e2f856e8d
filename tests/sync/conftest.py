"""Helpers for the sync tests: a registry server that can be stopped and started again on
the same port, a follower running in a thread, and readers of a synced folder."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.runtime import Runtime
from registry.sync import Backoff, Follower, NodeLayout, SyncOptions, source_for
from tests.fixtures.s3 import free_port

BASE = "tiny-llama"
# The heavy follow tests run on the local store, on both databases (the catalog tests'
# ``db_backend`` fixture); one-shot sync runs on every database and store.
LOCAL_STORE = pytest.mark.parametrize("storage_backend", ["local"], indirect=True)


class RestartableServer:
    """uvicorn serving ``runtime`` on a fixed loopback port that can be stopped and started
    again on the same port."""

    def __init__(self, runtime: Runtime, *, require_auth: bool = False) -> None:
        self.runtime = runtime
        self.require_auth = require_auth
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: Any = None
        self.thread: threading.Thread | None = None

    def start(self) -> RestartableServer:
        import uvicorn

        from registry.api.server import Server
        from registry.server import create_app

        app = create_app(self.runtime, require_auth=self.require_auth, background=False)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: _healthy(self.url), timeout=20, what="server start")
        return self

    def stop(self) -> None:
        # Stops listening at once; a long poll already open gets its (empty) answer.
        self.server.should_exit = True
        assert self.thread is not None
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "server did not stop"


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(cond: Callable[[], Any], *, timeout: float, what: str, step: float = 0.005) -> float:
    """Poll ``cond`` until truthy; returns the seconds it took. Fails the test on timeout."""
    start = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


class RunningFollower:
    """A Follower in a background thread, with its log lines kept."""

    def __init__(self, client: Any, dest: Path, options: SyncOptions, poll_wait_s: float) -> None:
        self.lines: list[str] = []
        self.follower = Follower(
            NodeLayout(dest),
            source_for(client),
            options,
            log=self.lines.append,
            poll_wait_s=poll_wait_s,
            backoff=Backoff(initial=0.05, maximum=0.5),
        )
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.follower.run(follow=True)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def stop(self) -> None:
        self.follower.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "follower did not stop"
        if self.error is not None:
            raise self.error


@contextmanager
def following(
    client: Any, dest: Path, *, poll_wait_s: float = 1.0, **options: Any
) -> Iterator[RunningFollower]:
    """Follow in a thread for the block; waits for the first full sync before yielding."""
    options.setdefault("base", BASE)
    running = RunningFollower(client, dest, SyncOptions(**options), poll_wait_s)
    running.thread.start()
    wait_for(
        lambda: any(line.startswith("synced ") for line in running.lines) or running.error,
        timeout=30,
        what="the first sync",
    )
    try:
        yield running
    finally:
        running.stop()


def marker(dest: Path, repo: str) -> dict[str, Any] | None:
    """The marker of the version ``dest/repo`` points at now, or None when there is none."""
    try:
        folder = os.path.realpath(dest / repo)
        with open(os.path.join(folder, ".lorareg.json")) as fh:
            doc: dict[str, Any] = json.load(fh)
            return doc
    except FileNotFoundError:
        return None


def synced_number(dest: Path, repo: str) -> int | None:
    m = marker(dest, repo)
    return int(m["version"]) if m else None


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

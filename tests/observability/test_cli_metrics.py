"""``--metrics-port`` of the long-running commands, as real processes scraped over HTTP:
``lorareg sync --follow`` (its changes and the folder's figures) and ``lorareg worker``
(the job queue). SQLite and the local store: the queries behind the figures are covered
on both databases by test_metrics.py."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.client.local import LocalClient
from registry.config import Settings
from registry.db import models
from registry.lifecycle.events import last_event_id
from registry.merge import job_queue
from registry.runtime import Runtime
from tests.observability.test_metrics import samples, value

pytestmark = pytest.mark.parametrize(
    ("db_backend", "storage_backend"), [("sqlite", "local")], indirect=True
)
LORAREG = str(Path(sys.executable).with_name("lorareg"))


def _env(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "LORAREG_HOME": str(settings.home),
        "LORAREG_DATABASE_URL": settings.effective_database_url,
        "LORAREG_STORAGE_URL": settings.effective_storage_url,
    }
    env.pop("LORAREG_URL", None)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


@contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    """Run ``argv`` until the block ends (SIGTERM); yields its metrics URL from its log."""
    with log.open("wb") as err:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 180  # a worker imports torch: slow on a loaded machine
        while not (found := re.search(r"metrics on (http://\S+)", log.read_text())):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no metrics line in the log"
            time.sleep(0.05)
        yield found.group(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scrape_until(url: str, check: Any, timeout: float = 90) -> dict[Any, float]:
    deadline = time.monotonic() + timeout
    while True:
        got = samples(httpx.get(url, timeout=30).text)
        if check(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_sync_metrics_port(
    settings: Settings, runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    c = LocalClient(runtime)
    c.push(adapter_library["v1"], "acme/a", base="tiny-llama")
    c.push(adapter_library["v2"], "acme/a", base="tiny-llama")
    c.promote("acme/a:1", to="production")
    dest = tmp_path / "node"
    argv = [LORAREG, "sync", "--to", str(dest), "--base", "tiny-llama", "--follow"]
    argv += ["--max-bytes", "10M", "--metrics-port", "0"]
    with running(argv, _env(settings), tmp_path / "sync.log") as url:
        got = scrape_until(url, lambda s: value(s, "lorareg_sync_adapters", state="present"))
        assert value(got, "lorareg_sync_adapters", state="present") == 1
        assert value(got, "lorareg_sync_budget_bytes") == 10_000_000
        assert 0 < value(got, "lorareg_sync_disk_bytes") <= 10_000_000
        assert value(got, "lorareg_sync_changes_total", change="added") == 1
        c.promote("acme/a:2", to="production")
        got = scrape_until(url, lambda s: value(s, "lorareg_sync_changes_total", change="updated"))
        assert value(got, "lorareg_sync_changes_total", change="updated") == 1
        assert value(got, "lorareg_sync_fetched_bytes_total") > 0
        assert 0 <= value(got, "lorareg_sync_lag_seconds") < 30


def test_worker_metrics_port(settings: Settings, runtime: Runtime, tmp_path: Path) -> None:
    spec = {"method": "linear", "inputs": [], "base": "tiny-llama", "output": "acme/m"}
    argv = [LORAREG, "worker", "--metrics-port", "0", "--poll-seconds", "600"]
    with running(argv, _env(settings), tmp_path / "worker.log") as url:
        job_queue.enqueue(runtime.db, spec, actor="t")
        got = scrape_until(url, lambda s: value(s, "lorareg_jobs", state="queued"))
        assert value(got, "lorareg_jobs", state="queued") == 1
        assert value(got, "lorareg_job_oldest_age_seconds", state="queued") >= 0
        assert ("lorareg_worker_job_duration_seconds_count", frozenset()) in got


def test_followers_gauge_counts_streams_and_long_polls_exactly(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    """A ``lorareg serve`` of its own (nothing else moves its gauge): N streams and M long
    polls open make ``lorareg_followers`` exactly N + M; once they are gone it is 0."""
    streams, polls = 3, 2
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [LORAREG, "serve", "--port", "0"],
            env=_env(settings),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    opened: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"serving on (http://\S+)", log.read_text())):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no serving line in the log"
            time.sleep(0.05)
        url = found.group(1)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        metrics = f"{url}/metrics"
        httpx.get(f"{url}/healthz", timeout=30)
        assert value(samples(httpx.get(metrics, timeout=30).text), "lorareg_followers") == 0

        def request(path: str, *headers: str) -> socket.socket:
            s = socket.create_connection((host, int(port)), timeout=30)
            lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *headers, "", ""]
            s.sendall("\r\n".join(lines).encode())
            opened.append(s)
            return s

        for _ in range(streams):
            s = request("/api/v1/events", "Accept: text/event-stream")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")  # its slot is held from here
        head = last_event_id(runtime.db)
        for _ in range(polls):  # nothing after the head yet: they wait (up to 60 s)
            request(f"/api/v1/events?since={head}&wait=60")
        want = streams + polls
        got = scrape_until(metrics, lambda s: value(s, "lorareg_followers") == want)
        assert value(got, "lorareg_followers") == want
        for s in opened:
            s.close()  # the streams notice at once
        # A long poll whose client left is noticed when it is answered: a new event does.
        with runtime.db.write() as session:
            session.add(models.Event(kind="test.changed", namespace="acme", actor="t", payload={}))
        got = scrape_until(metrics, lambda s: value(s, "lorareg_followers") == 0)
        assert value(got, "lorareg_followers") == 0
    finally:
        for s in opened:
            s.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

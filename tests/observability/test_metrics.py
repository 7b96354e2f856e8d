"""``/metrics`` scraped and parsed with prometheus_client's own parser: requests by route
template and status, latency histograms, resolve cache hits, job queue depth and age,
storage errors, who may read it, and values summed across processes.

Local store only (a storage fault is made on disk); both databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from registry.access import create_token
from registry.client.local import LocalClient
from registry.merge import job_queue
from registry.runtime import Runtime
from registry.server import create_app

LOCAL_STORE = pytest.mark.parametrize("storage_backend", ["local"], indirect=True)
RESOLVE = "/api/v1/resolve/{namespace}/{name}"
ROOT = Path(__file__).resolve().parents[2]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scrape: dict[Any, float], name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def pushed(runtime: Runtime, adapter_library: dict[str, Path]) -> Runtime:
    LocalClient(runtime).push(adapter_library["v1"], "acme/a", base="tiny-llama")
    return runtime


def http(app: Any, peer: str = "127.0.0.1") -> TestClient:
    """A client calling ``app`` in-process from the address ``peer``."""
    return TestClient(app, base_url="http://127.0.0.1", client=(peer, 40000))


def scrape(client: TestClient, **headers: str) -> dict[Any, float]:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return samples(resp.text)


@LOCAL_STORE
def test_requests_cache_and_errors_move_the_counters(pushed: Runtime) -> None:
    app = create_app(pushed, require_auth=False, background=False)
    with http(app) as c:
        before = scrape(c)
        for _ in range(3):
            assert (c.get("/api/v1/resolve/acme/a")).status_code == 200
        assert (c.get("/api/v1/resolve/acme/nope")).status_code == 404
        assert (c.get("/zz-not-a-route/x/y/z/w/v")).status_code == 404
        after = scrape(c)

        def moved(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        ok = {"method": "GET", "route": RESOLVE, "status": "200"}
        assert moved("lorareg_http_requests_total", **ok) == 3
        assert moved("lorareg_http_requests_total", **{**ok, "status": "404"}) == 1
        # A path no route knows is one series, whatever the path was.
        assert (
            moved("lorareg_http_requests_total", method="GET", route="unmatched", status="404") >= 1
        )
        timed = {"method": "GET", "route": RESOLVE}
        assert moved("lorareg_http_request_duration_seconds_count", **timed) == 4
        inf = moved("lorareg_http_request_duration_seconds_bucket", **timed, le="+Inf")
        assert inf == 4
        assert moved("lorareg_http_request_duration_seconds_sum", **timed) > 0
        hits = moved("lorareg_resolve_cache_total", result="hit")
        misses = moved("lorareg_resolve_cache_total", result="miss")
        assert hits + misses == 4 and misses >= 1 and hits >= 1
        # No raw path ever becomes a label.
        assert not any("zz-not-a-route" in str(k) for k in after)

        # A store that cannot open a blob: the download is a 503 counted as a storage error.
        version = LocalClient(pushed).show("acme/a:1")
        sha = next(f.sha256 for f in version.files if f.path == "adapter_config.json")
        blob = pushed.store._path(sha)  # type: ignore[attr-defined]
        blob.unlink()
        blob.mkdir()
        files = "/api/v1/adapters/acme/a/versions/1/files/adapter_config.json"
        assert (c.get(files)).status_code == 503
        final = scrape(c)
        errors = value(final, "lorareg_backend_errors_total", backend="storage")
        assert errors - value(after, "lorareg_backend_errors_total", backend="storage") == 1


@LOCAL_STORE
def test_job_queue_depth_and_age_are_read_at_scrape_time(runtime: Runtime) -> None:
    app = create_app(runtime, require_auth=False, background=False)
    with http(app) as c:
        empty = scrape(c)
        assert value(empty, "lorareg_jobs", state="queued") == 0
        spec = {"method": "linear", "inputs": [], "base": "tiny-llama", "output": "acme/m"}
        for _ in range(2):
            job_queue.enqueue(runtime.db, spec, actor="t")
        full = scrape(c)
        assert value(full, "lorareg_jobs", state="queued") == 2
        assert value(full, "lorareg_jobs", state="running") == 0
        assert value(full, "lorareg_job_oldest_age_seconds", state="queued") >= 0
        claimed = job_queue.claim(runtime.db, "w1", lease_s=30)
        assert claimed is not None
        moved = scrape(c)
        assert value(moved, "lorareg_jobs", state="queued") == 1
        assert value(moved, "lorareg_jobs", state="running") == 1


@pytest.fixture
def secured(runtime: Runtime) -> Iterator[tuple[Any, dict[str, str]]]:
    tokens = {
        "reader": create_token(runtime.db, name="r", role="reader", actor="t")[0],
        "scoped": create_token(runtime.db, name="s", role="admin", actor="t", namespaces=["beta"])[
            0
        ],
    }
    yield create_app(runtime, require_auth=True, background=False), tokens


@LOCAL_STORE
def test_who_may_read_metrics(secured: tuple[Any, dict[str, str]]) -> None:
    app, tokens = secured
    with http(app, peer="10.1.2.3") as remote:
        resp = remote.get("/metrics")
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"
        scoped = {"Authorization": f"Bearer {tokens['scoped']}"}
        resp = remote.get("/metrics", headers=scoped)
        assert resp.status_code == 403 and "unscoped token" in resp.json()["error"]["message"]
        scrape(remote, Authorization=f"Bearer {tokens['reader']}")
    with http(app) as local:
        scrape(local)  # a Prometheus agent on this host needs no token
        # ...but a proxy on this host forwarding a remote client's request does.
        proxied = local.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 401


def test_values_are_summed_across_processes(tmp_path: Path) -> None:
    """Several server processes sharing PROMETHEUS_MULTIPROC_DIR: one scrape sees them all."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    bump = (
        "from registry.observability import metrics as m;"
        "m.HTTP_REQUESTS.labels('GET', '/x', '200').inc(3); m.FOLLOWERS.inc(2);"
        "from registry.observability import exposition as e; print(e.render().decode())"
    )
    live = subprocess.run(
        [sys.executable, "-c", bump], env=env, check=True, timeout=60, capture_output=True
    )
    assert value(samples(live.stdout.decode()), "lorareg_followers") == 2
    ends = bump + "; e.forget_this_process()"
    subprocess.run([sys.executable, "-c", ends], env=env, check=True, timeout=60)
    read = (
        "import json, os; from registry.observability import exposition;"
        "print(json.dumps([exposition.multiprocess_mode(), exposition.render().decode()]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", read], env=env, check=True, timeout=60, capture_output=True
    )
    mode, text = json.loads(out.stdout)
    assert mode is True
    scrape = samples(text)
    assert value(scrape, "lorareg_http_requests_total", method="GET", route="/x", status="200") == 6
    # The process that ended cleanly took its followers with it; the other's remain.
    assert value(scrape, "lorareg_followers") == 2

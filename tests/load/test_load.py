"""Load: two ``lorareg serve`` replicas and two ``lorareg worker`` processes on one
PostgreSQL and one S3 server (moto over HTTP).

(a) 50 concurrent pushes to one adapter, spread over both replicas: all succeed, with
    distinct version numbers 1..50.
(b) 200 concurrent resolvers across both replicas while production moves 20 times: no 5xx,
    every answer a promoted version, and both replicas answer the last one within a second.
(c) 20 merge jobs queued over HTTP: every one succeeds, exactly once, on the two workers.

One test, so that under ``pytest -n`` one worker starts one cluster (on two cores a second
cluster would double the start-up and skew every figure). Figures (requests, errors,
p50/p99, wall times) are printed and written to ``test-artifacts/load-summary.txt``.
A slow suite: CI runs it, ``-m "not slow"`` skips it.
"""

from __future__ import annotations

import math
import shutil
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from registry.client.remote import RemoteClient
from registry.domain import PushResult
from tests.fixtures.catalog import truncate_all
from tests.load.cluster import Cluster, cluster_env
from tests.load.figures import SUMMARY, Calls, percentile, report

pytestmark = pytest.mark.slow

PUSHES = 50
RESOLVERS = 200
PROMOTIONS = 20
MERGES = 20
# Bounds, so a stuck server fails the test instead of hanging it.
MAX_RESOLVES_PER_THREAD = 200
MERGE_DEADLINE_S = 180.0
PROMOTION_GAP_S = 0.3
CONVERGE_S = 1.0


@pytest.fixture
def cluster(
    pg_database: str,
    s3_server: str,
    s3_client: Any,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    truncate_all(pg_database)  # the per-worker database may hold an earlier test's rows
    bucket = f"lorareg-load-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    home = tmp_path / "cluster"
    home.mkdir()
    env = cluster_env(
        database_url=pg_database,
        storage_url=f"s3://{bucket}/blobs",
        s3_endpoint_url=s3_server,
        home=home,
    )
    # The servers read the test's base model folder (a server-side source) from here.
    env["LORAREG_BASE_ROOTS"] = str(tmp_path_factory.getbasetemp())
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(f"lorareg load suite, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    c = Cluster(env=env, logs=home)
    try:
        t0 = time.monotonic()
        c.start_servers(2)
        c.start_workers(2)
        report("cluster", [f"2 servers + 2 workers up in {time.monotonic() - t0:.1f} s"])
        yield c
    finally:
        c.stop()


def test_load(
    cluster: Cluster,
    adapter_library: dict[str, Path],
    base_library: dict[str, Path],
    pg_database: str,
    tmp_path: Path,
) -> None:
    t0 = time.monotonic()
    try:
        concurrent_pushes(cluster, adapter_library, tmp_path / "copies")
        resolves_during_promotions(cluster, adapter_library)
        merge_jobs(cluster, adapter_library, base_library, pg_database)
    except BaseException:
        print(cluster.log_tails())  # shown with the failure: what the servers said
        raise
    report("total", [f"three scenarios in {time.monotonic() - t0:.1f} s"])
    assert not cluster.exited(), f"{cluster.exited()} exited under load\n{cluster.log_tails()}"


# -- (a) pushes ---------------------------------------------------------------------------


def _copies(src: Path, root: Path, count: int) -> list[Path]:
    """``count`` copies of an adapter, each with its own README: distinct content ids."""
    out = []
    for i in range(count):
        dest = root / f"copy-{i:03d}"
        shutil.copytree(src, dest)
        (dest / "README.md").write_text(f"# load copy {i}\n\n{uuid.uuid4()}\n")
        out.append(dest)
    return out


def _push(url: str, folder: Path, repo: str, actor: str) -> tuple[PushResult, float]:
    client = RemoteClient(url, actor=actor)
    try:
        t0 = time.monotonic()
        result = client.push(folder, repo)
        return result, time.monotonic() - t0
    finally:
        client.close()


def concurrent_pushes(cluster: Cluster, adapter_library: dict[str, Path], root: Path) -> None:
    folders = _copies(adapter_library["v1"], root, PUSHES)
    repo = "load/pushed"
    # The copies share their weights and config blobs. Registered first, so each push
    # uploads only its README: moto's S3 answers 500 when one key is PUT concurrently
    # (moto/s3/models.py FakeKey.etag reads the buffer the next PUT closed); AWS S3 and
    # MinIO do not, and the number allocation under test is the same either way.
    _push(cluster.urls[0], adapter_library["v1"], "load/seed", "trainer")
    start = threading.Barrier(PUSHES)

    def one(i: int) -> tuple[PushResult, float]:
        start.wait(timeout=60)  # all 50 begin together
        return _push(cluster.urls[i % 2], folders[i], repo, f"pusher-{i}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=PUSHES) as pool:
        results = list(pool.map(one, range(PUSHES)))
    wall = time.monotonic() - t0

    calls = Calls("push (plan + upload + commit)")
    for r, seconds in results:
        calls.add(201 if r.created else 200, seconds)
    numbers = sorted(r.version.number for r, _ in results)
    report(
        f"(a) {PUSHES} concurrent pushes to one adapter over 2 servers",
        [calls.line(), f"wall {wall:.2f} s, {PUSHES / wall:.1f} pushes/s"],
    )
    assert numbers == list(range(1, PUSHES + 1))
    assert all(r.created for r, _ in results)
    # Every replica lists all 50, each with its own content.
    for url in cluster.urls:
        listed = httpx.get(f"{url}/api/v1/adapters/{repo}/versions", timeout=30).json()
        assert sorted(v["number"] for v in listed) == numbers
        assert len({v["content_id"] for v in listed}) == PUSHES


# -- (b) resolves during promotions -------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    server: int
    sent: float  # monotonic
    received: float
    version: int


class Resolver(threading.Thread):
    """Resolves ``repo@production`` on alternating servers until told to stop."""

    def __init__(
        self, i: int, urls: list[str], repo: str, stop: threading.Event, tls: ssl.SSLContext
    ) -> None:
        super().__init__(name=f"resolver-{i}", daemon=True)
        self.i, self.urls, self.repo, self.stop = i, urls, repo, stop
        # One TLS context for all: building one per client costs ~20 ms of CPU each.
        self.http = httpx.Client(timeout=10.0, verify=tls)
        self.calls = Calls("resolve")
        self.answers: list[Answer] = []
        self.first = threading.Event()

    def run(self) -> None:
        try:
            for k in range(MAX_RESOLVES_PER_THREAD):
                if self.stop.is_set():
                    return
                server = (self.i + k) % len(self.urls)
                url = f"{self.urls[server]}/api/v1/resolve/{self.repo}"
                t0 = time.monotonic()
                try:
                    resp = self.http.get(url, params={"ref": "production"})
                except httpx.TransportError as exc:
                    self.calls.fail(type(exc).__name__, time.monotonic() - t0)
                    continue
                finally:
                    self.first.set()
                t1 = time.monotonic()
                self.calls.add(resp.status_code, t1 - t0)
                if resp.status_code == 200:
                    self.answers.append(Answer(server, t0, t1, int(resp.json()["version"])))
        finally:
            self.http.close()


def resolves_during_promotions(cluster: Cluster, adapter_library: dict[str, Path]) -> None:
    repo = "load/served"
    for key in ("v1", "v2"):
        _push(cluster.urls[0], adapter_library[key], repo, "trainer")
    http = httpx.Client(timeout=30.0, headers={"X-Lorareg-Actor": "release-bot"})

    def promote(url: str, number: int) -> float:
        t0 = time.monotonic()
        resp = http.post(
            f"{url}/api/v1/adapters/{repo}/versions/{number}/promote", json={"to": "production"}
        )
        assert resp.status_code == 200, resp.text
        return time.monotonic() - t0

    promote(cluster.urls[0], 1)
    # 2, 1, 2, ...: every promotion moves production, alternating the server that does it.
    sequence = [2 - i % 2 for i in range(PROMOTIONS)]
    final = sequence[-1]
    stop = threading.Event()
    tls = ssl.create_default_context()
    resolvers = [Resolver(i, cluster.urls, repo, stop, tls) for i in range(RESOLVERS)]
    promotions = Calls("promote")
    t_start = time.monotonic()
    try:
        for r in resolvers:
            r.start()
        for r in resolvers:  # all 200 are in flight before production first moves
            assert r.first.wait(timeout=60)
        t_ramped = time.monotonic()
        for i, number in enumerate(sequence):
            time.sleep(PROMOTION_GAP_S)
            promotions.add(200, promote(cluster.urls[i % 2], number))
        t_last = time.monotonic()
        time.sleep(CONVERGE_S + 1.0)  # resolvers keep going well past the window
    finally:
        stop.set()
        for r in resolvers:
            r.join(timeout=30)
        http.close()
    wall = time.monotonic() - t_start

    calls = Calls("resolve")
    for r in resolvers:
        calls.merge(r.calls)
    answers = [x for r in resolvers for x in r.answers]
    late = [x for x in answers if x.sent >= t_last + CONVERGE_S]
    lines = [
        calls.line(),
        promotions.line(),
        f"wall {wall:.2f} s (ramp-up of {RESOLVERS} threads {t_ramped - t_start:.2f} s),"
        f" {calls.count / wall:.0f} resolves/s",
    ]
    for server in range(len(cluster.urls)):
        # A stale answer to a request sent after the last promotion returned: its send
        # time is a lower bound on how long that replica kept the old version.
        after = [x for x in answers if x.server == server and x.sent >= t_last]
        stale = [x.sent - t_last for x in after if x.version != final]
        fresh = [x.received - t_last for x in after if x.version == final]
        lines.append(
            f"server {server}: {len(stale)} stale of {len(after)} answers sent after the last"
            f" promotion (latest sent at +{max(stale, default=0) * 1000:.0f} ms);"
            f" first fresh one back at +{min(fresh, default=math.inf) * 1000:.0f} ms"
        )
    lines.append(
        f"{len(late)} answers sent >= {CONVERGE_S:.0f} s after the last promotion, versions"
        f" {sorted({x.version for x in late})} (expected [{final}])"
    )
    report(f"(b) {RESOLVERS} concurrent resolvers during {PROMOTIONS} promotions", lines)
    assert not any(r.is_alive() for r in resolvers)
    assert calls.errors == 0, (calls.statuses, calls.failures)
    assert set(calls.statuses) == {200}, calls.statuses
    assert {x.version for x in answers} == {1, 2}
    assert {x.server for x in late} == set(range(len(cluster.urls))), "too few late answers"
    assert {x.version for x in late} == {final}


# -- (c) merge jobs -----------------------------------------------------------------------


def merge_jobs(
    cluster: Cluster,
    adapter_library: dict[str, Path],
    base_library: dict[str, Path],
    pg_database: str,
) -> None:
    a = cluster.urls[0]
    http = httpx.Client(timeout=120.0, headers={"X-Lorareg-Actor": "merger"})
    try:
        resp = http.post(
            f"{a}/api/v1/bases", json={"name": "tiny-llama", "source": str(base_library["tiny"])}
        )
        assert resp.status_code in (200, 201), resp.text
        _push(a, adapter_library["v1"], "load/voice", "trainer")
        _push(a, adapter_library["v2"], "load/product", "trainer")

        def queue(i: int) -> tuple[int, float]:
            # Distinct weights and outputs: every job has its own result to check.
            w = round(0.05 + 0.045 * i, 3)
            t0 = time.monotonic()
            r = http.post(
                f"{cluster.urls[i % 2]}/api/v1/merges",
                json={
                    "adapters": ["load/voice:1", "load/product:1"],
                    "base": "tiny-llama",
                    "weights": [w, 1 - w],
                    "output": f"load/merged-{i:02d}",
                },
            )
            assert r.status_code == 202, r.text
            return int(r.json()["job"]["id"]), time.monotonic() - t0

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=MERGES) as pool:
            queued = list(pool.map(queue, range(MERGES)))
        t_queued = time.monotonic() - t0
        ids = [job_id for job_id, _ in queued]
        assert len(set(ids)) == MERGES

        done: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + MERGE_DEADLINE_S
        while len(done) < MERGES and time.monotonic() < deadline:
            for job_id in ids:
                if job_id not in done:
                    job = http.get(f"{cluster.urls[job_id % 2]}/api/v1/jobs/{job_id}").json()
                    if job["state"] in ("succeeded", "failed", "cancelled"):
                        done[job_id] = job
            time.sleep(0.2)
        wall = time.monotonic() - t0
    finally:
        http.close()

    # Exactly once, from the audit log: one job.succeeded event per job, one output version.
    engine = create_engine(pg_database)
    try:
        with engine.connect() as conn:
            succeeded: dict[int, int] = dict(
                conn.execute(
                    text(
                        "SELECT (payload->>'job')::int, count(*) FROM events"
                        " WHERE kind = 'job.succeeded' GROUP BY 1"
                    )
                ).all()
            )
            outputs: dict[str, int] = dict(
                conn.execute(
                    text(
                        "SELECT a.name, count(*) FROM versions v JOIN adapters a"
                        " ON a.id = v.adapter_id WHERE v.kind = 'merged' GROUP BY 1"
                    )
                ).all()
            )
    finally:
        engine.dispose()

    queue_calls = Calls("POST /merges (validate + queue)")
    for _, seconds in queued:
        queue_calls.add(202, seconds)
    workers = {j["worker_id"] for j in done.values()}
    per_worker = sorted(sum(1 for j in done.values() if j["worker_id"] == w) for w in workers)
    run_s = [
        (_ts(j["finished_at"]) - _ts(j["started_at"])) * 1000
        for j in done.values()
        if j["started_at"] and j["finished_at"]
    ]
    report(
        f"(c) {MERGES} merge jobs queued over HTTP, 2 workers",
        [
            queue_calls.line(),
            f"queued in {t_queued:.2f} s; all done {wall:.2f} s after the first request",
            f"states {sorted({j['state'] for j in done.values()})},"
            f" attempts {sorted({j['attempts'] for j in done.values()})},"
            f" jobs per worker {per_worker},"
            f" run time per job p50 {percentile(run_s, 50):.0f} ms,"
            f" max {max(run_s, default=math.nan):.0f} ms",
        ],
    )
    assert len(done) == MERGES, f"unfinished after {MERGE_DEADLINE_S:.0f} s: {set(ids) - set(done)}"
    failed = {i: j["error"] for i, j in done.items() if j["state"] != "succeeded"}
    assert not failed, failed
    assert all(j["attempts"] == 1 for j in done.values())
    assert {i: succeeded.get(i, 0) for i in ids} == dict.fromkeys(ids, 1)
    assert outputs == {f"merged-{i:02d}": 1 for i in range(MERGES)}
    assert sorted(j["output"] for j in done.values()) == [
        f"load/merged-{i:02d}:1" for i in range(MERGES)
    ]
    assert len(workers) == 2, f"only {workers} ran jobs"


def _ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()

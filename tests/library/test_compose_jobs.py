"""Compositions as jobs, on SQLite and PostgreSQL: two workers run one job once, a worker
that lost its lease records nothing, `lorareg compose --wait` waits and names the version,
and a refused request queues nothing."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from cli.main import cli
from registry.client.local import LocalClient
from registry.db import models as m
from registry.errors import LoraregError
from registry.library.compose_jobs import request_compose, run_compose
from registry.merge import job_queue
from registry.merge.worker import Worker
from registry.runtime import Runtime
from registry.services.jobs import job_runners
from tests.factories import make_adapter
from tests.fixtures.catalog import catalog_state


@pytest.fixture
def storage_backend() -> str:
    return "local"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compose-jobs")
    t = ["q_proj", "v_proj"]
    return {
        "voice": make_adapter(root / "voice", seed=11, r=4, target_modules=t),
        "product": make_adapter(root / "product", seed=12, r=2, target_modules=t),
    }


@pytest.fixture
def library(runtime: Runtime, pair: dict[str, Path]) -> LocalClient:
    c = LocalClient(runtime)
    c.push(pair["voice"], "acme/voice")
    c.push(pair["product"], "acme/product")
    return c


def _versions(rt: Runtime, name: str) -> int:
    with rt.db.read() as s:
        return s.execute(
            select(func.count(m.AdapterVersion.id)).join(m.Adapter).where(m.Adapter.name == name)
        ).scalar_one()


def test_two_workers_run_a_compose_job_once(runtime: Runtime, library: LocalClient) -> None:
    job, report = request_compose(
        runtime, ["acme/voice:1", "acme/product:1"], output="acme/storefront", actor="t"
    )
    assert job.kind == "compose" and job.state == "queued" and len(report) == 1
    workers = [
        Worker(runtime, worker_id=f"w{i}", poll_s=0.05, runners=job_runners()) for i in range(2)
    ]
    threads = [threading.Thread(target=w.run_forever, daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        for _ in range(600):
            if job_queue.get_job(runtime.db, job.id).state in job_queue.TERMINAL:
                break
            threading.Event().wait(0.05)
    finally:
        for w in workers:
            w.stop.set()
        for t in threads:
            t.join(timeout=30)
    done = job_queue.get_job(runtime.db, job.id)
    assert done.state == "succeeded", done.error
    assert done.attempts == 1 and done.worker_id in ("w0", "w1")
    assert done.result is not None
    v = done.result["version"]
    assert done.output == "acme/storefront:1" == f"{v['namespace']}/{v['name']}:{v['number']}"
    assert done.result["max_rank"] == 6  # cat: 4 + 2
    assert _versions(runtime, "storefront") == 1
    with runtime.db.read() as s:
        kinds = [e.kind for e in s.scalars(select(m.Event).order_by(m.Event.id))]
    assert kinds.count("job.succeeded") == 1 and kinds.count("job.started") == 1


def test_a_worker_that_lost_its_lease_records_nothing(
    runtime: Runtime, library: LocalClient
) -> None:
    job, _ = request_compose(
        runtime, ["acme/voice:1", "acme/product:1"], output="acme/storefront", actor="t"
    )
    slow = job_queue.claim(runtime.db, "slow", lease_s=30.0)
    assert slow is not None
    # "fast" comes 31 s later by its clock: slow's lease has run out.
    later = job_queue.now() + timedelta(seconds=31)
    taken = job_queue.claim(runtime.db, "fast", lease_s=30.0, clock=lambda: later)
    assert taken is not None and taken.id == job.id and taken.attempts == 2
    assert run_compose(runtime, slow, "slow") is False  # rolled back with its version
    assert _versions(runtime, "storefront") == 0
    assert run_compose(runtime, taken, "fast") is True
    done = job_queue.get_job(runtime.db, job.id)
    assert done.state == "succeeded" and done.worker_id == "fast"
    assert done.output == "acme/storefront:1" and _versions(runtime, "storefront") == 1
    with runtime.db.read() as s:
        lineage = s.scalar(select(func.count(m.MergeInput.id)))
    assert lineage == 2


def test_cancelled_queued_compose_never_runs(runtime: Runtime, library: LocalClient) -> None:
    job, _ = request_compose(runtime, ["acme/voice:1"], output="acme/solo", actor="t")
    job_queue.cancel(runtime.db, job.id, actor="t")
    assert Worker(runtime, runners=job_runners()).run_one(job.id).state == "cancelled"
    assert _versions(runtime, "solo") == 0


def test_cli_compose_wait_names_the_new_version(runtime: Runtime, library: LocalClient) -> None:
    st = runtime.settings
    env = {
        "LORAREG_HOME": str(st.home),
        "LORAREG_DATABASE_URL": st.effective_database_url,
        "LORAREG_STORAGE_URL": st.effective_storage_url,
        "LORAREG_AUTHOR": "cli-user",
        "LORAREG_URL": None,
    }
    runner = CliRunner()
    args = ["compose", "acme/voice:1,acme/product:1", "--output", "acme/storefront"]
    res = runner.invoke(cli, [*args, "--method", "svd", "--rank", "3", "--wait"], env=env)
    assert res.exit_code == 0, res.output
    assert "acme/storefront:1" in res.output and "max rank 3" in res.output
    res = runner.invoke(cli, [*args, "--weights", "1,-1", "--wait", "--json"], env=env)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["job"]["state"] == "succeeded" and doc["job"]["kind"] == "compose"
    assert doc["job"]["output"] == "acme/storefront:2"
    assert doc["job"]["result"]["weights"] == [1.0, -1.0]
    # Without --wait the job stays queued for a worker, and says so.
    res = runner.invoke(cli, [*args, "--weights", "2,1"], env=env)
    assert res.exit_code == 0 and "queued" in res.output
    assert _versions(runtime, "storefront") == 2


BAD: list[tuple[dict[str, Any], str]] = [
    (dict(refs=["acme/voice:1", "acme/product:1"], weights=[1.0]), "weight_count_mismatch"),
    (dict(refs=["acme/voice:1", "acme/nope:1"]), "adapter_not_found"),
    (dict(refs=["acme/voice:1", "acme/product:1"], method="linear"), "linear_undefined"),
    (dict(refs=["acme/voice:1", "acme/product:1"], method="svd", rank=7), "invalid_rank"),
    (dict(refs=["acme/voice:1", "acme/product:1"], method="cat", rank=2), "invalid_rank"),
]


def test_bad_compose_requests_queue_nothing(
    client: Any, runtime: Runtime, library: LocalClient
) -> None:
    before = catalog_state(runtime)
    for kw, code in BAD:
        kw = dict(kw)
        with pytest.raises(LoraregError) as err:
            client.compose(kw.pop("refs"), output="acme/x", **kw)
        assert err.value.code == code, (kw, err.value.message)
    assert catalog_state(runtime) == before
    assert client.jobs() == []

"""Merge jobs end to end: request checks, worker, output version with lineage, cancel, and a
worker killed mid-job whose job is finished exactly once by another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from registry import errors
from registry.client.local import LocalClient
from registry.merge import job_queue
from registry.merge.worker import Worker
from registry.runtime import Runtime
from registry.services.jobs import list_jobs
from tests.fixtures.catalog import catalog_state


@pytest.fixture
def registry_with_base(
    runtime: Runtime, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> LocalClient:
    c = LocalClient(runtime)
    c.add_base("tiny-llama", str(base_library["tiny"]))
    c.push(adapter_library["v1"], "acme/voice")
    c.push(adapter_library["v2"], "acme/product")
    return c


def _later(seconds: float) -> job_queue.Clock:
    """A clock ``seconds`` ahead of now: a lease runs out without waiting for it."""
    return lambda: job_queue.now() + timedelta(seconds=seconds)


def test_merge_job_produces_a_pullable_merged_model(
    client: Any, registry_with_base: LocalClient, base_library: dict[str, Path], tmp_path: Path
) -> None:
    doc = client.merge(["acme/voice:1", "acme/product:1"], base="tiny-llama", weights=[0.7, 0.3])
    assert any("cosine" in line for line in doc["interference"])
    job = client.wait_job(doc["job"]["id"]) if client.__class__.__name__ == "LocalClient" else None
    if job is None:  # remote: a worker elsewhere runs it
        Worker(registry_with_base.rt).run_one(doc["job"]["id"])
        job = client.wait_job(doc["job"]["id"])
    assert job["state"] == "succeeded", job["error"]
    assert job["output"] == "acme/voice-merged:1"
    assert job["result"]["verification"]["passed"] is True
    merged = client.show("acme/voice-merged:1")
    assert merged.kind == "merged" and merged.base_model == "tiny-llama"
    assert [i["ref"] for i in merged.config["inputs"]] == ["acme/voice:1", "acme/product:1"]
    out = client.pull("acme/voice-merged:1", dest=tmp_path / "merged")
    got = load_file(Path(out.path) / "model.safetensors")
    base = load_file(base_library["tiny"] / "model.safetensors")
    assert set(got) == set(base)
    changed = [k for k in got if not torch.equal(got[k], base[k])]
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed)
    assert (Path(out.path) / "config.json").exists()
    listed = client.jobs()
    assert listed[0]["id"] == job["id"] and listed[0]["state"] == "succeeded"


def test_bad_merge_requests_queue_nothing(
    client: Any, registry_with_base: LocalClient, runtime: Runtime, base_library: dict[str, Path]
) -> None:
    registry_with_base.add_base("wide-llama", str(base_library["wide"]))
    before = catalog_state(runtime)
    cases: list[tuple[dict[str, Any], type[errors.LoraregError], str]] = [
        (
            dict(refs=["acme/voice:1", "acme/product:1"], base="tiny-llama", weights=[1.0]),
            errors.InvalidInput,
            "weight",
        ),
        (
            dict(refs=["acme/voice:1"], base="tiny-llama", method="ties"),
            errors.InvalidInput,
            "method",
        ),
        (
            dict(refs=["acme/voice:1"], base="nope-base"),
            errors.BaseModelNotFound,
            "lorareg base add",
        ),
        (dict(refs=["acme/voice:9"], base="tiny-llama"), errors.VersionNotFound, "no version 9"),
    ]
    for kw, err, words in cases:
        refs = kw.pop("refs")
        with pytest.raises(err, match=words):
            client.merge(refs, **kw)
    assert catalog_state(runtime) == before
    # An adapter that fails its checks against the base is refused (the check is recorded).
    with pytest.raises(errors.InvalidInput, match="fails its compatibility checks"):
        client.merge(["acme/voice:1"], base="wide-llama")
    assert list_jobs(runtime.db) == []


def test_cancel_queued_and_running(registry_with_base: LocalClient, runtime: Runtime) -> None:
    c = registry_with_base
    queued = c.merge(["acme/voice:1"], base="tiny-llama")["job"]
    assert c.cancel_job(queued["id"])["state"] == "cancelled"
    with pytest.raises(errors.Conflict):
        c.cancel_job(queued["id"])
    running = c.merge(["acme/voice:1"], base="tiny-llama")["job"]
    claimed = job_queue.claim(runtime.db, "w1", lease_s=30)
    assert claimed is not None and claimed.id == running["id"]
    c.cancel_job(running["id"])
    assert (
        job_queue.heartbeat(runtime.db, running["id"], "w1", lease_s=30, progress=0.5, status={})
        is False
    )
    Worker(runtime, worker_id="w1").run(claimed)
    assert c.job(running["id"])["state"] == "cancelled"
    assert [v.name for v in [*c.list_adapters("acme")]] == ["product", "voice"]


def test_lease_expiry_hands_the_job_to_another_worker_exactly_once(
    registry_with_base: LocalClient, runtime: Runtime
) -> None:
    c = registry_with_base
    job = c.merge(["acme/voice:1"], base="tiny-llama")["job"]
    first = job_queue.claim(runtime.db, "dead-worker", lease_s=30)
    assert first is not None
    # The first worker died; a clock past its lease stands in for waiting 30 s.
    assert job_queue.claim(runtime.db, "too-soon", lease_s=30) is None
    later = _later(31)
    Worker(runtime, worker_id="second", lease_s=30, clock=later).run_one(job["id"])
    done = c.job(job["id"])
    assert (done["state"], done["attempts"], done["worker_id"]) == ("succeeded", 2, "second")
    # The dead worker waking up can no longer finish or fail the job.
    assert job_queue.fail(runtime.db, job["id"], "dead-worker", "late") is False
    assert len(c.versions("acme/voice-merged")) == 1


@pytest.mark.parametrize("db_backend", ["postgres"])
@pytest.mark.parametrize("storage_backend", ["local"])
def test_killed_worker_process(
    registry_with_base: LocalClient, runtime: Runtime, tmp_path: Path
) -> None:
    """kill -9 a real `lorareg worker` mid-job; another worker finishes it exactly once."""
    c = registry_with_base
    job = c.merge(["acme/voice:1"], base="tiny-llama")["job"]
    s = runtime.settings
    env = {
        **os.environ,
        "LORAREG_DATABASE_URL": s.effective_database_url,
        "LORAREG_STORAGE_URL": s.effective_storage_url,
        "LORAREG_HOME": str(s.home),
        "LORAREG_CACHE_DIR": str(s.effective_cache_dir),
    }
    exe = Path(sys.executable).parent / "lorareg"
    proc = subprocess.Popen(
        [exe, "worker", "--lease-seconds", "2", "--poll-seconds", "0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while c.job(job["id"])["state"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # A clock past the dead worker's 2 s lease, instead of waiting it out.
    Worker(runtime, worker_id="rescuer", lease_s=30, clock=_later(3)).run_one(job["id"])
    done = c.job(job["id"])
    assert done["state"] == "succeeded"
    assert len(c.versions("acme/voice-merged")) == 1
    succeeded = [e for e in c.namespace_history("acme") if e.kind == "job.succeeded"]
    assert len(succeeded) == 1
    # The dead worker's work folder (inputs, partial output) went with the rescue.
    assert list((s.effective_cache_dir / "jobs").glob("job-*")) == []


@pytest.mark.parametrize("db_backend", ["sqlite"])  # no catalog involved
@pytest.mark.parametrize("storage_backend", ["local"])
def test_work_folders_of_dead_workers_are_swept(runtime: Runtime) -> None:
    """Only folders whose owner died (or this process's, no longer in use) go."""
    import socket

    worker = Worker(runtime, worker_id="sweeper")
    root = worker.work_root
    host = socket.gethostname()
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    owners = {
        "job-1-dead": f"{host}:{finished.pid}",
        "job-2-alive": f"{host}:{running.pid}",
        "job-3-restarted-here": f"{host}:{os.getpid()}",
        "job-4-other-host": f"elsewhere:{finished.pid}",
    }
    try:
        for name, owner in owners.items():
            (root / name / "out").mkdir(parents=True)
            (root / name / "out" / "model.safetensors").write_bytes(b"x" * 1024)
            (root / name / "owner").write_text(owner)
        assert worker.sweep_orphans() == 2
        left = sorted(p.name for p in root.iterdir())
        assert left == ["job-2-alive", "job-4-other-host"]
    finally:
        running.kill()
        running.wait()


def test_merged_shards_are_stored_as_written(
    registry_with_base: LocalClient,
    runtime: Runtime,
    adapter_library: dict[str, Path],
    base_library: dict[str, Path],
    tmp_path: Path,
) -> None:
    # The worker stores the shards under the hashes taken while writing them (a local store
    # moves the files in without reading them): each blob must hold exactly the bytes a
    # direct merge writes, under the sha256 of those bytes.
    import hashlib

    from registry.merge import AdapterInput, merge_adapters

    doc = registry_with_base.merge(["acme/voice:1"], base="tiny-llama")
    job = registry_with_base.wait_job(doc["job"]["id"])
    assert job["state"] == "succeeded", job["error"]
    merged = registry_with_base.show(job["output"])
    direct = merge_adapters(
        base_library["tiny"], [AdapterInput(adapter_library["v1"])], tmp_path / "d", device="cpu"
    )
    shards = [f for f in merged.files if f.path in direct.shards]
    assert len(shards) == len(direct.shards)
    for entry in merged.files:
        data = b"".join(runtime.store.iter_bytes(entry.sha256))
        assert hashlib.sha256(data).hexdigest() == entry.sha256 and len(data) == entry.size
    for entry in shards:
        assert (
            b"".join(runtime.store.iter_bytes(entry.sha256))
            == (direct.out_dir / entry.path).read_bytes()
        )
    assert not list((runtime.settings.effective_cache_dir / "jobs").glob("job-*"))

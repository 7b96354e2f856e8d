"""kill -9 at random points of a push, a promotion and a merge worker; after each, the
catalog is consistent (fsck), nothing is half-visible, and the operation succeeds when run
again. 50 trials each: a slow suite (CI runs it; `-m "not slow"` skips it locally)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from registry.catalog.upkeep import fsck
from registry.client.local import LocalClient
from registry.config import Settings
from registry.merge import jobs
from registry.merge.worker import Worker
from registry.runtime import Runtime

# Storage faults have their own tests; here local storage keeps 50 trials x 3 operations
# x 2 databases within CI's time.
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("storage_backend", ["local"])]
TRIALS = int(os.environ.get("LORAREG_CRASH_TRIALS", "50"))
EXE = Path(sys.executable).parent / "lorareg"


def _env(settings: Settings) -> dict[str, str]:
    env = {
        **os.environ,
        "LORAREG_HOME": str(settings.home),
        "LORAREG_DATABASE_URL": settings.effective_database_url,
        "LORAREG_STORAGE_URL": settings.effective_storage_url,
        "LORAREG_CACHE_DIR": str(settings.effective_cache_dir),
        "LORAREG_AUTHOR": "crash",
    }
    if settings.s3_endpoint_url:
        env["LORAREG_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    env.pop("LORAREG_URL", None)
    return env


def _kill_at_random(
    args: list[str], env: dict[str, str], rng: random.Random, horizon: float
) -> int | None:
    proc = subprocess.Popen(
        [str(EXE), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(rng.uniform(0.0, horizon))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return proc.returncode


def _big_adapter(folder: Path, seed: int) -> Path:
    """~24 MB, so a push spends real time uploading and hashing."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(6):
        key = f"base_model.model.model.layers.{layer}.self_attn.q_proj"
        tensors[f"{key}.lora_A.weight"] = rng.standard_normal((64, 4096), dtype=np.float32).astype(
            np.float16
        )
        tensors[f"{key}.lora_B.weight"] = rng.standard_normal((4096, 64), dtype=np.float32).astype(
            np.float16
        )
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(
        '{"peft_type": "LORA", "r": 64, "lora_alpha": 16, "target_modules": ["q_proj"]}'
    )
    return folder


def _assert_consistent(rt: Runtime) -> None:
    report = fsck(rt.db, rt.store)
    assert report.ok, report.to_json()


def test_kill_push(runtime: Runtime, settings: Settings, tmp_path: Path) -> None:
    rng = random.Random(1)
    env = _env(settings)
    client = LocalClient(runtime)
    for trial in range(TRIALS):
        folder = _big_adapter(tmp_path / f"a{trial}", trial)
        _kill_at_random(["push", str(folder), "acme/crash"], env, rng, horizon=4.0)
        _assert_consistent(runtime)
        versions = client.versions("acme/crash") if client.list_adapters("acme") else []
        for v in versions:  # whatever is visible is whole
            assert all(runtime.store.exists(f.sha256) for f in v.files)
        again = client.push(folder, "acme/crash")
        assert again.version.number >= 1
    assert len(client.versions("acme/crash")) == TRIALS
    _assert_consistent(runtime)


def test_kill_promote(
    runtime: Runtime, settings: Settings, adapter_library: dict[str, Path]
) -> None:
    rng = random.Random(2)
    env = _env(settings)
    client = LocalClient(runtime)
    for key in ("v1", "v2", "r8"):
        client.push(adapter_library[key], "acme/p", base="tiny-llama")
    for trial in range(TRIALS):
        n = trial % 3 + 1
        _kill_at_random(["promote", f"acme/p:{n}", "--to", "production"], env, rng, horizon=3.0)
        stages = [client.show(f"acme/p:{k}").stage for k in (1, 2, 3)]
        assert stages.count("production") <= 1
        client.promote(f"acme/p:{n}", to="production")
        assert client.show("acme/p@production").number == n
    _assert_consistent(runtime)


def test_kill_merge_worker(
    runtime: Runtime,
    settings: Settings,
    adapter_library: dict[str, Path],
    base_library: dict[str, Path],
) -> None:
    rng = random.Random(3)
    env = _env(settings)
    client = LocalClient(runtime)
    client.add_base("tiny-llama", str(base_library["tiny"]))
    client.push(adapter_library["v1"], "acme/m")
    for _trial in range(TRIALS):
        job = client.merge(["acme/m:1"], base="tiny-llama", output="acme/m-merged")["job"]
        _kill_at_random(
            ["worker", "--lease-seconds", "1", "--poll-seconds", "0.05"], env, rng, horizon=4.0
        )
        state = client.job(job["id"])["state"]
        assert state in ("queued", "running", "succeeded")
        if state != "succeeded":
            time.sleep(1.1)  # the killed worker's lease runs out
            Worker(runtime, lease_s=30).run_one(job["id"])
        assert client.job(job["id"])["state"] == "succeeded"
        _assert_consistent(runtime)
    # Identical output every time: one merged version, and every job succeeded exactly once.
    assert len(client.versions("acme/m-merged")) == 1
    assert all(j.state == "succeeded" for j in jobs.list_jobs(runtime.db))
    done = [e for e in client.namespace_history("acme") if e.kind == "job.succeeded"]
    assert len(done) == TRIALS
    # Whatever each kill left in the work area (inputs, a partial model) is swept: the
    # rescues swept as they went, a last sweep covers kills after a job's success.
    Worker(runtime).sweep_orphans()
    assert list((settings.effective_cache_dir / "jobs").glob("job-*")) == []

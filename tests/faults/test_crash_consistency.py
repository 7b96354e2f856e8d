"""kill -9 at random points of a push, a promotion, a merge worker and a server receiving a
push; after each, the catalog is consistent (fsck), nothing is half-visible, and the
operation succeeds when run again. After all kills, one `lorareg gc --grace-hours 0` leaves
exactly the referenced blobs (no temp, spool or orphan left) and every visible version
pulls with a fresh cache. 50 trials each (6 server kills): a slow suite (CI runs it;
`-m "not slow"` skips it locally)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from safetensors.numpy import save_file
from sqlalchemy import select

from registry.catalog.transfer import BlobCache
from registry.catalog.upkeep import fsck
from registry.client.local import LocalClient
from registry.client.remote import RemoteClient
from registry.config import Settings
from registry.db import models as m
from registry.domain import Stage
from registry.merge import job_queue
from registry.merge.worker import Worker
from registry.runtime import Runtime
from registry.services.jobs import list_jobs
from registry.storage.spool import spool_for
from tests.fixtures.s3 import free_port

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


def _assert_nothing_left_after_gc(rt: Runtime, env: dict[str, str], tmp_path: Path) -> None:
    """One gc with no grace: the store holds exactly the referenced blobs, and every
    visible version pulls, verified, into an empty cache."""
    subprocess.run([str(EXE), "gc", "--grace-hours", "0"], env=env, check=True, timeout=120)
    spool = spool_for(rt.settings.effective_cache_dir)
    report = fsck(rt.db, rt.store, deep=True, spool=spool)
    assert report.ok and report.unreferenced == [] and report.leftovers == {}, report.to_json()
    with rt.db.read() as s:
        referenced = set(s.scalars(select(m.VersionFile.sha256)))
    assert {b.sha256 for b in rt.store.list_blobs()} == referenced
    fresh = LocalClient(rt)
    for summary in fresh.list_adapters():
        for v in fresh.versions(f"{summary.namespace}/{summary.name}"):
            fresh.cache = BlobCache(tmp_path / "fresh-cache")
            out = fresh.pull(v.ref, dest=tmp_path / "pulled")
            assert out.bytes_from_cache == 0 and out.bytes_downloaded == v.size
            shutil.rmtree(tmp_path / "fresh-cache")
            shutil.rmtree(tmp_path / "pulled")


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
    _assert_nothing_left_after_gc(runtime, env, tmp_path)


# The API alone (no embedded merge worker, which would import torch on every restart).
SERVE = (
    "import sys, uvicorn;"
    "from registry.server import create_app;"
    "from registry.config import load_settings;"
    "from registry.runtime import open_runtime;"
    "app = create_app(open_runtime(load_settings()), background=False);"
    "uvicorn.run(app, host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')"
)


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the server did not come up")


def _wait_for_file(folders: list[Path], pattern: str, deadline_s: float) -> None:
    """Until a file matching ``pattern`` shows up in one of ``folders`` (or the deadline)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if any(any(f.glob(pattern)) for f in folders if f.is_dir()):
            return
        time.sleep(0.002)


def test_kill_server_during_remote_push(
    runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    """The server dies while a client uploads through it: while it spools the body, while
    it writes the blob, or at a random moment. The next start sweeps the spool; gc the rest."""
    rng = random.Random(4)
    env = _env(settings)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    spool = spool_for(settings.effective_cache_dir).root
    temp = Path(urlsplit(settings.effective_storage_url).path) / "tmp"
    server = _serve(env, port)
    trials = max(3, TRIALS // 8)
    try:
        for trial in range(trials):
            folder = _big_adapter(tmp_path / f"s{trial}", 1000 + trial)
            push = subprocess.Popen(
                [str(EXE), "push", str(folder), "acme/remote"],
                env={**env, "LORAREG_URL": url},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if trial % 3 == 0:
                _wait_for_file([spool], "lorareg-upload-*", 10.0)
            elif trial % 3 == 1:
                _wait_for_file([temp], "*.part", 10.0)
            else:
                time.sleep(rng.uniform(0.5, 2.0))
            server.send_signal(signal.SIGKILL)
            server.wait()
            push.wait(timeout=120)
            _assert_consistent(runtime)
            server = _serve(env, port)
            assert not any(spool.glob("lorareg-upload-*")), "the restart sweeps the spool"
            again = RemoteClient(url, actor="crash", cache_dir=tmp_path / "c")
            try:
                assert again.push(folder, "acme/remote").version.number >= 1
            finally:
                again.close()
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    assert len(LocalClient(runtime).versions("acme/remote")) == trials
    _assert_nothing_left_after_gc(runtime, env, tmp_path)


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
        assert stages.count(Stage.PRODUCTION) <= 1
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
            # A clock past the killed worker's 1 s lease, instead of waiting it out.
            later = Worker(
                runtime, lease_s=30, clock=lambda: job_queue.now() + timedelta(seconds=2)
            )
            later.run_one(job["id"])
        assert client.job(job["id"])["state"] == "succeeded"
        _assert_consistent(runtime)
    # Identical output every time: one merged version, and every job succeeded exactly once.
    assert len(client.versions("acme/m-merged")) == 1
    assert all(j.state == "succeeded" for j in list_jobs(runtime.db))
    done = [e for e in client.namespace_history("acme") if e.kind == "job.succeeded"]
    assert len(done) == TRIALS
    # Whatever each kill left in the work area (inputs, a partial model) is swept: the
    # rescues swept as they went, a last sweep covers kills after a job's success.
    Worker(runtime).sweep_orphans()
    assert list((settings.effective_cache_dir / "jobs").glob("job-*")) == []

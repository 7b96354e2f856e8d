"""Thousands of per-client adapters on one node: ``lorareg sync --namespace N --all``
against a ``lorareg serve`` (SQLite catalog, local blob store; real processes on loopback).

    .venv/bin/python bench/sync/bench_fleet.py [--adapters 5000] [--changed 50]

Every figure is a whole command, start-up included, measured in this run:

- first sync of every adapter into an empty folder, against two baselines fetching the
  same files from the same server: a plain loop of HTTP downloads (one Python process,
  one keep-alive connection, every URL known in advance, no resolve, no verification:
  the floor for fetching one file after another), and ``lorareg pull`` once per adapter
  (timed on a sample, scaled to all);
- a sync with nothing to do (list and resolve every adapter, fetch nothing);
- an incremental sync after ``--changed`` adapters got a new production version, against
  the download loop over just the new files and ``lorareg pull`` of the changed adapters;
- ``sync --follow``: from a burst of ``--changed`` promotions to every one on disk;
- a first sync under ``--max-bytes`` of half the total (eviction bookkeeping included).

The catalog is built in bulk, in-process, in seconds rather than one push per adapter
(which ran at ~4 adapters/s on a loaded machine): adapter 0 is pushed for real, and every
other gets its own distinct files (random weights, its own ``adapter_config.json``) written
straight into the blob store (without the store's fsync: a benchmark's catalog need not
survive a crash) and recorded with bulk inserts of the rows a push and a promotion write
(adapter, blobs, version in production, files, events), 500 adapters per transaction. The changed and promoted adapters of the later steps are
real pushes and promotions. Every file is distinct, so every sync downloads all of them.

Prints a table and the load average; ``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from safetensors.numpy import save, save_file
from sqlalchemy import func, insert, select

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from registry.catalog.manifest import content_id  # noqa: E402
from registry.client.local import LocalClient  # noqa: E402
from registry.config import load_settings  # noqa: E402
from registry.db import models as m  # noqa: E402
from registry.domain import FileEntry  # noqa: E402
from registry.runtime import open_runtime  # noqa: E402
from tests.fixtures.s3 import free_port  # noqa: E402

BASE = "bench/tiny-base"
NS = "fleet"
LORAREG = str(Path(sys.executable).with_name("lorareg"))
CONFIG = {
    "peft_type": "LORA", "r": 4, "lora_alpha": 8, "task_type": "CAUSAL_LM",
    "target_modules": ["q_proj", "v_proj"], "base_model_name_or_path": BASE,
}  # fmt: skip


def tensors_for(seed: int) -> dict[str, np.ndarray]:
    """A small LoRA adapter's weights (about 8 KB): r=4 on q/v of 2 layers, hidden 128."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(2):
        for mod in ("q_proj", "v_proj"):
            key = f"base_model.model.model.layers.{layer}.self_attn.{mod}"
            tensors[f"{key}.lora_A.weight"] = rng.standard_normal((4, 128)).astype(np.float16)
            tensors[f"{key}.lora_B.weight"] = rng.standard_normal((128, 4)).astype(np.float16)
    return tensors


def config_for(seed: int) -> dict[str, Any]:
    return {**CONFIG, "revision": f"seed-{seed}"}  # its own config file too


def make_adapter(folder: Path, seed: int) -> Path:
    """A small LoRA adapter folder (about 8 KB), for a real push."""
    folder.mkdir(parents=True)
    save_file(tensors_for(seed), str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps(config_for(seed)))
    return folder


BATCH = 500


def build_catalog(local: LocalClient, work: Path, n: int) -> dict[str, list[str]]:
    """``n`` adapters of the namespace in production: adapter 0 by a real push and
    promotion, the others in bulk (see the module's docstring). Returns each adapter's
    file URLs."""
    rt = local.rt
    keys: dict[str, list[str]] = {}
    first = f"{NS}/client-{0:05d}"
    v = local.push(make_adapter(work / "src" / "0", 0), first, base=BASE)
    local.promote(f"{first}:1", to="production")
    keys[first] = file_urls(first, v)
    ref = v.version
    t0 = time.perf_counter()
    with rt.db.write() as s:
        ns_id = s.scalar(select(m.Namespace.id).where(m.Namespace.name == NS))
        ids = {t: int(s.scalar(select(func.max(t.id))) or 0) for t in (m.Adapter, m.AdapterVersion)}
    for start in range(1, n, BATCH):
        adapters, blobs, versions, files, events = [], [], [], [], []
        for i in range(start, min(start + BATCH, n)):
            name = f"client-{i:05d}"
            config = config_for(i)
            entries = []
            for path, data in (
                ("adapter_model.safetensors", save(tensors_for(i))),
                ("adapter_config.json", json.dumps(config).encode()),
            ):
                sha = hashlib.sha256(data).hexdigest()
                blob = rt.store._path(sha)  # type: ignore[attr-defined]
                blob.parent.mkdir(parents=True, exist_ok=True)
                blob.write_bytes(data)
                entries.append(FileEntry(path=path, sha256=sha, size=len(data)))
                blobs.append({"sha256": sha, "size": len(data)})
            ids[m.Adapter] += 1
            ids[m.AdapterVersion] += 1
            aid, vid = ids[m.Adapter], ids[m.AdapterVersion]
            adapters.append({"id": aid, "namespace_id": ns_id, "name": name, "next_number": 2})
            cid = content_id(entries)
            size = sum(e.size for e in entries)
            versions.append({
                "id": vid, "adapter_id": aid, "number": 1, "content_id": cid, "base_model": BASE,
                "peft_type": ref.peft_type, "r": ref.r, "lora_alpha": ref.lora_alpha,
                "target_modules": list(ref.target_modules), "config": config, "size": size,
                "file_count": len(entries), "author": "bench", "stage": "production",
            })  # fmt: skip
            files += [{"version_id": vid, "path": e.path, "sha256": e.sha256, "size": e.size}
                      for e in entries]  # fmt: skip
            events += [
                {"kind": "version.created", "namespace": NS, "adapter": name, "version": 1,
                 "actor": "bench", "payload": {"content_id": cid, "base_model": BASE,
                                               "size": size, "kind": "adapter"}},
                {"kind": "stage.changed", "namespace": NS, "adapter": name, "version": 1,
                 "actor": "bench", "payload": {"from": None, "to": "production",
                                               "base_model": BASE, "replaced": None}},
            ]  # fmt: skip
            keys[f"{NS}/{name}"] = [f"/api/v1/adapters/{NS}/{name}/versions/1/files/{e.path}"
                                    for e in entries]  # fmt: skip
        with rt.db.write() as s:
            for model, rows in ((m.Adapter, adapters), (m.Blob, blobs),
                                (m.AdapterVersion, versions), (m.VersionFile, files),
                                (m.Event, events)):  # fmt: skip
                s.execute(insert(model), rows)
        done = min(start + BATCH, n)
        print(f"  {done} adapters in the catalog ({time.perf_counter() - t0:.1f} s)", flush=True)
    return keys


def wait_http(url: str, deadline_s: float = 60) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def timed(argv: list[str], env: dict[str, str], log: Path | None = None) -> float:
    t0 = time.perf_counter()
    with open(log or os.devnull, "ab") as err:
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=err)
    return time.perf_counter() - t0


DOWNLOAD_LOOP = """
import sys, httpx
base, dest, listing = sys.argv[1:4]
with httpx.Client(base_url=base) as http:
    for i, path in enumerate(open(listing).read().split()):
        with open(f"{dest}/{i}", "wb") as fh:
            fh.write(http.get(path).raise_for_status().content)
"""


def file_urls(repo: str, version: Any) -> list[str]:
    number = version.version.number
    return [f"/api/v1/adapters/{repo}/versions/{number}/files/{f.path}"
            for f in version.version.files]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapters", type=int, default=5000)
    ap.add_argument("--changed", type=int, default=50)
    ap.add_argument("--pull-sample", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    n, k = args.adapters, args.changed

    work = Path(tempfile.mkdtemp(prefix="lorareg-bench-fleet-"))
    env = {**os.environ, "LORAREG_AUTHOR": "bench", "LORAREG_HOME": str(work / "home")}
    for key in ("LORAREG_URL", "LORAREG_TOKEN", "LORAREG_DATABASE_URL", "LORAREG_STORAGE_URL",
                "PROMETHEUS_MULTIPROC_DIR"):  # fmt: skip
        env.pop(key, None)
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, Any] = {"adapters": n, "changed": k}
    try:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        subprocess.run([LORAREG, "db", "upgrade"], env=env, check=True, capture_output=True)
        settings = load_settings(home=work / "home")
        # Started first: its start-up (seconds on a busy machine) overlaps the catalog build.
        with open(work / "serve.log", "wb") as serve_log:
            procs.append(subprocess.Popen(
                [LORAREG, "serve", "--port", str(port)], env=env,
                stdout=subprocess.DEVNULL, stderr=serve_log,
            ))  # fmt: skip
        rt = open_runtime(settings)
        local = LocalClient(rt)
        t0 = time.perf_counter()
        keys = build_catalog(local, work, n)
        results["catalog_build_s"] = round(time.perf_counter() - t0, 1)
        print(f"catalog of {n} adapters built in {results['catalog_build_s']} s", flush=True)
        results["load_before"] = os.getloadavg()
        wait_http(f"{url}/healthz", deadline_s=600)
        remote = {**env, "LORAREG_URL": url}
        node = work / "node"
        sync = [LORAREG, "sync", "--to", str(node), "--base", BASE, "--namespace", NS, "--all"]
        log = work / "sync.log"

        # -- first sync --------------------------------------------------------------------
        all_keys = [key for ks in keys.values() for key in ks]
        (work / "keys").write_text("\n".join(all_keys))
        (work / "boto").mkdir()
        boto_s = timed([sys.executable, "-c", DOWNLOAD_LOOP, url, str(work / "boto"),
                        str(work / "keys")], env)  # fmt: skip
        first_s = timed(sync, remote, log)
        on_disk = sum(1 for _ in (node / NS).iterdir())
        assert on_disk == n, f"{on_disk} of {n} adapters on disk"
        sample = list(keys)[: args.pull_sample]
        pull_s = sum(
            timed([LORAREG, "pull", f"{r}@production", "-o", str(work / "pull" / r)], remote)
            for r in sample
        )
        results["first"] = {
            "sync_s": round(first_s, 2),
            "download_loop_s": round(boto_s, 2),
            "files": len(all_keys),
            "pull_each_s_scaled": round(pull_s / len(sample) * n, 1),
            "pull_sample": len(sample),
        }
        results["noop_sync_s"] = round(timed(sync, remote, log), 2)

        # -- incremental -------------------------------------------------------------------
        changed = list(keys)[:k]
        new_keys = []
        for j, repo in enumerate(changed):
            v = local.push(make_adapter(work / "src2" / str(j), 10**6 + j), repo, base=BASE)
            local.promote(f"{repo}:2", to="production")
            new_keys += file_urls(repo, v)
        (work / "keys2").write_text("\n".join(new_keys))
        (work / "boto2").mkdir()
        boto2_s = timed([sys.executable, "-c", DOWNLOAD_LOOP, url, str(work / "boto2"),
                         str(work / "keys2")], env)  # fmt: skip
        inc_s = timed(sync, remote, log)
        flipped = sum(os.readlink(node / r).split("/")[-1].startswith("v2-") for r in changed)
        assert flipped == k, f"{flipped} of {k} changed adapters flipped"
        sample2 = changed[: min(10, k)]
        pull2 = sum(
            timed([LORAREG, "pull", f"{r}@production", "-o", str(work / "pull2" / r)], remote)
            for r in sample2
        )
        results["incremental"] = {
            "sync_s": round(inc_s, 2),
            "download_loop_s": round(boto2_s, 2),
            "files": len(new_keys),
            "pull_each_s_scaled": round(pull2 / len(sample2) * k, 1),
        }

        # -- follow: a burst of promotions -------------------------------------------------
        with open(work / "follow.log", "wb") as follow_log:
            follower = subprocess.Popen(sync + ["--follow"], env=remote,
                                        stdout=subprocess.DEVNULL, stderr=follow_log)  # fmt: skip
        procs.append(follower)
        end = time.monotonic() + 600
        while "synced " not in (work / "follow.log").read_text() and time.monotonic() < end:
            time.sleep(0.1)
        burst = list(keys)[k : 2 * k]
        for j, repo in enumerate(burst):
            local.push(make_adapter(work / "src3" / str(j), 2 * 10**6 + j), repo, base=BASE)
        t0 = time.perf_counter()
        for repo in burst:
            local.promote(f"{repo}:2", to="production")
        promoted = time.perf_counter() - t0
        while time.monotonic() < end:
            if all(os.readlink(node / r).split("/")[-1].startswith("v2-") for r in burst):
                break
            time.sleep(0.005)
        results["follow_burst"] = {
            "promotions": k,
            "promote_loop_s": round(promoted, 2),
            "all_on_disk_s": round(time.perf_counter() - t0, 2),
        }
        follower.terminate()
        follower.wait(timeout=30)

        # -- under a budget ----------------------------------------------------------------
        total = sum(p.stat().st_size for p in (node / ".lorareg" / "blobs").rglob("*")
                    if p.is_file())  # fmt: skip
        budget = total // 2
        node2 = work / "node-budget"
        sync2 = [a if a != str(node) else str(node2) for a in sync] + ["--max-bytes", str(budget)]
        budget_s = timed(sync2, remote, work / "budget.log")
        doc = json.loads((node2 / ".lorareg" / "manifest.json").read_text())
        present = sum(a["present"] for a in doc["adapters"].values())
        results["budget"] = {
            "max_bytes": budget, "sync_s": round(budget_s, 2), "present": present,
            "left_out": len(doc["adapters"]) - present, "disk_bytes": doc["disk_bytes"],
        }  # fmt: skip
        assert doc["disk_bytes"] <= budget
        rt.close()
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    results["load_after"] = os.getloadavg()
    f, i = results["first"], results["incremental"]
    print(f"\n{n} adapters (~8 KB each), {k} changed; whole commands, start-up included")
    print(f"{'':34} {'lorareg sync':>13} {'HTTP loop':>11} {'pull each':>11}")
    print(f"{'first sync (' + str(f['files']) + ' files)':34} {f['sync_s']:12.2f}s"
          f" {f['download_loop_s']:10.2f}s {f['pull_each_s_scaled']:10.1f}s*")  # fmt: skip
    print(f"{'incremental (' + str(i['files']) + ' new files)':34} {i['sync_s']:12.2f}s"
          f" {i['download_loop_s']:10.2f}s {i['pull_each_s_scaled']:10.1f}s*")  # fmt: skip
    print(f"{'sync with nothing to do':34} {results['noop_sync_s']:12.2f}s")
    print(f"first sync vs the HTTP download loop: {f['download_loop_s'] / f['sync_s']:.2f}x the speed;"
          f" vs pull each: {f['pull_each_s_scaled'] / f['sync_s']:.1f}x")  # fmt: skip
    fb, b = results["follow_burst"], results["budget"]
    print(f"follow: {fb['promotions']} promotions in {fb['promote_loop_s']:.2f} s, all on disk"
          f" {fb['all_on_disk_s']:.2f} s after the first")  # fmt: skip
    print(f"budget {b['max_bytes']} B: first sync {b['sync_s']:.2f} s, {b['present']} present,"
          f" {b['left_out']} left out, {b['disk_bytes']} B on disk")  # fmt: skip
    print(f"* timed on {f['pull_sample']} adapters (10 for incremental), scaled")
    print(f"catalog built in {results['catalog_build_s']} s; load average (1, 5, 15 min)"
          f" {results['load_before']} before, {results['load_after']} after")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

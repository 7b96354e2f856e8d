"""Regions on loopback (issue 20's Measure section): three moto S3 servers stand for the
primary and two regions (``eu``, ``ap``, both ``replicate``), the catalog on SQLite.

    .venv/bin/python bench/regions/bench_regions.py [--versions 100] [--mb 20] [--outage 30]

1. Replication lag: VERSIONS versions of an MB-sized adapter pushed back to back while
   one replication worker per region runs; lag p50/p99 (push to present) from the catalog,
   as ``lorareg regions status`` shows it.
2. Throughput: one replication worker draining a backlog primary -> eu, against a plain
   boto3 copy of the same objects between the same two servers (get_object streamed into
   upload_fileobj), same run; ratio = boto3 time / worker time (goal >= 0.8).
3. Outage: eu's server is cut off (its TCP relay refuses and resets) for OUTAGE seconds
   while a reader in eu resolves and pulls in a loop and versions keep being pushed;
   failed resolves/pulls are counted (goal 0: all served by fallback), then the time from
   the region's return until its backlog is empty (goal <= 2x the outage).

Prints each figure with the load average beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from boto3.s3.transfer import TransferConfig
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.regions.loopback import Region, regions  # noqa: E402
from registry.client.local import LocalClient  # noqa: E402
from registry.config import load_settings  # noqa: E402
from registry.regions import copies  # noqa: E402
from registry.regions.worker import ReplicationWorker  # noqa: E402
from registry.runtime import open_runtime  # noqa: E402
from registry.services.regions import region_set  # noqa: E402
from registry.storage.base import blob_key  # noqa: E402


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_adapter(folder: Path, mb: float, seed: int) -> Path:
    """A valid LoRA adapter of about ``mb`` MB (r=16 on q/v of a 4096-wide model)."""
    rng = np.random.default_rng(seed)
    r, hidden = 16, 4096
    per_layer = 2 * (2 * hidden * r) * 2  # q and v, A and B, fp16
    layers = max(1, int(mb * 1e6 // per_layer))
    tensors = {}
    for layer in range(layers):
        for mod in ("q_proj", "v_proj"):
            key = f"base_model.model.model.layers.{layer}.self_attn.{mod}"
            tensors[f"{key}.lora_A.weight"] = rng.standard_normal(
                (r, hidden), dtype=np.float32
            ).astype(np.float16)
            tensors[f"{key}.lora_B.weight"] = rng.standard_normal(
                (hidden, r), dtype=np.float32
            ).astype(np.float16)
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    cfg = {"peft_type": "LORA", "r": r, "lora_alpha": 32, "task_type": "CAUSAL_LM",
           "target_modules": ["q_proj", "v_proj"]}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder


class Workers:
    """One replication worker (every region, round-robin) in a thread, as a
    ``lorareg worker --regions-only`` process runs it; its defaults but a short idle pause."""

    def __init__(self, rt: Any) -> None:
        self.worker = ReplicationWorker(region_set(rt), rt.db, interval_s=0.1)
        self.thread = threading.Thread(target=self.worker.run_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.worker.stop.set()
        self.thread.join(timeout=120)


def backlog(rt: Any, name: str) -> int:
    stats = {s.name: s for s in copies.region_stats(rt.db, region_set(rt))}
    return stats[name].backlog_blobs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--versions", type=int, default=100)
    ap.add_argument("--mb", type=float, default=20)
    ap.add_argument("--throughput-blobs", type=int, default=20)
    ap.add_argument("--outage", type=float, default=30)
    args = ap.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    work = Path(tempfile.mkdtemp(prefix="lorareg-bench-regions-"))
    try:
        with regions(["primary", "eu", "ap"], relay={"eu"}) as servers:
            run(args, work, servers)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, servers: dict[str, Region]) -> None:
    for r in servers.values():
        r.client().create_bucket(Bucket="lorareg")  # type: ignore[attr-defined]
    regions_json = json.dumps(
        [
            {"name": n, "storage_url": "s3://lorareg/blobs", "endpoint_url": servers[n].endpoint}
            for n in ("eu", "ap")
        ]
    )
    common = dict(
        home=work / "home",
        storage_url="s3://lorareg/blobs",
        s3_endpoint_url=servers["primary"].endpoint,
        regions=regions_json,
        author="bench",
    )
    rt = open_runtime(load_settings(cache_dir=work / "cache", **common))  # type: ignore[arg-type]
    pusher = LocalClient(rt)
    print(f"load average at start: {load()}")

    # 1. Lag while pushing back to back.
    folders = [make_adapter(work / f"a{i}", args.mb, i) for i in range(args.versions)]
    workers = Workers(rt)
    t0 = time.perf_counter()
    for f in folders:
        pusher.push(f, "bench/voice")
    pushed_s = time.perf_counter() - t0
    while backlog(rt, "eu") or backlog(rt, "ap"):
        time.sleep(0.2)
    drained_s = time.perf_counter() - t0
    workers.close()
    stats = {s.name: s for s in copies.region_stats(rt.db, region_set(rt))}
    mb_total = args.versions * args.mb
    print(
        f"\n1. {args.versions} versions x {args.mb:g} MB pushed back to back in {pushed_s:.1f} s"
        f" ({mb_total / pushed_s:.0f} MB/s); both regions complete {drained_s:.1f} s after the"
        f" first push   [load {load()}]"
    )
    for name in ("eu", "ap"):
        s = stats[name]
        print(f"   {name}: lag p50 {s.lag_p50_s:.2f} s, p99 {s.lag_p99_s:.2f} s")

    # 2. One worker against a plain boto3 copy, same blobs, same two servers.
    extra = [
        make_adapter(work / f"t{i}", args.mb, 10_000 + i) for i in range(args.throughput_blobs)
    ]
    for f in extra:
        pusher.push(f, "bench/throughput")
    shas = [
        f.sha256
        for i in range(args.throughput_blobs)
        for f in pusher.show(f"bench/throughput:{i + 1}").files
    ]
    src, dst = servers["primary"].client(), servers["eu"].client(direct=True)
    dst.create_bucket(Bucket="baseline")  # type: ignore[attr-defined]
    keys = [f"blobs/{blob_key(sha)}" for sha in sorted(set(shas))]
    cfg = TransferConfig()
    t = time.perf_counter()
    for key in keys:
        body = src.get_object(Bucket="lorareg", Key=key)["Body"]  # type: ignore[attr-defined]
        dst.upload_fileobj(body, "baseline", key, Config=cfg)  # type: ignore[attr-defined]
    boto_s = time.perf_counter() - t
    # A worker that knows only eu (the same catalog): it drains eu's backlog alone.
    eu_only = json.dumps([json.loads(regions_json)[0]])
    eu_rt = open_runtime(load_settings(cache_dir=work / "cache", **{**common, "regions": eu_only}))  # type: ignore[arg-type]
    eu_regions = region_set(eu_rt)
    for region in eu_regions:  # connect first, as the boto3 clients above already are
        region.store.check()
    worker = ReplicationWorker(eu_regions, eu_rt.db)
    t = time.perf_counter()
    while worker.run_once():
        pass
    worker_s = time.perf_counter() - t
    copied_mb = sum(pusher.show(f"bench/throughput:{i + 1}").size for i in range(len(extra))) / 1e6
    print(
        f"\n2. copy {len(keys)} blobs ({copied_mb:.0f} MB) primary -> eu: boto3 {boto_s:.2f} s"
        f" ({copied_mb / boto_s:.0f} MB/s), one replication worker {worker_s:.2f} s"
        f" ({copied_mb / worker_s:.0f} MB/s); ratio {boto_s / worker_s:.2f} (goal >= 0.8)"
        f"   [load {load()}]"
    )

    # 3. Outage of eu: readers in eu, pushes continuing.
    reader_rt = open_runtime(
        load_settings(cache_dir=work / "reader-cache", region="eu", **common)  # type: ignore[arg-type]
    )
    reader = LocalClient(reader_rt)
    workers = Workers(rt)
    failures: list[str] = []
    reads = [0]
    stop = threading.Event()

    def read_loop() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                reader.resolve("bench/voice", ref=str(1 + n % args.versions))
                dest = work / "pulls" / str(n)
                reader.pull(f"bench/voice:{1 + n % args.versions}", dest=dest, force=True)
                shutil.rmtree(dest, ignore_errors=True)
                reader.cache = type(reader.cache)(work / f"reader-cache-{n}")  # cold every time
                shutil.rmtree(work / f"reader-cache-{n - 1}", ignore_errors=True)
                reads[0] += 2
            except Exception as exc:  # counted, never fatal
                failures.append(f"{type(exc).__name__}: {exc}"[:200])

    while backlog(rt, "eu") or backlog(rt, "ap"):  # start from a replicated catalog
        time.sleep(0.2)
    threading.Thread(target=read_loop, daemon=True).start()
    time.sleep(2)
    servers["eu"].relay.down()  # type: ignore[union-attr]
    out_at = time.perf_counter()
    n = 0
    while time.perf_counter() - out_at < args.outage:
        n += 1
        pusher.push(make_adapter(work / f"o{n}", args.mb, 20_000 + n), "bench/outage")
    during = backlog(rt, "eu")
    servers["eu"].relay.up()  # type: ignore[union-attr]
    back_at = time.perf_counter()
    while backlog(rt, "eu"):
        time.sleep(0.2)
    drain_s = time.perf_counter() - back_at
    stop.set()
    workers.close()
    print(
        f"\n3. eu down {args.outage:g} s: {reads[0]} resolves+pulls by eu readers,"
        f" {len(failures)} failed (goal 0); {n} versions pushed meanwhile, eu backlog"
        f" {during} blob(s) at its return, drained in {drain_s:.1f} s"
        f" = {drain_s / args.outage:.2f}x the outage (goal <= 2)   [load {load()}]"
    )
    for f in failures[:5]:
        print(f"   failure: {f}")
    reader_rt.close()
    rt.close()


if __name__ == "__main__":
    main()

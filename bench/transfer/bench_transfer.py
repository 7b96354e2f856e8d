"""Push and pull of a ~500 MB adapter set against a real S3 HTTP server (moto), as ratios
to raw boto3 ``upload_file`` / ``download_file`` of the same files in the same run.

    .venv/bin/python bench/transfer/bench_transfer.py [--mb 500] [--adapters 4] [--remote]

Prints one table; ratio = baseline time / lorareg time (1.0 = as fast as raw boto3,
goal >= 0.8). Also checks that re-pushing unchanged content sends 0 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import numpy as np
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from registry.client.local import LocalClient  # noqa: E402
from registry.config import load_settings  # noqa: E402
from registry.runtime import open_runtime  # noqa: E402
from tests.fixtures.catalog import LiveServer  # noqa: E402
from tests.fixtures.s3 import free_port  # noqa: E402


def make_adapter(folder: Path, mb: float, seed: int) -> Path:
    """A valid LoRA adapter of about ``mb`` MB: r=64 on q/k/v/o/gate/up/down of a
    hidden=4096 LLaMA-shaped model, as many layers as fit."""
    rng = np.random.default_rng(seed)
    r, hidden, inter = 64, 4096, 11008
    shapes = {
        "self_attn.q_proj": (hidden, hidden),
        "self_attn.k_proj": (hidden, hidden),
        "self_attn.v_proj": (hidden, hidden),
        "self_attn.o_proj": (hidden, hidden),
        "mlp.gate_proj": (hidden, inter),
        "mlp.up_proj": (hidden, inter),
        "mlp.down_proj": (inter, hidden),
    }
    per_layer = sum((i + o) * r * 2 for i, o in shapes.values())  # fp16
    layers = max(1, int(mb * 1e6 // per_layer))
    tensors = {}
    for layer in range(layers):
        for mod, (i, o) in shapes.items():
            key = f"base_model.model.model.layers.{layer}.{mod}"
            tensors[f"{key}.lora_A.weight"] = rng.standard_normal((r, i), dtype=np.float32).astype(
                np.float16
            )
            tensors[f"{key}.lora_B.weight"] = rng.standard_normal((o, r), dtype=np.float32).astype(
                np.float16
            )
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    cfg = {
        "peft_type": "LORA", "r": r, "lora_alpha": 128, "task_type": "CAUSAL_LM",
        "target_modules": [m.split(".")[-1] for m in shapes],
        "base_model_name_or_path": "meta-llama/Llama-2-7b-hf",
    }  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=500)
    ap.add_argument("--adapters", type=int, default=4)
    ap.add_argument("--remote", action="store_true", help="also push/pull through lorareg serve")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lorareg-bench-"))
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            try:
                boto3.client("s3", endpoint_url=endpoint).list_buckets()
                break
            except Exception:
                time.sleep(0.1)
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"})
        )
        for b in ("baseline", "lorareg-bench", "lorareg-remote"):
            s3.create_bucket(Bucket=b)

        folders = [
            make_adapter(work / f"a{i}", args.mb / args.adapters, i) for i in range(args.adapters)
        ]
        files = [p for f in folders for p in sorted(f.iterdir())]
        total = sum(p.stat().st_size for p in files)
        print(f"adapter set: {len(folders)} adapters, {len(files)} files, {total / 1e6:.0f} MB")

        cfg = TransferConfig()
        up_base = timed(
            lambda: [
                s3.upload_file(str(p), "baseline", f"{p.parent.name}/{p.name}", Config=cfg)
                for p in files
            ]
        )
        dl = work / "dl"
        dl.mkdir()
        down_base = timed(
            lambda: [
                s3.download_file(
                    "baseline",
                    f"{p.parent.name}/{p.name}",
                    str(dl / f"{p.parent.name}-{p.name}"),
                    Config=cfg,
                )
                for p in files
            ]
        )

        settings = load_settings(
            home=work / "home", cache_dir=work / "cache", storage_url="s3://lorareg-bench/blobs",
            s3_endpoint_url=endpoint, author="bench",
        )  # fmt: skip
        rt = open_runtime(settings)
        client = LocalClient(rt)
        results = {}
        up = timed(lambda: [client.push(f, f"bench/{f.name}") for f in folders])
        repush = [client.push(f, f"bench/{f.name}") for f in folders]
        sent_again = sum(r.bytes_uploaded for r in repush)
        shutil.rmtree(work / "cache", ignore_errors=True)
        down = timed(
            lambda: [client.pull(f"bench/{f.name}", dest=work / "out" / f.name) for f in folders]
        )
        cached = timed(
            lambda: [client.pull(f"bench/{f.name}", dest=work / "out2" / f.name) for f in folders]
        )
        results["embedded client (S3 store)"] = (up, down)

        if args.remote:
            from registry.client.remote import RemoteClient

            rsettings = settings.model_copy(
                update={"storage_url": "s3://lorareg-remote/blobs", "home": work / "rhome"}
            )
            rrt = open_runtime(rsettings)
            with LiveServer(
                __import__("registry.server", fromlist=["create_app"]).create_app(rrt)
            ) as srv:
                rc = RemoteClient(srv.url, actor="bench", cache_dir=work / "rcache")
                rup = timed(lambda: [rc.push(f, f"bench/{f.name}") for f in folders])
                rdown = timed(
                    lambda: [
                        rc.pull(f"bench/{f.name}", dest=work / "rout" / f.name) for f in folders
                    ]
                )
                rc.close()
            results["remote client (presigned)"] = (rup, rdown)

        print(
            f"\n{'':30} {'push s':>8} {'MB/s':>7} {'ratio':>6}   {'pull s':>8} {'MB/s':>7} {'ratio':>6}"
        )
        print(
            f"{'raw boto3 (baseline)':30} {up_base:8.2f} {total / 1e6 / up_base:7.0f} {1.0:6.2f}   {down_base:8.2f} {total / 1e6 / down_base:7.0f} {1.0:6.2f}"
        )
        for name, (u, d) in results.items():
            print(
                f"{name:30} {u:8.2f} {total / 1e6 / u:7.0f} {up_base / u:6.2f}   {d:8.2f} {total / 1e6 / d:7.0f} {down_base / d:6.2f}"
            )
        print(f"\nre-push of unchanged content: {sent_again} bytes sent")
        print(
            f"repeated pull from the local cache: {cached:.2f} s ({total / 1e6 / cached:.0f} MB/s)"
        )
        rt.close()
    finally:
        moto.terminate()
        moto.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

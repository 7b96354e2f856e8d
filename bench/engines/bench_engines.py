"""lorareg's vLLM plugin against vLLM alone: cold and warm adapter loads, and promotion to
vLLM answering with the new version. Real processes: ``lorareg serve`` on S3 (moto's
server), ``vllm serve`` (CPU build, ``.venv-vllm``) with the plugin.

    .venv/bin/python bench/engines/bench_engines.py [--cold 20] [--promotions 30] [--mb 20]

Each sample is a 1-token completion request timed by the client, whole request included.

- ``baseline``: vLLM alone. The adapter folder is already on local disk; the client calls
  ``/v1/load_lora_adapter`` then asks for the token (what the best hand-written loader
  does). Same adapter size, a fresh name each time.
- ``cold``: the plugin. A name vLLM never saw, whose bytes are not on the node: resolve,
  download from S3 through a presigned URL, sha256, the compatibility check against the
  served base, vLLM's load, the token.
- ``warm``: the plugin, bytes already in the node cache (another name for the same
  content): resolve, the check, vLLM's load, the token.
- ``promotion``: ``promote`` returns -> vLLM serves the name from the new version's
  folder (polled on ``/v1/models``), with the feed baseline: a bare long poll of
  ``/api/v1/events`` timed from the same instant.

Prints a table with p50/p99 and ratios to the baseline; ``--json PATH`` writes it too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from registry.client.remote import RemoteClient  # noqa: E402
from tests.engines.conftest import plugin_dist  # noqa: E402
from tests.fixtures.s3 import free_port  # noqa: E402

LORAREG = str(Path(sys.executable).with_name("lorareg"))
VLLM_PYTHON = os.environ.get("LORAREG_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
LAUNCHER = ROOT / "tests" / "engines" / "vllm_launcher.py"
BASE = "bench-llama"
HIDDEN, LAYERS, RANK = 1024, 8, 44
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def make_base(folder: Path) -> Path:
    """A random LLaMA of 8 layers, hidden 1024, with a word-level tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.engines.conftest import save_served_base

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=128, hidden_size=HIDDEN, intermediate_size=HIDDEN, num_hidden_layers=LAYERS,
        num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=512,
        tie_word_embeddings=False,
    )  # fmt: skip
    save_served_base(folder)  # the tokenizer (and a tiny model, replaced next)
    LlamaForCausalLM(cfg).save_pretrained(folder, safe_serialization=True)
    return folder


def make_adapter(folder: Path, seed: int) -> Path:
    """A LoRA adapter of about 20 MB (r=44 on every linear module, float32)."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(LAYERS):
        for mod in MODULES:
            part = "mlp" if mod in ("gate_proj", "up_proj", "down_proj") else "self_attn"
            key = f"base_model.model.model.layers.{layer}.{part}.{mod}"
            tensors[f"{key}.lora_A.weight"] = rng.normal(0, 0.02, (RANK, HIDDEN)).astype("<f4")
            tensors[f"{key}.lora_B.weight"] = rng.normal(0, 0.02, (HIDDEN, RANK)).astype("<f4")
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA", "r": RANK, "lora_alpha": 2 * RANK, "target_modules": list(MODULES),
        "base_model_name_or_path": BASE, "bias": "none", "task_type": "CAUSAL_LM",
        "lora_dropout": 0.0, "fan_in_fan_out": False, "inference_mode": True,
    }  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def wait_http(url: str, deadline_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def one_token(http: httpx.Client, model: str) -> None:
    body = {"model": model, "prompt": [5, 6, 7], "max_tokens": 1, "temperature": 0}
    resp = http.post("/v1/completions", json=body)
    if resp.status_code != 200:
        raise SystemExit(f"{model}: vLLM answered {resp.status_code}: {resp.text[:300]}")


def timed(work: Any) -> float:
    t0 = time.perf_counter()
    work()
    return time.perf_counter() - t0


def pct(xs: list[float], p: int) -> float:
    if len(xs) < 2:
        return xs[0] * 1000
    return statistics.quantiles(xs, n=100, method="inclusive")[p - 1] * 1000


class FeedListener(threading.Thread):
    """Long-polls the feed; ``heard()`` is when the next promotion arrived."""

    def __init__(self, url: str, since: int) -> None:
        super().__init__(daemon=True)
        self.url, self.since = url, since
        self.arrivals: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self.stop.is_set():
                params: dict[str, Any] = {"since": self.since, "wait": 5}
                for e in http.get("/api/v1/events", params=params).json():
                    self.since = e["id"]
                    if e["kind"] == "stage.changed" and e["payload"].get("to") == "production":
                        self.arrivals.append(time.perf_counter())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cold", type=int, default=20, help="cold loads (each a new adapter)")
    ap.add_argument("--promotions", type=int, default=30)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not Path(VLLM_PYTHON).is_file():
        raise SystemExit("no .venv-vllm: tests/compat/oracles/make_vllm_env.sh builds it")

    work = Path(tempfile.mkdtemp(prefix="lorareg-bench-engines-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        s3_port, reg_port, vllm_port = free_port(), free_port(), free_port()
        s3 = f"http://127.0.0.1:{s3_port}"
        env = {**os.environ, **AWS}
        for key in ("LORAREG_URL", "LORAREG_TOKEN", "LORAREG_DATABASE_URL", "AWS_PROFILE"):
            env.pop(key, None)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        wait_http(f"{s3}/", 60)
        import boto3

        boto3.client("s3", endpoint_url=s3, **_creds()).create_bucket(Bucket="bench")
        reg_env = {
            **env, "LORAREG_HOME": str(work / "home"), "LORAREG_AUTHOR": "bench",
            "LORAREG_STORAGE_URL": "s3://bench/blobs", "LORAREG_S3_ENDPOINT_URL": s3,
        }  # fmt: skip
        subprocess.run([LORAREG, "db", "upgrade"], env=reg_env, check=True, capture_output=True)
        procs.append(subprocess.Popen(
            [LORAREG, "serve", "--port", str(reg_port)], env=reg_env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))  # fmt: skip
        reg = f"http://127.0.0.1:{reg_port}"
        wait_http(f"{reg}/healthz", 120)
        admin = RemoteClient(reg, actor="bench")

        base_dir = make_base(work / "base")
        n_cold = args.cold
        adapters = [make_adapter(work / f"a{i}", seed=i) for i in range(n_cold + 2)]
        size_mb = (adapters[0] / "adapter_model.safetensors").stat().st_size / 1e6
        for i, a in enumerate(adapters[:n_cold]):
            admin.push(a, f"bench/cold-{i}", base=BASE)
            admin.promote(f"bench/cold-{i}:1", to="production")
        for n in (n_cold, n_cold + 1):
            admin.push(adapters[n], "bench/promo", base=BASE)
        admin.promote("bench/promo:1", to="production")

        vllm = f"http://127.0.0.1:{vllm_port}"
        dist = plugin_dist(work / "plugin")
        vllm_env = {
            **env,
            "PYTHONPATH": os.pathsep.join([str(dist), str(ROOT), env.get("PYTHONPATH", "")]),
            "VLLM_HOST_IP": "127.0.0.1", "VLLM_CPU_KVCACHE_SPACE": "1",
            "VLLM_NO_USAGE_STATS": "1", "VLLM_TARGET_DEVICE": "cpu",
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "LORAREG_URL": reg, "LORAREG_HOME": str(work / "plugin-home"),
            "LORAREG_VLLM_BASE": BASE, "LORAREG_VLLM_CACHE_DIR": str(work / "cache"),
            "LORAREG_VLLM_ENGINE_URL": vllm,
        }  # fmt: skip
        log = (work / "vllm.log").open("wb")
        procs.append(subprocess.Popen(
            [VLLM_PYTHON, str(LAUNCHER), "serve", str(base_dir), "--host", "127.0.0.1",
             "--port", str(vllm_port), "--dtype", "float32", "--max-model-len", "512",
             "--enable-lora", "--max-lora-rank", "64", "--max-loras", "2",
             "--max-cpu-loras", "4"],
            env=vllm_env, stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
        print("waiting for vllm serve ...", file=sys.stderr)
        wait_http(f"{vllm}/v1/models", 900, procs[-1])
        http = httpx.Client(base_url=vllm, timeout=300)
        one_token(http, str(base_dir))  # warm vLLM's own paths

        baseline, cold, warm = [], [], []
        for i in range(n_cold):
            # vLLM alone: the same bytes already on local disk, loaded by hand.
            name = f"local-{i}"

            def by_hand(name: str = name, i: int = i) -> None:
                r = http.post("/v1/load_lora_adapter", json={
                    "lora_name": name, "lora_path": str(adapters[i]),
                })  # fmt: skip
                assert r.status_code == 200, r.text
                one_token(http, name)

            baseline.append(timed(by_hand))
            cold.append(timed(lambda i=i: one_token(http, f"bench/cold-{i}")))
            # Another name for the same content: the node cache has the bytes.
            warm.append(timed(lambda i=i: one_token(http, f"bench/cold-{i}:1")))

        one_token(http, "bench/promo")
        since = max(e.id for e in admin.events(0))
        feed = FeedListener(reg, since)
        feed.start()
        promo, heard = [], []
        versions = {n: admin.show(f"bench/promo:{n}").content_id for n in (1, 2)}
        current = 1
        for _ in range(args.promotions):
            current = 3 - current
            time.sleep(0.2)
            admin.promote(f"bench/promo:{current}", to="production")
            t0 = time.perf_counter()
            want = str(work / "cache" / versions[current])
            while True:
                cards = http.get("/v1/models").json()["data"]
                if any(c["id"] == "bench/promo" and c["root"] == want for c in cards):
                    break
                if time.perf_counter() - t0 > 60:
                    raise SystemExit("vLLM never switched")
                time.sleep(0.002)
            one_token(http, "bench/promo")
            promo.append(time.perf_counter() - t0)
            deadline = time.perf_counter() + 10
            while len(feed.arrivals) < len(promo) and time.perf_counter() < deadline:
                time.sleep(0.001)
            heard.append(max(0.0, feed.arrivals[len(promo) - 1] - t0))
        feed.stop.set()

        rows = [
            ("baseline: vLLM loads a local folder", baseline),
            ("plugin cold (S3 -> cache -> vLLM)", cold),
            ("plugin warm (from the node cache)", warm),
            ("baseline: the feed hears a promotion", heard),
            ("promotion -> vLLM serves the new version", promo),
        ]
        results = []
        print(f"\nadapter {size_mb:.1f} MB; {n_cold} cold loads, {args.promotions} promotions")
        print(f"{'':44} {'n':>4} {'p50':>9} {'p99':>9} {'p50 / baseline':>15}")
        for label, xs in rows:
            ref = heard if "promotion" in label else baseline
            ratio = statistics.median(xs) / statistics.median(ref) if statistics.median(ref) else 0
            results.append({
                "what": label, "n": len(xs), "p50_ms": round(pct(xs, 50), 1),
                "p99_ms": round(pct(xs, 99), 1), "p50_ratio": round(ratio, 2),
            })  # fmt: skip
            print(
                f"{label:44} {len(xs):4d} {pct(xs, 50):7.1f}ms {pct(xs, 99):7.1f}ms {ratio:14.2f}x"
            )
        if args.json:
            args.json.write_text(json.dumps({"adapter_mb": size_mb, "results": results}, indent=2))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


def _creds() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS["AWS_DEFAULT_REGION"],
    }


if __name__ == "__main__":
    main()

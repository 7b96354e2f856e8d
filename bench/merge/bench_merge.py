"""Merge benchmark: lorareg's streaming merge against PEFT and against a plain copy, same run.

    .venv/bin/python bench/merge/bench_merge.py [--size 1b|small|tiny] [--device cpu|cuda|auto]
                                                [--skip-peft] [--work-dir bench/out] [--json F]

Generates once (cached under --work-dir) a LLaMA-shaped bf16 base with random weights in 4
shards, written tensor by tensor so no full model is ever in memory, and an r=16 LoRA adapter
on every linear layer (q/k/v/o/gate/up/down) written directly as a PEFT adapter folder.
Then runs each contender in its own child process and reads that child's wall time and peak
RSS (``os.wait4``):

- ``cp -r`` of the base folder (the floor: bytes in, bytes out);
- ``python -c 'import torch'``: not a merge, the start-up time and memory every torch-based
  contender pays before its first byte (what bounds the goals' ratios on a small base);
- ``lorareg merge REF --base B --wait`` (embedded, the whole command, start-up included: the
  job runs in the CLI's own process and its output is stored as a new version), against a
  registry set up once under --work-dir (base registered, adapter pushed; not timed);
- lorareg ``merge_adapters`` on --device (the engine alone, in a bare process);
- PEFT: ``from_pretrained`` (bf16) + ``PeftModel.from_pretrained`` + ``merge_and_unload`` +
  ``save_pretrained``, on the same device.

Prints a table and the ratios (goals on CPU, issue 17: the CLI <= 2.5x the copy's wall time,
start-up included; the engine <= 1.5x the copy inside its process; peak memory <= 0.15x
PEFT's), and GB/s for lorareg.
Size 1b is Llama-3.2-1B's shape (1.24B parameters, 2.5 GB in bf16, tied embeddings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden=256, inter=768, layers=4, heads=8, kv_heads=4, vocab=4096),
    "small": dict(hidden=1024, inter=4096, layers=8, heads=16, kv_heads=4, vocab=32000),
    "1b": dict(hidden=2048, inter=8192, layers=16, heads=32, kv_heads=8, vocab=128256),
}
SHARDS = 4
TORCH_IMPORT = "python -c 'import torch'"
RANK, ALPHA = 16, 32
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def llama_tensors(s: dict[str, Any]) -> list[tuple[str, tuple[int, ...]]]:
    """Tensor names and shapes of a LlamaForCausalLM with tied embeddings, in save order."""
    h, i, kv = s["hidden"], s["inter"], s["hidden"] // s["heads"] * s["kv_heads"]
    out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (s["vocab"], h))]
    for n in range(s["layers"]):
        p = f"model.layers.{n}"
        out += [
            (f"{p}.input_layernorm.weight", (h,)),
            (f"{p}.self_attn.q_proj.weight", (h, h)),
            (f"{p}.self_attn.k_proj.weight", (kv, h)),
            (f"{p}.self_attn.v_proj.weight", (kv, h)),
            (f"{p}.self_attn.o_proj.weight", (h, h)),
            (f"{p}.post_attention_layernorm.weight", (h,)),
            (f"{p}.mlp.gate_proj.weight", (i, h)),
            (f"{p}.mlp.up_proj.weight", (i, h)),
            (f"{p}.mlp.down_proj.weight", (h, i)),
        ]
    out.append(("model.norm.weight", (h,)))
    return out


def generate_base(folder: Path, s: dict[str, Any]) -> None:
    """Write the bf16 base shard by shard, tensor by tensor (random normal, std 0.02)."""
    import torch

    from registry.merge.tensor_io import encode_header, tensor_bytes

    tensors = llama_tensors(s)
    total = sum(math.prod(shape) * 2 for _, shape in tensors)
    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    acc = 0
    for name, shape in tensors:
        size = math.prod(shape) * 2
        if groups[-1] and acc + size > total / SHARDS * len(groups) and len(groups) < SHARDS:
            groups.append([])
        groups[-1].append((name, shape))
        acc += size
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    gen = torch.Generator().manual_seed(0)
    weight_map = {}
    for k, group in enumerate(groups):
        shard = f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
        header = encode_header([(n, "BF16", sh) for n, sh in group], {"format": "pt"})
        with open(tmp / shard, "wb") as fh:
            fh.write(header)
            for name, shape in group:
                weight_map[name] = shard
                if len(shape) == 1:
                    fh.write(tensor_bytes(torch.ones(shape, dtype=torch.bfloat16)))
                    continue
                step = max(1, 8 * 2**20 // shape[1])
                for start in range(0, shape[0], step):
                    rows = min(step, shape[0] - start)
                    t = torch.randn((rows, shape[1]), generator=gen).mul_(0.02)
                    fh.write(tensor_bytes(t.to(torch.bfloat16)))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (tmp / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": s["hidden"],
        "intermediate_size": s["inter"],
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"],
        "vocab_size": s["vocab"],
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "dtype": "bfloat16",
        "torch_dtype": "bfloat16",
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=2))
    os.rename(tmp, folder)


def generate_adapter(folder: Path, s: dict[str, Any]) -> None:
    """An r=16 PEFT LoRA adapter on every linear layer, saved as PEFT saves one (fp32)."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(1)
    tensors = {}
    for name, shape in llama_tensors(s):
        module = name.removesuffix(".weight")
        if len(shape) != 2 or module.rsplit(".", 1)[-1] not in TARGETS:
            continue
        out_f, in_f = shape
        key = f"base_model.model.{module}"
        tensors[f"{key}.lora_A.weight"] = torch.randn((RANK, in_f), generator=gen) / in_f**0.5
        tensors[f"{key}.lora_B.weight"] = torch.randn((out_f, RANK), generator=gen) * 0.01
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(tensors, tmp / "adapter_model.safetensors", metadata={"format": "pt"})
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": "bench-llama",
        "r": RANK,
        "lora_alpha": ALPHA,
        "lora_dropout": 0.0,
        "target_modules": TARGETS,
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "init_lora_weights": True,
        "modules_to_save": None,
        "inference_mode": True,
    }
    (tmp / "adapter_config.json").write_text(json.dumps(config, indent=2))
    os.rename(tmp, folder)


def child_ours(base: Path, adapter: Path, out: Path, device: str) -> dict[str, Any]:
    from registry.merge import AdapterInput, merge_adapters

    r = merge_adapters(base, [AdapterInput(adapter)], out, device=device)
    return {
        "internal_s": r.elapsed_s,
        "bytes": r.bytes_total,
        "bytes_computed": r.bytes_computed,
        "timings": r.timings,
        "verify_max_error_ratio": r.verification.max_error_ratio,
        "verify_max_rel_error": r.verification.max_rel_error,
        "device": r.device,
    }


def child_peft(base: Path, adapter: Path, out: Path, device: str) -> dict[str, Any]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
    if device.startswith("cuda"):
        model.to(device)  # type: ignore[arg-type]  # transformers 5 types .to oddly
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    merged.save_pretrained(out, max_shard_size=f"{_dir_bytes(base) // SHARDS // 2**20 + 1}MB")
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return {"internal_s": time.perf_counter() - t0}


def _dir_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def cli_env(home: Path) -> dict[str, str]:
    """The environment of an embedded ``lorareg`` run on the registry under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAREG_")}
    env.update(
        PYTHONPATH=str(ROOT),
        LORAREG_HOME=str(home),
        LORAREG_CACHE_DIR=str(home / "cache"),
    )
    return env


def setup_registry(home: Path, base: Path, adapter: Path) -> None:
    """Register the base and push the adapter once (kept in ``home``, not timed)."""
    if (home / "ready").exists():
        return
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = cli_env(home)
    lorareg = [sys.executable, "-m", "cli.main"]
    for argv in (
        [*lorareg, "base", "add", "bench-llama", str(base)],
        [*lorareg, "push", str(adapter), "bench/adapter", "--base", "bench-llama"],
    ):
        subprocess.run(argv, env=env, check=True, capture_output=True, text=True, cwd=ROOT)
    (home / "ready").write_text("")


def cli_merge(home: Path, device: str, run: int) -> dict[str, Any]:
    """One ``lorareg merge --wait`` into a new repository, then its output blobs removed
    (a later run must store its bytes again, not find them stored)."""
    blobs = home / "blobs"
    before = {p for p in blobs.rglob("*") if p.is_file()}
    argv = [
        *[sys.executable, "-m", "cli.main", "merge", "bench/adapter:1"],
        *["--base", "bench-llama", "--device", device, "--output", f"bench/merged-{run}"],
        *["--wait", "--json"],
    ]
    r = run_child(argv, env=cli_env(home), parse=False)
    for p in blobs.rglob("*"):
        if p.is_file() and p not in before:
            p.unlink()
    if "error" not in r:
        job = json.loads(r.pop("stdout"))["job"]
        if job["state"] != "succeeded":
            return {**r, "error": f"job {job['state']}: {job['error']}"}
        r["internal_s"] = job["result"]["elapsed_s"]
        r["timings"] = job["result"].get("timings")
    return r


def run_child(
    argv: list[str], *, env: dict[str, str] | None = None, parse: bool = True
) -> dict[str, Any]:
    """Run a contender in a fresh process; its wall time and its own peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(
            f"{' '.join(argv[:5])} failed ({proc.returncode}):\n{stderr[-3000:]}", file=sys.stderr
        )
        return {
            "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "error": stderr[-500:],
        }
    # ru_maxrss is in KiB on Linux. CPU time (user + system, all threads) is the work done,
    # which a loaded machine's scheduling changes far less than the wall time.
    own = {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }
    if not parse:
        return {**own, "stdout": stdout}
    extra = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
    return {**own, **extra}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median wall time, with every run's walls and the worst peak RSS."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    median = dict(ordered[len(ordered) // 2])
    median["walls_s"] = [round(r["wall_s"], 2) for r in runs]
    median["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return median


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="1b")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or auto (lorareg and PEFT)")
    ap.add_argument("--skip-peft", action="store_true")
    ap.add_argument("--skip-cli", action="store_true", help="no `lorareg merge --wait` run")
    ap.add_argument("--work-dir", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--repeat", type=int, default=1, help="runs per contender (median kept)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--child", choices=["ours", "peft", "generate"], help=argparse.SUPPRESS)
    ap.add_argument("paths", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    s = SIZES[args.size]
    if args.child == "generate":
        base, adapter = args.paths
        if not base.is_dir():
            generate_base(base, s)
        if not adapter.is_dir():
            generate_adapter(adapter, s)
        import torch

        print(json.dumps({"device": "cuda" if torch.cuda.is_available() else "cpu"}))
        return
    if args.child:
        base, adapter, out = args.paths
        fn = child_ours if args.child == "ours" else child_peft
        print(json.dumps(fn(base, adapter, out, args.device)))
        return

    # This process stays free of torch: a forked child's peak RSS counts the parent's pages
    # until it execs, which would inflate every contender (cp included) by torch's footprint.
    me = [sys.executable, str(Path(__file__).resolve())]
    work = args.work_dir / f"merge-{args.size}"
    base, adapter, out = work / "base", work / "adapter", work / "merged"
    t0 = time.perf_counter()
    if not base.is_dir():
        print(f"generating {args.size} base in {base} ...", file=sys.stderr)
    generated = run_child(
        [*me, "--size", args.size, "--child", "generate", str(base), str(adapter)]
    )
    gen_s = time.perf_counter() - t0
    device = generated["device"] if args.device == "auto" else args.device
    n_params = sum(math.prod(shape) for _, shape in llama_tensors(s))
    size = _dir_bytes(base)

    home = work / "registry"
    if not args.skip_cli:
        try:
            setup_registry(home, base, adapter)
        except subprocess.CalledProcessError as exc:
            # A GPU box may lack the registry's own dependencies: bench the engine anyway.
            print(f"no `lorareg merge --wait` run: setup failed:\n{exc.stderr[-1500:]}")
            args.skip_cli = True
    contenders: list[tuple[str, list[str] | None]] = [("cp -r", ["cp", "-r", str(base), str(out)])]
    # Not a contender: the floor any torch-based merge pays (start-up and memory) before
    # reading a byte, to show what bounds the ratios to cp -r and to PEFT's peak memory.
    contenders.append((TORCH_IMPORT, [sys.executable, "-c", "import torch"]))
    if not args.skip_cli:
        contenders.append((f"lorareg merge --wait ({device})", None))
    ours = [*me, "--child", "ours", "--device", device, str(base), str(adapter), str(out)]
    contenders.append((f"lorareg ({device})", ours))
    if not args.skip_peft:
        peft = [*me, "--child", "peft", "--device", device, str(base), str(adapter), str(out)]
        contenders.append((f"PEFT ({device})", peft))
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in contenders}
    for n in range(args.repeat):
        # Interleaved, so a noisy neighbour slows every contender alike.
        for label, argv in contenders:
            shutil.rmtree(out, ignore_errors=True)
            os.sync()  # start each contender with no dirty pages from the one before
            if argv is None:
                runs[label].append(cli_merge(home, device, n))
            else:
                runs[label].append(run_child(argv))
            shutil.rmtree(out, ignore_errors=True)
            os.sync()
    results = {label: _median_run(r) for label, r in runs.items()}
    failed = [label for label, r in results.items() if "error" in r]
    if failed:
        print(f"failed: {', '.join(failed)} (see above)", file=sys.stderr)
    if "error" in results["cp -r"] or "error" in results[f"lorareg ({device})"]:
        raise SystemExit(1)

    print(
        f"\nmerge benchmark: size {args.size} ({n_params / 1e9:.2f}B params, {size / 1e9:.2f} GB"
        f" bf16 in {SHARDS} shards), r={RANK} on {len(TARGETS)} linear layers/block,"
        f" device {device}, cpus {os.cpu_count()}, median of {args.repeat}"
        f" (generated in {gen_s:.1f}s)"
    )
    print(
        f"{'contender':<30}{'wall s':>9}{'in-proc s':>11}{'CPU s':>9}{'peak RSS MB':>13}  all walls"
    )
    for label, r in results.items():
        inner = f"{r['internal_s']:.2f}" if "internal_s" in r else "failed" if "error" in r else "-"
        print(
            f"{label:<30}{r['wall_s']:>9.2f}{inner:>11}{r['cpu_s']:>9.2f}{r['peak_rss_mb']:>13.0f}"
            f"  {r['walls_s']}"
        )
        if r.get("timings"):
            print(f"{'':<30}{json.dumps({k: round(v, 2) for k, v in r['timings'].items()})}")
    ours_r = results[f"lorareg ({device})"]
    cp_r = results["cp -r"]
    ratios: dict[str, float] = {
        "ours/cp time": ours_r["wall_s"] / cp_r["wall_s"],
        "ours/cp time (in-process)": ours_r["internal_s"] / cp_r["wall_s"],
        "ours/cp CPU time": ours_r["cpu_s"] / cp_r["cpu_s"],
        "lorareg GB/s (wall)": size / 1e9 / ours_r["wall_s"],
        "lorareg GB/s (in-process)": size / 1e9 / ours_r["internal_s"],
    }
    cli_r = results.get(f"lorareg merge --wait ({device})")
    if cli_r and "error" not in cli_r:
        ratios["CLI/cp time (wall, goal <= 2.5)"] = cli_r["wall_s"] / cp_r["wall_s"]
        ratios["CLI job/cp time (in-process)"] = cli_r["internal_s"] / cp_r["wall_s"]
        ratios["CLI/cp CPU time"] = cli_r["cpu_s"] / cp_r["cpu_s"]
    peft_r = results.get(f"PEFT ({device})")
    if peft_r and "error" not in peft_r:
        if cli_r and "error" not in cli_r:
            ratios["CLI/PEFT time"] = cli_r["wall_s"] / peft_r["wall_s"]
            ratios["CLI/PEFT peak RSS (goal <= 0.15)"] = (
                cli_r["peak_rss_mb"] / peft_r["peak_rss_mb"]
            )
        ratios["ours/PEFT time"] = ours_r["wall_s"] / peft_r["wall_s"]
        ratios["ours/PEFT time (in-process)"] = ours_r["internal_s"] / peft_r["internal_s"]
        ratios["ours/PEFT peak RSS"] = ours_r["peak_rss_mb"] / peft_r["peak_rss_mb"]
    floor = results.get(TORCH_IMPORT)
    if floor and "error" not in floor:
        ratios["torch import/cp time (floor)"] = floor["wall_s"] / cp_r["wall_s"]
        if peft_r and "error" not in peft_r:
            ratios["torch import/PEFT peak RSS (floor)"] = (
                floor["peak_rss_mb"] / peft_r["peak_rss_mb"]
            )
    for k, v in ratios.items():
        print(f"  {k:<36}{v:8.3f}")
    print(f"  verification max error / rounding bound: {ours_r['verify_max_error_ratio']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "size": args.size,
            "params": n_params,
            "bytes": size,
            "device": device,
            "cpus": os.cpu_count(),
            "results": results,
            "ratios": ratios,
        }
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()

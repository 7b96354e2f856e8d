"""Adapter-library benchmark: interference over a library, compose and compress; each against
its dense baseline or floor in the same run.

    .venv/bin/python bench/library/bench_library.py [--adapters 100] [--layers 32]
        [--dense-pairs 2] [--work-dir bench/out/library] [--json F]

Shapes are LLaMA-8B's (hidden 4096, intermediate 14336, 8 KV heads of 128): r=16 on every
linear layer (q/k/v/o/gate/up/down) of every layer.

1. Interference: 100 adapters are synthetic factor sources (seeded per adapter and module,
   generated as read, so the library never sits in memory: 100 such adapters are 17 GB in
   fp32). ``registry.library.interference.pairwise`` runs all 4,950 pairs. The same
   generation without any math is timed too, so the math's own time is reported apart.
   Baseline: the dense computation (materialise ``s B A`` of both adapters per module, then
   the Frobenius inner product and norms) on --dense-pairs pairs, extrapolated to all pairs
   (the dense path for every pair would take hours on a small machine). Exactness: the
   factor path's cosines of those same pairs against the dense ones, every module.
2. Compose (cat and svd) and compress (rank 8) of 3 such adapters written as PEFT folders
   (bf16), each in its own child process: wall time and peak RSS (``os.wait4``), against the
   floor of a child that imports torch and reads the 3 folders' bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from registry.library.factors import ModuleFactors, ModuleShape  # noqa: E402
from registry.library.interference import all_pairs, pairwise  # noqa: E402

HIDDEN, INTER, KV = 4096, 14336, 1024
PROJ = {
    "self_attn.q_proj": (HIDDEN, HIDDEN),
    "self_attn.k_proj": (HIDDEN, KV),
    "self_attn.v_proj": (HIDDEN, KV),
    "self_attn.o_proj": (HIDDEN, HIDDEN),
    "mlp.gate_proj": (HIDDEN, INTER),
    "mlp.up_proj": (HIDDEN, INTER),
    "mlp.down_proj": (INTER, HIDDEN),
}
RANK, ALPHA = 16, 32


def module_shapes(layers: int) -> dict[str, ModuleShape]:
    return {
        f"model.layers.{i}.{p}": ModuleShape(RANK, d_in, d_out)
        for i in range(layers)
        for p, (d_in, d_out) in PROJ.items()
    }


class SyntheticAdapter:
    """Factors generated from (adapter, module) seeds as they are read: a trained-looking
    A (Kaiming-like) and B (small), bit-identical on every read."""

    def __init__(self, index: int, shapes: dict[str, ModuleShape]) -> None:
        self.label = f"lib/adapter-{index}"
        self.index = index
        self._shapes = shapes
        self._order = {m: k for k, m in enumerate(shapes)}

    @property
    def shapes(self) -> dict[str, ModuleShape]:
        return self._shapes

    def factors(self, module: str, *, dtype: torch.dtype = torch.float32) -> ModuleFactors:
        sh = self._shapes[module]
        g = torch.Generator().manual_seed(self.index * 100_003 + self._order[module])
        a = torch.randn(sh.rank, sh.in_features, generator=g) / sh.in_features**0.5
        b = torch.randn(sh.out_features, sh.rank, generator=g) * 0.01
        return ModuleFactors(module, a.to(dtype), b.to(dtype), ALPHA / RANK)


def dense_pair(x: SyntheticAdapter, y: SyntheticAdapter) -> dict[str, float]:
    """The baseline: every module's two deltas materialised, then <x, y> / (|x| |y|)."""
    out = {}
    for module in x.shapes:
        dx = x.factors(module).dense()
        dy = y.factors(module).dense()
        ip = float((dx * dy).sum(dtype=torch.float64))
        nx = float(dx.pow(2).sum(dtype=torch.float64))
        ny = float(dy.pow(2).sum(dtype=torch.float64))
        out[module] = ip / (nx * ny) ** 0.5
        del dx, dy
    return out


def bench_interference(args: argparse.Namespace) -> dict[str, Any]:
    shapes = module_shapes(args.layers)
    lib = [SyntheticAdapter(i, shapes) for i in range(args.adapters)]
    n_pairs = len(all_pairs(len(lib)))
    t0 = time.perf_counter()
    for src in lib:
        for module in shapes:
            src.factors(module)
    gen_s = time.perf_counter() - t0
    print(f"generation alone: {gen_s:.1f} s", flush=True)
    t0 = time.perf_counter()
    result = pairwise(lib)
    total_s = time.perf_counter() - t0
    print(f"factor path, {n_pairs} pairs: {total_s:.1f} s", flush=True)
    dense_times, worst = [], 0.0
    for i in range(args.dense_pairs):
        x, y = i, len(lib) - 1 - i
        t0 = time.perf_counter()
        ref = dense_pair(lib[x], lib[y])
        dense_times.append(time.perf_counter() - t0)
        print(f"dense pair {i}: {dense_times[-1]:.1f} s", flush=True)
        # Exactness on the same pairs: the factor path's cosines against the dense ones.
        worst = max(worst, max(abs(result[(x, y)][k].cosine - ref[k]) for k in ref))
    dense_per_pair = sum(dense_times) / len(dense_times)
    math_s = max(total_s - gen_s, 1e-9)
    dense_all = dense_per_pair * n_pairs
    return {
        "adapters": len(lib),
        "modules_per_adapter": len(shapes),
        "pairs": n_pairs,
        "factor_path_s": round(total_s, 1),
        "factor_generation_s": round(gen_s, 1),
        "factor_math_s": round(math_s, 1),
        "dense_pairs_timed": args.dense_pairs,
        "dense_s_per_pair": round(dense_per_pair, 2),
        "dense_all_pairs_extrapolated_s": round(dense_all, 0),
        "speedup_total": round(dense_all / total_s, 1),
        "speedup_math": round(dense_all / math_s, 1),
        "max_abs_cosine_error_vs_dense": worst,
        "modules_checked": args.dense_pairs * len(shapes),
    }


def write_adapters(work: Path, layers: int, count: int = 3) -> list[Path]:
    from safetensors.torch import save_file

    shapes = module_shapes(layers)
    folders = []
    for i in range(count):
        folder = work / f"adapter-{i}"
        folders.append(folder)
        if (folder / "adapter_model.safetensors").exists():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        src = SyntheticAdapter(1000 + i, shapes)
        tensors = {}
        for m in shapes:
            f = src.factors(m)
            tensors[f"base_model.model.{m}.lora_A.weight"] = f.a.to(torch.bfloat16)
            tensors[f"base_model.model.{m}.lora_B.weight"] = f.b.to(torch.bfloat16)
        save_file(tensors, str(folder / "adapter_model.safetensors"))
        (folder / "adapter_config.json").write_text(
            json.dumps(
                {
                    "peft_type": "LORA",
                    "r": RANK,
                    "lora_alpha": ALPHA,
                    "target_modules": [p.split(".")[-1] for p in PROJ],
                    "base_model_name_or_path": "meta-llama/Llama-3.1-8B",
                    "task_type": "CAUSAL_LM",
                }
            )
        )
    return folders


CHILD = {
    "floor (import torch, read the 3 adapters)": (
        "import torch, sys\nfor f in sys.argv[2:]:\n"
        "    open(f + '/adapter_model.safetensors', 'rb').read()"
    ),
    "compose cat": (
        "import sys; from pathlib import Path\nfrom registry.library.folders import compose_folders\n"
        "compose_folders([Path(p) for p in sys.argv[2:]], Path(sys.argv[1]) / 'cat',"
        " method='cat', weights=[1, 0.6, 1])"
    ),
    "compose svd (rank 16)": (
        "import sys; from pathlib import Path\nfrom registry.library.folders import compose_folders\n"
        "compose_folders([Path(p) for p in sys.argv[2:]], Path(sys.argv[1]) / 'svd',"
        " method='svd', weights=[1, 0.6, 1])"
    ),
    "compress rank 8 (one adapter)": (
        "import sys; from pathlib import Path\nfrom registry.library.folders import compress_folder\n"
        "compress_folder(Path(sys.argv[2]), Path(sys.argv[1]) / 'small', rank=8)"
    ),
}


def run_child(code: str, out: Path, folders: list[Path]) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, str(out), *map(str, folders)], env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"child failed ({status}): {code}")
    return wall, usage.ru_maxrss / 1024  # MiB on Linux


def bench_compose(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work_dir)
    folders = write_adapters(work / "inputs", args.layers)
    out = work / "outputs"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows = {}
    for name, code in CHILD.items():
        wall, rss = run_child(code, out, folders)
        rows[name] = {"wall_s": round(wall, 2), "peak_rss_mib": round(rss)}
    floor = rows["floor (import torch, read the 3 adapters)"]
    for r in rows.values():
        r["x_floor_time"] = round(r["wall_s"] / floor["wall_s"], 2)
        r["x_floor_rss"] = round(r["peak_rss_mib"] / floor["peak_rss_mib"], 2)
    rows["input_bytes_each"] = (folders[0] / "adapter_model.safetensors").stat().st_size
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapters", type=int, default=100)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--dense-pairs", type=int, default=2)
    ap.add_argument("--work-dir", default=str(ROOT / "bench" / "out" / "library"))
    ap.add_argument("--skip-interference", action="store_true")
    ap.add_argument("--skip-compose", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    doc: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    if not args.skip_compose:
        doc["compose_compress"] = bench_compose(args)
        print(json.dumps(doc["compose_compress"], indent=2), flush=True)
    if not args.skip_interference:
        doc["interference"] = bench_interference(args)
        print(json.dumps(doc["interference"], indent=2), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()

"""Adapter-library benchmark: interference over a library, compose and compress; each against
its dense baseline or floor in the same run.

    .venv/bin/python bench/library/bench_library.py [--adapters 100] [--layers 32]
        [--dense-pairs 2] [--rows-layers 1] [--compose-layers 32] [--work-dir DIR] [--json F]

Shapes are LLaMA-8B's (hidden 4096, intermediate 14336, 8 KV heads of 128: k/v out 1024):
r=16 on every linear layer (q/k/v/o/gate/up/down) of every layer.

1. Interference: 100 adapters are synthetic factor sources (seeded per adapter and module,
   generated as read, so the library never sits in memory: 100 such adapters are 17 GB in
   fp32). The library's code path runs all 4,950 pairs: ``pairwise`` (every pair missing,
   so two Gram products per module, one module at a time), the cache documents
   (``library_map.cache_docs``) stored in and read back from a SQLite catalog
   (``interference_pairs.store_pairs`` / ``read_pairs``). The time includes generating the
   factors. The block-row path (``strategy="rows"``) is timed on --rows-layers layers.
   Baseline: the dense computation (generate both adapters' factors, materialise both
   ``s B A``, then the Frobenius inner product and both norms) on --dense-pairs pairs, each
   on all 7 modules of one layer, extrapolated to every layer and pair; also an amortised
   lower bound (each delta materialised once and kept, which needs ~23 GB per gate_proj and
   cannot run here: extrapolated from the same sample). Exactness: the library's inner
   products and cosines of the sampled modules against the dense ones.
2. Compose (cat; svd --rank 16) and compress (--rank 8; --energy 0.99) of 3 such adapters
   (bf16 PEFT folders pushed to a local registry) through the CLI as a user runs it (local
   mode: the service embedded, compose jobs run by --wait), each in its own child process:
   wall time and peak RSS (``os.wait4``), against the floors of a child that imports torch
   and reads the 3 folders' bytes and of ``lorareg show``. --compose-layers runs fewer
   layers (the work is per module: the note says how to scale).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
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


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dense_module(x: SyntheticAdapter, y: SyntheticAdapter, module: str) -> dict[str, float]:
    """The baseline for one module of one pair: both deltas materialised (d_out x d_in),
    then the Frobenius inner product and both norms; materialising and the products timed
    apart (for the amortised bound)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fx, fy = x.factors(module), y.factors(module)
    gen, gen_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    dx = fx.dense()
    dy = fy.dense()
    mat, mat_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    ip = float((dx * dy).sum(dtype=torch.float64))
    nx = float(dx.pow(2).sum(dtype=torch.float64))
    ny = float(dy.pow(2).sum(dtype=torch.float64))
    dot, dot_cpu = time.perf_counter() - t0, time.process_time() - c0
    del dx, dy
    return {
        "inner": ip,
        "nx": nx,
        "ny": ny,
        "gen_s": gen,
        "mat_s": mat,
        "dot_s": dot,
        "gen_cpu": gen_cpu,
        "mat_cpu": mat_cpu,
        "dot_cpu": dot_cpu,
    }


def bench_interference(args: argparse.Namespace) -> dict[str, Any]:
    """All pairs through the library's code path (``pairwise``, then the cache documents
    stored in and read back from a SQLite catalog, as ``library_map`` does), against the
    dense computation on a sample, extrapolated."""
    from registry.catalog.interference_pairs import pair_key, read_pairs, store_pairs
    from registry.db.database import Database
    from registry.db.migrate import upgrade
    from registry.library.library_map import cache_docs

    load_before = os.getloadavg()
    shapes = module_shapes(args.layers)
    lib = [SyntheticAdapter(i, shapes) for i in range(args.adapters)]
    n_pairs = len(all_pairs(len(lib)))
    doc: dict[str, Any] = {
        "adapters": len(lib),
        "layers": args.layers,
        "modules_per_adapter": len(shapes),
        "pairs": n_pairs,
    }
    if not args.skip_generation_floor:
        t0 = time.perf_counter()
        for module in shapes:
            for src in lib:
                src.factors(module)
        doc["factor_generation_only_s"] = round(time.perf_counter() - t0, 1)
        print(f"generation alone: {doc['factor_generation_only_s']} s", flush=True)

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    db_path = work / "interference-cache.sqlite"
    db_path.unlink(missing_ok=True)
    db = Database(f"sqlite:///{db_path}")
    upgrade(db)
    cids = [hashlib.sha1(f"bench-adapter-{i}".encode()).hexdigest() for i in range(len(lib))]
    t0, c0 = time.perf_counter(), time.process_time()
    result = pairwise(lib)  # auto: every pair missing, so the Gram path, module by module
    compute_s = time.perf_counter() - t0
    docs = cache_docs(cids, result)
    store_pairs(db, docs)
    store_s = time.perf_counter() - t0 - compute_s
    back = read_pairs(db, {pair_key(cids[i], cids[j]) for i, j in result})
    total_s = time.perf_counter() - t0
    total_cpu = time.process_time() - c0
    assert len(back) == n_pairs
    doc.update(
        {
            "library_path_s": round(total_s, 1),
            "library_path_cpu_s": round(total_cpu, 1),
            "library_compute_s": round(compute_s, 1),
            "cache_store_s": round(store_s, 1),
            "cache_read_s": round(total_s - compute_s - store_s, 1),
            "peak_rss_mib_after_library_path": round(_maxrss_mib()),
        }
    )
    print(f"library path, {n_pairs} pairs: {total_s:.1f} s", flush=True)
    db.dispose()

    if args.rows_layers:
        # The block-row path (one product per adapter against its partners: the shape of
        # the work before the Gram path) on a few layers, extrapolated to all.
        sub = {k: v for k, v in shapes.items() if int(k.split(".")[2]) < args.rows_layers}
        small = [SyntheticAdapter(i, shapes) for i in range(args.adapters)]
        for s_ in small:
            s_._shapes = sub
        t0 = time.perf_counter()
        pairwise(small, strategy="rows")
        rows_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        pairwise(small, strategy="gram")
        gram_s = time.perf_counter() - t0
        doc["rows_path_layers_timed"] = args.rows_layers
        doc["rows_path_s_timed"] = round(rows_s, 1)
        doc["gram_path_s_same_layers"] = round(gram_s, 1)
        doc["rows_path_all_layers_extrapolated_s"] = round(rows_s * args.layers / args.rows_layers)

    # Dense: --dense-pairs pairs, each on every module of one layer (a different layer per
    # pair), extrapolated to every layer and every pair.
    per_type: dict[str, list[dict[str, float]]] = {}
    worst_cos, worst_rel = 0.0, 0.0
    sample = []
    for p in range(args.dense_pairs):
        x, y = p, len(lib) - 1 - p
        layer = (p * 13) % args.layers
        for proj in PROJ:
            module = f"model.layers.{layer}.{proj}"
            d = _dense_module(lib[x], lib[y], module)
            per_type.setdefault(proj, []).append(d)
            m = result[(x, y)][module]
            scale = (d["nx"] * d["ny"]) ** 0.5
            worst_rel = max(worst_rel, abs(m.inner - d["inner"]) / scale)
            worst_cos = max(worst_cos, abs(m.cosine - d["inner"] / scale))
            sample.append(f"({x},{y}) {module}")
        print(f"dense pair {p} (layer {layer}) done", flush=True)

    def mean(proj: str, key: str) -> float:
        return sum(d[key] for d in per_type[proj]) / len(per_type[proj])

    # Per pair, as the baseline: materialise both deltas of every module (and
    # generate their factors, as the library path does), then the products.
    per_pair_layer = sum(
        mean(proj, "gen_s") + mean(proj, "mat_s") + mean(proj, "dot_s") for proj in PROJ
    )
    dense_all = per_pair_layer * args.layers * n_pairs
    per_pair_layer_cpu = sum(
        mean(proj, "gen_cpu") + mean(proj, "mat_cpu") + mean(proj, "dot_cpu") for proj in PROJ
    )
    dense_all_cpu = per_pair_layer_cpu * args.layers * n_pairs
    # A lower bound no small machine can run: every delta materialised once and kept
    # (100 x 235 MB for one gate_proj), then one dense product per pair and module.
    # (100 x 235 MB for one gate_proj). The sample timed two deltas (generation and
    # materialisation) and three products (inner, two norms) per module.
    amortised = args.layers * sum(
        len(lib) * (mean(proj, "gen_s") + mean(proj, "mat_s")) / 2
        + (n_pairs + len(lib)) * mean(proj, "dot_s") / 3
        for proj in PROJ
    )
    doc.update(
        {
            "dense_sample": f"{args.dense_pairs} pairs x 7 modules (one layer each)",
            "dense_s_per_pair_and_layer": round(per_pair_layer, 2),
            "dense_all_pairs_extrapolated_s": round(dense_all),
            "speedup_vs_dense_per_pair": round(dense_all / total_s, 1),
            "dense_cpu_s_per_pair_and_layer": round(per_pair_layer_cpu, 2),
            "dense_all_pairs_extrapolated_cpu_s": round(dense_all_cpu),
            "speedup_vs_dense_per_pair_cpu": round(dense_all_cpu / total_cpu, 1),
            "dense_amortised_lower_bound_s": round(amortised),
            "speedup_vs_dense_amortised": round(amortised / total_s, 1),
            "max_abs_cosine_error_vs_dense": worst_cos,
            "max_inner_error_rel_to_norms_vs_dense": worst_rel,
            "modules_checked_vs_dense": len(sample),
            "peak_rss_mib_overall": round(_maxrss_mib()),
            "load_avg_before": [round(v, 2) for v in load_before],
            "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        }
    )
    return doc


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


BASE = "meta-llama/Llama-3.1-8B"
REFS = "lib/in-0:1,lib/in-1:1,lib/in-2:1"
# What a user runs (the CLI, local mode: the service embedded, compose jobs run by --wait).
COMMANDS: dict[str, list[str]] = {
    "floor: lorareg show (start-up, one catalog read)": ["show", "lib/in-0:1"],
    "compose --method cat": (
        ["compose", REFS, "--weights", "1,0.6,1", "--method", "cat", "--output", "lib/cat"]
    ),
    "compose --method svd --rank 16": (
        ["compose", REFS, "--weights", "1,0.6,1", "--method", "svd", "--rank", "16"]
        + ["--output", "lib/svd"]
    ),
    "compress --rank 8": ["compress", "lib/in-0:1", "--rank", "8"],
    "compress --energy 0.99": ["compress", "lib/in-0:1", "--energy", "0.99"],
}
FLOOR_READ = (
    "import torch, sys\nfor f in sys.argv[1:]:\n"
    "    open(f + '/adapter_model.safetensors', 'rb').read()"
)


def run_child(argv: list[str], env: dict[str, str], out: Path) -> tuple[float, float]:
    """Wall time and peak RSS (MiB, ``os.wait4``) of one child; its stdout goes to ``out``."""
    t0 = time.perf_counter()
    with open(out, "wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=fh)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"child failed ({status}): {' '.join(argv)}; output in {out}")
    return wall, usage.ru_maxrss / 1024


def bench_compose(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work_dir)
    folders = write_adapters(work / f"inputs-{args.compose_layers}", args.compose_layers)
    home = work / "registry"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORAREG_")}
    env.update({"LORAREG_HOME": str(home), "PYTHONPATH": str(ROOT)})
    lorareg = [sys.executable, "-m", "cli.main"]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    for i, folder in enumerate(folders):
        run_child([*lorareg, "push", str(folder), f"lib/in-{i}", "--base", BASE], env, home / "p")
    rows: dict[str, Any] = {
        "layers": args.compose_layers,
        "input_bytes_each": (folders[0] / "adapter_model.safetensors").stat().st_size,
        "setup_push_3_s": round(time.perf_counter() - t0, 1),
    }
    wall, rss = run_child(
        [sys.executable, "-c", FLOOR_READ, *map(str, folders)], env, home / "floor.out"
    )
    rows["floor: import torch, read the 3 adapters"] = {
        "wall_s": round(wall, 2),
        "peak_rss_mib": round(rss),
    }
    for name, argv in COMMANDS.items():
        extra = ["--wait"] if argv[0] == "compose" else []
        out = home / f"{len(rows)}.json"
        wall, rss = run_child([*lorareg, *argv, *extra, "--json"], env, out)
        row: dict[str, Any] = {"wall_s": round(wall, 2), "peak_rss_mib": round(rss)}
        doc = json.loads(out.read_text())
        result = doc.get("job", {}).get("result") or doc
        for key in ("max_rank", "max_relative_error"):
            if key in result:
                row[key] = result[key]
        rows[name] = row
        print(name, row, flush=True)
    floor = rows["floor: import torch, read the 3 adapters"]
    for r in rows.values():
        if isinstance(r, dict):
            r["x_floor_time"] = round(r["wall_s"] / floor["wall_s"], 2)
    rows["load_avg_before"] = [round(v, 2) for v in load_before]
    rows["load_avg_after"] = [round(v, 2) for v in os.getloadavg()]
    if args.compose_layers != args.layers:
        scale = args.layers / args.compose_layers
        rows["note"] = (
            f"run on {args.compose_layers} of {args.layers} layers; the work is per module,"
            f" so the full shape is about {scale:g}x the time above the floor"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--adapters", type=int, default=100)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--dense-pairs", type=int, default=2)
    ap.add_argument("--rows-layers", type=int, default=1)
    ap.add_argument("--compose-layers", type=int, default=32)
    ap.add_argument("--skip-generation-floor", action="store_true")
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

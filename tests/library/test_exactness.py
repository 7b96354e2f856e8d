"""Interference, analysis and compression against dense torch computations on small models
(LLaMA- and GPT-2-shaped, with rsLoRA and rank/alpha patterns): the factor algebra must give
the numbers the d_out x d_in deltas give."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from registry.formats import lowrank
from registry.library.analyze import analyze
from registry.library.factors import (
    AdapterFactors,
    ModuleFactors,
    ModuleShape,
    effective_rank,
    inner,
    load_factors,
)
from registry.library.folders import compress_folder
from registry.library.interference import PairSummary, Strategy, all_pairs, pairwise
from tests.factories import make_adapter, make_gpt2, make_llama
from tests.library.peft_oracle import peft_deltas

LLAMA = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exact")
    return {
        "a": make_adapter(root / "a", seed=1, r=8, target_modules=LLAMA),
        "b": make_adapter(
            root / "b",
            seed=2,
            r=4,
            use_rslora=True,
            rank_pattern={"v_proj": 2},
            alpha_pattern={"o_proj": 2},
            target_modules=LLAMA,
        ),
        "c": make_adapter(root / "c", seed=3, r=6, target_modules=["q_proj", "down_proj"]),
        "gpt2": make_adapter(
            root / "gpt2",
            base=make_gpt2(),
            seed=4,
            r=4,
            target_modules=["c_attn", "c_fc", "c_proj"],
            fan_in_fan_out=True,
        ),
    }


def _open(folder: Path) -> AdapterFactors:
    return load_factors(folder)


@pytest.mark.parametrize("strategy", ["auto", "gram", "rows"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_interference_equals_dense_inner_products(
    folders: dict[str, Path], dtype: torch.dtype, strategy: Strategy
) -> None:
    names = ["a", "b", "c"]
    dense = {n: peft_deltas(make_llama, folders[n]) for n in names}
    sources = [_open(folders[n]) for n in names]
    try:
        result = pairwise(sources, dtype=dtype, strategy=strategy)
    finally:
        for s in sources:
            s.close()
    # PEFT's deltas (the reference) are fp32 products: relative 1e-6 is their own rounding.
    tol = 1e-6 if dtype == torch.float64 else 1e-5
    assert set(result) == {(0, 1), (0, 2), (1, 2)}
    for (i, j), modules in result.items():
        x, y = dense[names[i]], dense[names[j]]
        assert set(modules) == set(x) & set(y)
        for k, m in modules.items():
            ip = float((x[k] * y[k]).sum())
            assert abs(m.inner - ip) <= tol * float(x[k].norm() * y[k].norm())
            cos = ip / float(x[k].norm() * y[k].norm())
            assert abs(m.cosine - cos) <= tol * 10
            assert abs(m.overlap_y - ip / float(y[k].norm() ** 2)) <= tol * 10 * abs(m.overlap_y)
        whole = PairSummary.of(modules)
        shared = sorted(modules)
        vx = torch.cat([x[k].flatten() for k in shared])
        vy = torch.cat([y[k].flatten() for k in shared])
        assert abs(whole.cosine - float(vx @ vy / (vx.norm() * vy.norm()))) <= tol * 10


@pytest.mark.parametrize("name,make", [("b", make_llama), ("gpt2", make_gpt2)])
def test_analysis_equals_dense_svd(folders: dict[str, Path], name: str, make: object) -> None:
    dense = peft_deltas(make, folders[name])  # type: ignore[arg-type]
    src = _open(folders[name])
    try:
        result = analyze(src, stored_bytes=1, base_norms={k: 2.0 for k in dense})
    finally:
        src.close()
    assert {m.module for m in result.modules} == set(dense)
    for m in result.modules:
        s = torch.linalg.svdvals(dense[m.module])
        assert torch.allclose(
            torch.tensor(m.singular_values, dtype=s.dtype), s[: m.rank], atol=1e-7
        )
        tail = s[m.rank :]
        assert tail.numel() == 0 or float(tail.max()) < 1e-6 * float(s[0])  # rank-bounded
        energy = torch.cumsum(s**2, 0) / (s**2).sum()
        assert m.rank_99 == int((energy < 0.99 - 1e-12).sum()) + 1
        assert m.rank_999 == effective_rank(s, 0.999)
        assert m.relative_update == pytest.approx(float(dense[m.module].norm()) / 2.0)


@pytest.mark.parametrize("rank,energy", [(2, None), (None, 0.95)])
@pytest.mark.parametrize("name,make", [("b", make_llama), ("gpt2", make_gpt2)])
def test_compression_is_the_dense_truncation(
    folders: dict[str, Path],
    tmp_path: Path,
    name: str,
    make: Callable[[], Any],
    rank: int | None,
    energy: float | None,
) -> None:
    before = peft_deltas(make, folders[name])
    result = compress_folder(folders[name], tmp_path / "out", rank=rank, energy=energy)
    after = peft_deltas(make, tmp_path / "out")  # PEFT reads our config
    for k, d in before.items():
        keep = result.ranks[k]
        u, s, vh = torch.linalg.svd(d, full_matrices=False)
        best = (u[:, :keep] * s[:keep]) @ vh[:keep]
        assert torch.allclose(after[k], best, atol=1e-6), k
        assert result.errors[k] == pytest.approx(float((d - best).norm() / d.norm()), abs=1e-6)
        if energy is not None:
            assert keep == effective_rank(s, energy)
            assert result.errors[k] <= (1 - energy) ** 0.5 + 1e-9
        else:
            assert keep == min(rank or 0, result.ranks_before[k])


class _Synthetic:
    """A FactorSource generated from seeds (ranks and modules differ between adapters)."""

    def __init__(self, index: int, shapes: dict[str, ModuleShape]) -> None:
        self.label = f"syn-{index}"
        self.index = index
        self.shapes = shapes

    def factors(self, module: str, *, dtype: torch.dtype = torch.float32) -> ModuleFactors:
        sh = self.shapes[module]
        g = torch.Generator().manual_seed(self.index * 1000 + sorted(self.shapes).index(module))
        a = torch.randn(sh.rank, sh.in_features, generator=g, dtype=torch.float64)
        b = torch.randn(sh.out_features, sh.rank, generator=g, dtype=torch.float64)
        return ModuleFactors(module, a.to(dtype), b.to(dtype), 0.5 + self.index / 10)


def _library(n: int) -> list[_Synthetic]:
    out = []
    for i in range(n):
        shapes = {"q": ModuleShape(2 + i % 5, 48, 40), "mlp": ModuleShape(1 + i % 3, 40, 96)}
        if i % 4 == 3:
            del shapes["mlp"]  # not every adapter changes every module
        out.append(_Synthetic(i, shapes))
    return out


@pytest.mark.parametrize("stack", [lowrank.MAX_STACKED_RANK, 7])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_and_per_pair_paths_agree(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, stack: int
) -> None:
    """Every pair of a 13-adapter library through the Gram products (also split into blocks
    of at most 7 stacked ranks), through block rows, and one product per pair: the same
    inner products and norms to 1e-6 of the norms' product (fp32; 1e-12 in fp64)."""
    monkeypatch.setattr(lowrank, "MAX_STACKED_RANK", stack)
    lib = _library(13)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    gram = pairwise(lib, dtype=dtype, strategy="gram")
    rows = pairwise(lib, dtype=dtype, strategy="rows")
    assert set(gram) == set(rows) == set(all_pairs(13))
    for (i, j), modules in gram.items():
        assert set(modules) == set(lib[i].shapes) & set(lib[j].shapes) == set(rows[(i, j)])
        for k, m in modules.items():
            x, y = lib[i].factors(k, dtype=dtype), lib[j].factors(k, dtype=dtype)
            scale = (m.norm_sq_x * m.norm_sq_y) ** 0.5
            for path in (m, rows[(i, j)][k]):
                assert abs(path.inner - inner(x, y)) <= tol * scale
                assert abs(path.norm_sq_x - inner(x, x)) <= tol * m.norm_sq_x
                assert abs(path.norm_sq_y - inner(y, y)) <= tol * m.norm_sq_y
            # The dense d_out x d_in computation agrees too.
            dense = float((x.dense().double() * y.dense().double()).sum())
            assert abs(m.inner - dense) <= tol * scale


def test_a_new_version_is_one_block_row() -> None:
    """The pairs of one adapter against the others take the row path and equal the same
    pairs of the whole library's Gram."""
    lib = _library(9)
    row = [(k, 8) for k in range(8)]
    one = pairwise(lib, row)
    everything = pairwise(lib)
    assert set(one) == set(row)
    for p, modules in one.items():
        for k, m in modules.items():
            ref = everything[p][k]
            assert abs(m.inner - ref.inner) <= 1e-6 * (ref.norm_sq_x * ref.norm_sq_y) ** 0.5

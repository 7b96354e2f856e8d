"""Compose against PEFT's add_weighted_adapter: cat and linear within fp32 rounding, svd within
PEFT's own truncation error; on LLaMA and GPT-2 (Conv1D, fan_in_fan_out) shaped models, with
rsLoRA and rank/alpha patterns. Our output is loaded back by PEFT, so its config (r, alpha,
rank_pattern, alpha_pattern) is checked too, not only its factors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from registry.library.folders import compose_folders
from tests.factories import make_adapter, make_gpt2, make_llama
from tests.library.peft_oracle import peft_deltas, peft_weighted

LLAMA = dict(target_modules=["q_proj", "v_proj", "gate_proj", "down_proj"])
CASES: dict[str, tuple[Callable[[], Any], list[dict[str, Any]]]] = {
    "llama": (make_llama, [dict(r=4, lora_alpha=8, **LLAMA), dict(r=4, lora_alpha=16, **LLAMA)]),
    "llama-rslora": (
        make_llama,
        [dict(r=4, lora_alpha=8, use_rslora=True, **LLAMA), dict(r=4, lora_alpha=4, **LLAMA)],
    ),
    "llama-patterns": (
        make_llama,
        [
            dict(
                r=4, lora_alpha=8, rank_pattern={"v_proj": 2}, alpha_pattern={"q_proj": 3}, **LLAMA
            ),
            dict(r=4, lora_alpha=8, rank_pattern={"down_proj": 3}, **LLAMA),
        ],
    ),
    "gpt2-fan-in-fan-out": (
        make_gpt2,
        [
            dict(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True),
            dict(r=4, lora_alpha=6, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True),
        ],
    ),
}
WEIGHTS = [0.7, -1.3]


def _pair(tmp: Path, case: str) -> tuple[Callable[[], Any], list[Path]]:
    make, kws = CASES[case]
    return make, [
        make_adapter(tmp / f"in{i}", base=make(), seed=10 + i, **kw) for i, kw in enumerate(kws)
    ]


def _weighted_sum(make: Callable[[], Any], folders: list[Path]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for w, f in zip(WEIGHTS, folders, strict=True):
        for k, d in peft_deltas(make, f).items():
            out[k] = out.get(k, torch.zeros_like(d)) + w * d
    return out


def _assert_close(ours: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], tol: float) -> None:
    assert set(ours) == set(ref)
    for k in ref:
        err = float((ours[k] - ref[k]).abs().max())
        assert err <= tol * max(1.0, float(ref[k].abs().max())), (k, err)


@pytest.mark.parametrize("case", sorted(CASES))
def test_cat_is_peft_cat_and_the_exact_weighted_sum(case: str, tmp_path: Path) -> None:
    make, folders = _pair(tmp_path, case)
    compose_folders(folders, tmp_path / "out", weights=WEIGHTS, method="cat")
    ours = peft_deltas(make, tmp_path / "out")
    _assert_close(ours, peft_weighted(make, folders, WEIGHTS, "cat"), 1e-5)
    _assert_close(ours, _weighted_sum(make, folders), 1e-5)


@pytest.mark.parametrize("case", ["llama", "llama-rslora", "gpt2-fan-in-fan-out"])
def test_linear_is_peft_linear(case: str, tmp_path: Path) -> None:
    make, folders = _pair(tmp_path, case)
    compose_folders(folders, tmp_path / "out", weights=WEIGHTS, method="linear")
    _assert_close(
        peft_deltas(make, tmp_path / "out"), peft_weighted(make, folders, WEIGHTS, "linear"), 1e-5
    )


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("rank", [None, 3])
def test_svd_within_peft_own_error(case: str, rank: int | None, tmp_path: Path) -> None:
    make, folders = _pair(tmp_path, case)
    result = compose_folders(folders, tmp_path / "out", weights=WEIGHTS, method="svd", rank=rank)
    ours = peft_deltas(make, tmp_path / "out")
    theirs = peft_weighted(make, folders, WEIGHTS, "svd", svd_rank=rank)
    exact = _weighted_sum(make, folders)
    for k, d in exact.items():
        norm = float(d.norm())
        peft_err = float((theirs[k] - d).norm())
        our_err = float((ours[k] - d).norm())
        # Eckart-Young: both are the best rank-R approximation; ours is never worse.
        assert our_err <= peft_err + 1e-5 * norm, k
        assert float((ours[k] - theirs[k]).norm()) <= peft_err + 1e-5 * norm, k
        # The error we report is the error we made.
        assert abs(result.errors[k] - our_err / norm) <= 1e-5, k


def test_svd_at_full_rank_is_exact(tmp_path: Path) -> None:
    make, folders = _pair(tmp_path, "llama-patterns")
    result = compose_folders(folders, tmp_path / "out", weights=WEIGHTS, method="svd", rank=8)
    _assert_close(peft_deltas(make, tmp_path / "out"), _weighted_sum(make, folders), 1e-5)
    assert result.max_error <= 1e-6

"""The verification reads a linear layer's sampled rows once and checks them a block of
inputs at a time (fp64 of whole rows took tens of MB): any block size gives the same verdict
and the same errors, DoRA's norms included, and still catches wrong math."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import registry.merge.verify as verify
from registry.errors import ChecksumMismatch
from registry.merge.delta import LowRank
from tests.factories import make_adapter, make_llama
from tests.merge.conftest import merge


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
def test_any_block_of_inputs_gives_the_same_check(
    dora: bool, llama_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = make_adapter(tmp_path / "a", base=make_llama(), use_dora=dora)
    whole = merge(llama_base, [adapter], tmp_path / "whole", verify_modules=32).verification
    monkeypatch.setattr(verify, "_BLOCK_ELEMS", 1)  # one input column per block
    blocks = merge(llama_base, [adapter], tmp_path / "blocks", verify_modules=32).verification
    assert blocks.passed and whole.passed
    assert blocks.modules_checked == whole.modules_checked > 1
    assert blocks.worst_module == whole.worst_module
    assert blocks.max_abs_error == pytest.approx(whole.max_abs_error, rel=1e-6, abs=1e-12)
    assert blocks.max_error_ratio == pytest.approx(whole.max_error_ratio, rel=1e-6, abs=1e-9)


def test_wrong_math_fails_in_blocks_too(
    llama_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = make_adapter(tmp_path / "a", base=make_llama())
    original = LowRank.factors

    def off_by_a_bit(
        self: LowRank, start: int, stop: int, transposed: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        left, right = original(self, start, stop, transposed)
        return left * 1.01, right

    monkeypatch.setattr(LowRank, "factors", off_by_a_bit)
    monkeypatch.setattr(verify, "_BLOCK_ELEMS", 7)
    with pytest.raises(ChecksumMismatch, match="verification failed"):
        merge(llama_base, [adapter], tmp_path / "out")

"""Streaming behaviour: chunking, progress, dtype casts, verification, tied bases."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from registry.errors import ChecksumMismatch, StorageUnavailable
from registry.merge import MergeProgress
from registry.merge.delta import LowRank
from tests.factories import make_adapter, make_gpt2, make_llama, save_base
from tests.merge.conftest import load_output, merge, peft_merged


@pytest.mark.parametrize("model", ["llama", "gpt2"])
def test_tiny_chunks_give_identical_bytes(
    model: str, llama_base: Path, gpt2_base: Path, tmp_path: Path
) -> None:
    # One row per chunk: DoRA's row norms and (for Conv1D) its column pre-pass span chunks.
    factory: Callable[..., Any]
    kw: dict[str, Any] = {}
    if model == "llama":
        base, factory, targets = llama_base, make_llama, ["q_proj", "embed_tokens", "down_proj"]
    else:
        base, factory, targets = gpt2_base, make_gpt2, ["c_attn", "c_proj", "wte"]
        kw = {"fan_in_fan_out": True}
    adapter = make_adapter(
        tmp_path / "a", base=factory(), target_modules=targets, use_dora=True, **kw
    )
    whole = load_output(merge(base, [adapter], tmp_path / "whole"))
    rows = merge(base, [adapter], tmp_path / "rows", chunk_bytes=4)
    ours = load_output(rows)
    for name, tensor in whole.items():
        torch.testing.assert_close(ours[name], tensor, atol=2e-7, rtol=0)
    reference = peft_merged(factory(), adapter)
    assert max((reference[k] - v).abs().max().item() for k, v in ours.items()) <= 1e-5


def test_progress_reaches_the_total(llama_base: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "a", base=make_llama())
    seen: list[MergeProgress] = []
    result = merge(llama_base, [adapter], tmp_path / "out", progress=seen.append)
    assert seen, "progress was never reported"
    done = [p.bytes_done for p in seen]
    assert done == sorted(done)
    last = seen[-1]
    assert last.fraction == 1.0 and last.shards_done == last.shards_total == len(result.shards)
    assert last.shard in result.shards and last.eta_s == 0.0


def test_dtype_cast_writes_bf16_model(llama_base: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    adapter = make_adapter(tmp_path / "a", base=make_llama(), target_modules=["q_proj", "up_proj"])
    result = merge(llama_base, [adapter], tmp_path / "out", dtype="bfloat16")
    ours = load_output(result)
    reference = peft_merged(make_llama(), adapter)
    for name, tensor in ours.items():
        assert tensor.dtype == torch.bfloat16
        assert torch.equal(tensor, reference[name].to(torch.bfloat16)), name
    config = json.loads((result.out_dir / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    index = json.loads((result.out_dir / "model.safetensors.index.json").read_text())
    base_index = json.loads((llama_base / "model.safetensors.index.json").read_text())
    assert index["metadata"]["total_size"] * 2 == base_index["metadata"]["total_size"]
    model = AutoModelForCausalLM.from_pretrained(result.out_dir)
    assert next(model.parameters()).dtype == torch.bfloat16


def test_wrong_math_fails_verification_and_leaves_nothing(
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
    with pytest.raises(ChecksumMismatch, match="verification failed"):
        merge(llama_base, [adapter], tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_disk_full_fails_cleanly(
    llama_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = make_adapter(tmp_path / "a", base=make_llama())
    real_pwrite = os.pwrite
    calls = []

    def pwrite_until_full(fd: int, data: Any, offset: int) -> int:
        calls.append(1)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite_until_full)
    with pytest.raises(StorageUnavailable, match="no space left"):
        merge(llama_base, [adapter], tmp_path / "out", chunk_bytes=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]

    def no_room(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", real_pwrite)
    monkeypatch.setattr(os, "posix_fallocate", no_room)
    with pytest.raises(StorageUnavailable, match="no space left"):
        merge(llama_base, [adapter], tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_unaligned_base_file_is_read_correctly(tmp_path: Path) -> None:
    # Some writers do not pad the header to 8 bytes, so tensor data can start at odd offsets.
    from safetensors.torch import load_file

    base = save_base(make_llama(), tmp_path / "base")
    raw = (base / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = raw[8 : 8 + n].rstrip(b" ") + b" "
    header += b" " * (1 - len(header) % 2)  # an odd length
    (base / "model.safetensors").write_bytes(
        len(header).to_bytes(8, "little") + header + raw[8 + n :]
    )
    assert load_file(base / "model.safetensors")  # still a valid file
    adapter = make_adapter(tmp_path / "a", base=make_llama())
    ours = load_output(merge(base, [adapter], tmp_path / "out"))
    assert (
        max((peft_merged(make_llama(), adapter)[k] - v).abs().max().item() for k, v in ours.items())
        <= 1e-5
    )

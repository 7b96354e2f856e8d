"""Parity with PEFT's merge_and_unload on tiny random LLaMA and GPT-2 models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.factories import make_adapter, make_gpt2, make_llama, save_base
from tests.merge.conftest import load_output, max_abs_diff, merge, peft_merged

LLAMA_CASES: dict[str, dict[str, Any]] = {
    "plain": dict(target_modules=["q_proj", "v_proj"]),
    "rslora": dict(target_modules=["q_proj", "k_proj", "o_proj", "gate_proj"], use_rslora=True),
    "rank-alpha-patterns": dict(
        target_modules=["q_proj", "v_proj", "down_proj"],
        rank_pattern={"v_proj": 2, "layers.1.self_attn.q_proj": 6},
        alpha_pattern={"down_proj": 3, "model.layers.0.self_attn.q_proj": 20},
    ),
    "dora": dict(target_modules=["q_proj", "v_proj", "up_proj"], use_dora=True),
    "embedding": dict(target_modules=["q_proj", "embed_tokens"]),
    "embedding-dora": dict(target_modules=["embed_tokens", "o_proj"], use_dora=True),
    "modules-to-save": dict(target_modules=["q_proj"], modules_to_save=["lm_head"]),
}
GPT2_CASES: dict[str, dict[str, Any]] = {
    "conv1d-fan-in-fan-out": dict(target_modules=["c_attn", "c_fc", "c_proj"], fan_in_fan_out=True),
    "conv1d-dora": dict(target_modules=["c_attn", "c_proj"], fan_in_fan_out=True, use_dora=True),
    "wte": dict(target_modules=["c_attn", "wte"], fan_in_fan_out=True),
}


@pytest.mark.parametrize("case", list(LLAMA_CASES))
def test_llama_fp32_matches_peft(case: str, llama_base: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "adapter", base=make_llama(), **LLAMA_CASES[case])
    result = merge(llama_base, [adapter], tmp_path / "out")
    assert max_abs_diff(peft_merged(make_llama(), adapter), load_output(result)) <= 1e-5
    assert result.verification.passed and result.verification.modules_checked > 0


@pytest.mark.parametrize("case", list(GPT2_CASES))
def test_gpt2_conv1d_matches_peft(case: str, gpt2_base: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "adapter", base=make_gpt2(), **GPT2_CASES[case])
    result = merge(gpt2_base, [adapter], tmp_path / "out")
    assert max_abs_diff(peft_merged(make_gpt2(), adapter), load_output(result)) <= 1e-5
    assert result.verification.passed


@pytest.mark.parametrize("case", ["dora", "embedding-dora", "modules-to-save"])
def test_bf16_base_within_bf16_rounding(case: str, tmp_path: Path) -> None:
    base = save_base(make_llama().to(torch.bfloat16), tmp_path / "base")
    adapter = make_adapter(tmp_path / "adapter", base=make_llama(), **LLAMA_CASES[case])
    result = merge(base, [adapter], tmp_path / "out")
    ours = load_output(result)
    ref = peft_merged(make_llama().to(torch.bfloat16), adapter)
    eps = torch.finfo(torch.bfloat16).eps
    for name, tensor in ours.items():
        assert tensor.dtype == torch.bfloat16, name
        diff = (ref[name].float() - tensor.float()).abs()
        assert (diff <= eps * ref[name].float().abs() + 1e-30).all(), name


def test_output_loads_with_transformers_and_gives_peft_logits(
    llama_base: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = make_adapter(
        tmp_path / "adapter",
        base=make_llama(),
        target_modules=["q_proj", "v_proj", "gate_proj", "embed_tokens"],
        use_rslora=True,
    )
    result = merge(llama_base, [adapter], tmp_path / "out")
    ids = torch.tensor([[1, 5, 9, 33, 70, 127]])
    ours = AutoModelForCausalLM.from_pretrained(result.out_dir).eval()
    reference = PeftModel.from_pretrained(make_llama(), adapter).merge_and_unload().eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, reference(ids).logits, atol=1e-5, rtol=1e-5)


def test_output_keeps_shards_index_and_configs(llama_base: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "adapter", base=make_llama())
    result = merge(llama_base, [adapter], tmp_path / "out")
    base_files = sorted(p.name for p in llama_base.iterdir())
    assert sorted(p.name for p in result.out_dir.iterdir()) == base_files == result.files
    assert len(result.shards) > 1
    index_in = json.loads((llama_base / "model.safetensors.index.json").read_text())
    index_out = json.loads((result.out_dir / "model.safetensors.index.json").read_text())
    assert index_out == index_in
    for shard in result.shards:
        # Same header bytes: names, dtypes, shapes, offsets and metadata all carried over.
        raw_in, raw_out = (llama_base / shard).read_bytes(), (result.out_dir / shard).read_bytes()
        n = int.from_bytes(raw_in[:8], "little")
        assert raw_out[: 8 + n] == raw_in[: 8 + n] and len(raw_out) == len(raw_in)
    assert (result.out_dir / "config.json").read_text() == (llama_base / "config.json").read_text()
    assert result.tensors_changed == 4 and result.bytes_copied > 0


def test_gpt2_hub_layout_without_transformer_prefix(tmp_path: Path) -> None:
    # Hub GPT-2 checkpoints name tensors "h.0.attn..."; adapters say "transformer.h.0...".
    from safetensors.torch import load_file, save_file

    base = save_base(make_gpt2(), tmp_path / "base")
    state = load_file(base / "model.safetensors")
    save_file(
        {k.removeprefix("transformer."): v for k, v in state.items()},
        base / "model.safetensors",
        metadata={"format": "pt"},
    )
    adapter = make_adapter(
        tmp_path / "adapter", base=make_gpt2(), target_modules=["c_attn"], fan_in_fan_out=True
    )
    ours = load_output(merge(base, [adapter], tmp_path / "out"))
    reference = peft_merged(make_gpt2(), adapter)
    assert "h.0.attn.c_attn.weight" in ours
    assert (
        max_abs_diff(
            reference, {f"transformer.{k}": v for k, v in ours.items() if k != "lm_head.weight"}
        )
        <= 1e-5
    )

"""Issue 13, cases 1 and 2: merges that were bit-exact with PEFT's merge_and_unload yet not
the model the adapter is. Judged by the outside oracle: logits of the unmerged PEFT model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import registry.merge.plan as plan_module
from registry.errors import ChecksumMismatch
from tests.factories import make_adapter, make_gpt2, make_llama, save_base
from tests.merge.conftest import (
    load_output,
    merge,
    output_logits,
    peft_merged,
    unmerged_logits,
)

WTE, HEAD = "transformer.wte.weight", "lm_head.weight"


def _fan_false(folder: Path) -> Path:
    doc = json.loads((folder / "adapter_config.json").read_text())
    doc["fan_in_fan_out"] = False
    (folder / "adapter_config.json").write_text(json.dumps(doc))
    return folder


@pytest.mark.parametrize(
    "targets",
    [["c_attn", "c_proj", "lm_head"], ["c_attn", "c_proj", "c_fc"]],
    ids=["mixed", "conv"],
)
def test_square_conv1d_follows_the_layer_type_not_the_config(
    targets: list[str], gpt2_base: Path, tmp_path: Path
) -> None:
    # PEFT writes fan_in_fan_out=false when targets mix Conv1D and Linear (lm_head), and
    # loads the adapter right anyway; attn.c_proj is square, so its shape cannot tell.
    adapter = _fan_false(make_adapter(tmp_path / "a", base=make_gpt2(), target_modules=targets))
    result = merge(gpt2_base, [adapter], tmp_path / "out")

    ours, ref = load_output(result), peft_merged(make_gpt2(), adapter)
    square = "transformer.h.0.attn.c_proj.weight"
    assert ours[square].shape == (32, 32)
    torch.testing.assert_close(ours[square], ref[square], rtol=0, atol=1e-6)
    torch.testing.assert_close(
        output_logits(result.out_dir), unmerged_logits(make_gpt2(), adapter), rtol=1e-4, atol=1e-4
    )
    assert result.verification.passed


def test_verification_catches_a_merge_that_transposes_a_square_layer(
    gpt2_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = _fan_false(make_adapter(tmp_path / "a", base=make_gpt2(), target_modules=["c_proj"]))

    def from_the_config(plan: Any, lora: Any, adapter: Any, kind: Any) -> bool:
        # The old rule: a square layer's orientation taken from fan_in_fan_out alone.
        if plan.info.shape[0] == plan.info.shape[1]:
            return bool(adapter.config.fan_in_fan_out)
        return plan.info.shape == (lora.in_features, lora.out_features)

    monkeypatch.setattr(plan_module, "_orientation", from_the_config)
    with pytest.raises(ChecksumMismatch, match=r"verification failed: .*attn\.c_proj"):
        merge(gpt2_base, [adapter], tmp_path / "out", verify_modules=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_verification_asks_transformers_not_lorareg_s_own_table(
    gpt2_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A table that forgot GPT-2 is Conv1D: the merge transposes the square c_proj, and the
    # verification, which takes the layer type from transformers' own modules (through
    # layer_types' table, itself checked against them), refuses it.
    import registry.compat.architectures as architectures

    adapter = make_adapter(tmp_path / "a", base=make_gpt2(), target_modules=["attn.c_proj"])
    adapter = _fan_false(adapter)
    monkeypatch.setitem(architectures.CONV1D_MODULES, "gpt2", frozenset({"c_fc"}))
    with pytest.raises(ChecksumMismatch, match=r"verification failed: .*attn\.c_proj"):
        merge(gpt2_base, [adapter], tmp_path / "out", verify_modules=32)


@pytest.mark.parametrize(
    "targets", [["embed_tokens", "q_proj"], ["lm_head"], ["embed_tokens", "lm_head"]]
)
def test_tied_llama_is_untied_so_the_merge_behaves_as_the_adapter(
    targets: list[str], tmp_path: Path
) -> None:
    base = save_base(make_llama(tie_word_embeddings=True), tmp_path / "base")
    adapter = make_adapter(
        tmp_path / "a", base=make_llama(tie_word_embeddings=True), target_modules=targets
    )
    _train_embedding_a(adapter)
    result = merge(base, [adapter], tmp_path / "out")

    config = json.loads((result.out_dir / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    ours = load_output(result)
    embed = load_file(base / "model.safetensors")["model.embed_tokens.weight"]
    assert HEAD in ours and not torch.equal(ours[HEAD], ours["model.embed_tokens.weight"])
    if "lm_head" not in targets:
        assert torch.equal(ours[HEAD], embed)  # the head keeps the base values
    torch.testing.assert_close(
        output_logits(result.out_dir),
        unmerged_logits(make_llama(tie_word_embeddings=True), adapter),
        rtol=1e-4,
        atol=1e-4,
    )


def test_gpt2_wte_lora_is_untied(gpt2_base: Path, tmp_path: Path) -> None:
    adapter = make_adapter(
        tmp_path / "a", base=make_gpt2(), target_modules=["c_attn", "wte"], fan_in_fan_out=True
    )
    _train_embedding_a(adapter)
    result = merge(gpt2_base, [adapter], tmp_path / "out")

    ours, ref = load_output(result), peft_merged(make_gpt2(), adapter)
    torch.testing.assert_close(ours[WTE], ref[WTE], rtol=0, atol=1e-6)
    assert torch.equal(ours[HEAD], load_file(gpt2_base / "model.safetensors")[WTE])
    torch.testing.assert_close(
        output_logits(result.out_dir), unmerged_logits(make_gpt2(), adapter), rtol=1e-4, atol=1e-4
    )


def test_sharded_tied_base_gets_lm_head_in_the_index(tmp_path: Path) -> None:
    base = save_base(make_llama(tie_word_embeddings=True), tmp_path / "base", max_shard_size="40KB")
    adapter = make_adapter(
        tmp_path / "a", base=make_llama(tie_word_embeddings=True), target_modules=["embed_tokens"]
    )
    _train_embedding_a(adapter)
    result = merge(base, [adapter], tmp_path / "out")

    index = json.loads((result.out_dir / "model.safetensors.index.json").read_text())
    embed_shard = index["weight_map"]["model.embed_tokens.weight"]
    assert index["weight_map"][HEAD] == embed_shard
    assert HEAD in load_file(result.out_dir / embed_shard)
    torch.testing.assert_close(
        output_logits(result.out_dir),
        unmerged_logits(make_llama(tie_word_embeddings=True), adapter),
        rtol=1e-4,
        atol=1e-4,
    )


def _train_embedding_a(folder: Path) -> None:
    """PEFT zero-initialises lora_embedding_A; give it values so the embedding changes."""
    from safetensors.torch import save_file

    path = folder / "adapter_model.safetensors"
    state = load_file(path)
    gen = torch.Generator().manual_seed(3)
    for key, value in state.items():
        if key.endswith("lora_embedding_A"):
            state[key] = torch.randn(value.shape, generator=gen) * 0.05
    save_file(state, path, metadata={"format": "pt"})

"""Shared fixtures for the merge engine: tiny bases saved once, PEFT's merge as the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from registry.merge import AdapterInput, MergeResult, merge_adapters
from tests.factories import make_gpt2, make_llama, save_base


@pytest.fixture(scope="session")
def llama_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny fp32 LLaMA saved in several shards with an index."""
    folder = tmp_path_factory.mktemp("llama-base")
    return save_base(make_llama(), folder, max_shard_size="40KB")


@pytest.fixture(scope="session")
def gpt2_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_base(make_gpt2(), tmp_path_factory.mktemp("gpt2-base"))


def peft_merged(model: Any, adapter: Path) -> dict[str, torch.Tensor]:
    """PEFT's own answer: load the adapter on ``model`` and merge_and_unload."""
    from peft import PeftModel

    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return {k: v.detach().clone() for k, v in merged.state_dict().items()}


def merge(base: Path, adapters: list[Path], out: Path, **kw: Any) -> MergeResult:
    kw.setdefault("device", "cpu")
    return merge_adapters(base, [AdapterInput(a) for a in adapters], out, **kw)


def load_output(result: MergeResult) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for shard in result.shards:
        state.update(load_file(result.out_dir / shard))
    return state


def max_abs_diff(ref: dict[str, torch.Tensor], ours: dict[str, torch.Tensor]) -> float:
    """Largest difference over every tensor of ours (which must all exist in ref)."""
    missing = set(ours) - set(ref)
    assert not missing, f"tensors PEFT does not have: {sorted(missing)}"
    return max((ref[k].double() - v.double()).abs().max().item() for k, v in ours.items())


IDS = torch.tensor([[1, 5, 9, 33, 70, 127, 0, 64]])


def unmerged_logits(model: Any, adapter: Path, ids: torch.Tensor = IDS) -> torch.Tensor:
    """The outside oracle: the adapter as PEFT runs it, not merged."""
    from peft import PeftModel

    with torch.no_grad():
        return PeftModel.from_pretrained(model, adapter).eval()(ids).logits.float()


def output_logits(out_dir: Path, ids: torch.Tensor = IDS) -> torch.Tensor:
    """The merged folder as transformers loads it (config.json decides ties and dtype)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out_dir).eval()
    with torch.no_grad():
        return model(ids).logits.float()

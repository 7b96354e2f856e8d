"""PEFT as the outside oracle: its add_weighted_adapter, and the deltas of any adapter folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def _layers(model: Any) -> dict[str, Any]:
    from peft.tuners.lora import LoraLayer

    prefix = "base_model.model."
    return {
        name[len(prefix) :]: mod
        for name, mod in model.named_modules()
        if isinstance(mod, LoraLayer) and name.startswith(prefix)
    }


def _delta(layer: Any, name: str) -> torch.Tensor:
    """PEFT's delta of adapter ``name`` in the (out, in) orientation of ``B @ A``."""
    d = layer.get_delta_weight(name).detach().double()
    return d.T if getattr(layer, "fan_in_fan_out", False) else d


def peft_deltas(make_model: Callable[[], Any], folder: Path) -> dict[str, torch.Tensor]:
    """Every module's delta as PEFT computes it after loading ``folder``: the config's scale,
    rank_pattern and alpha_pattern included."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(make_model(), folder, adapter_name="x")
    return {k: _delta(v, "x") for k, v in _layers(model).items() if "x" in v.lora_A}


def peft_weighted(
    make_model: Callable[[], Any],
    folders: list[Path],
    weights: list[float],
    how: str,
    **kw: Any,
) -> dict[str, torch.Tensor]:
    """PEFT's add_weighted_adapter result per module as ``B @ A`` of its new factors (its new
    config has lora_alpha == r; under rsLoRA it also copies use_rslora, whose extra sqrt(r)
    is a property of that config, not of the composed factors compared here)."""
    from peft import PeftModel

    names = [f"a{i}" for i in range(len(folders))]
    model = PeftModel.from_pretrained(make_model(), folders[0], adapter_name=names[0])
    for name, folder in zip(names[1:], folders[1:], strict=True):
        model.load_adapter(folder, adapter_name=name)
    model.add_weighted_adapter(names, weights, "combined", combination_type=how, **kw)
    out = {}
    for k, layer in _layers(model).items():
        if "combined" in layer.lora_A:
            a = layer.lora_A["combined"].weight.detach().double()
            b = layer.lora_B["combined"].weight.detach().double()
            out[k] = b @ a
    return out

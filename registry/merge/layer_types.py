"""The type of each base layer as transformers itself builds it, for the verification.

The merge decides a layer's orientation from lorareg's own table of Conv1D architectures
(``registry.compat.architectures``). The verification should not share that assumption, so
where transformers is installed (it is optional) it builds the architecture from config.json
on the meta device (no weights, no memory) and reads each sampled module's class: a
``Conv1D``, an ``nn.Linear`` or an ``nn.Embedding``. Where it is not installed, or cannot
build the architecture (remote code), the verification falls back to the table.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterable
from typing import Any

import torch


def layer_types(architecture: dict[str, Any], tensors: Iterable[str]) -> dict[str, str]:
    """``{tensor name: "linear" | "conv1d" | "embedding"}`` for the tensors transformers
    builds as one of those layers; empty when it cannot say."""
    mtype = architecture.get("model_type")
    if not isinstance(mtype, str) or importlib.util.find_spec("transformers") is None:
        return {}
    try:
        model = _skeleton(mtype, architecture)
    except Exception:  # an architecture transformers cannot build here: no second opinion
        return {}
    from transformers.pytorch_utils import Conv1D

    modules = dict(model.named_modules())
    found: dict[str, str] = {}
    for name in tensors:
        module = _lookup(modules, name.removesuffix(".weight"))
        if isinstance(module, Conv1D):
            found[name] = "conv1d"
        elif isinstance(module, torch.nn.Embedding):
            found[name] = "embedding"
        elif isinstance(module, torch.nn.Linear):
            found[name] = "linear"
    return found


def _skeleton(model_type: str, architecture: dict[str, Any]) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    fields = {k: v for k, v in architecture.items() if k != "model_type"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = AutoConfig.for_model(model_type, **fields)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config)


def _lookup(modules: dict[str, Any], name: str) -> Any:
    """The module called ``name``, allowing one model prefix more or less (hub GPT-2
    checkpoints drop ``transformer.``)."""
    if name in modules:
        return modules[name]
    hits = [m for n, m in modules.items() if n.endswith("." + name)]
    if len(hits) == 1:
        return hits[0]
    _, _, rest = name.partition(".")
    return modules.get(rest)

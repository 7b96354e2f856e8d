"""What a base model's config.json says about its modules: Conv1D or Linear, tied head.

PEFT decides a LoRA layer's orientation from the type of the module it wraps, not from the
adapter's config: a ``transformers.pytorch_utils.Conv1D`` stores its weight (in, out) and
gets ``fan_in_fan_out=True`` whatever the config says, an ``nn.Linear`` stores (out, in) and
gets ``False`` (``peft/tuners/lora/model.py`` ``dispatch_default``). A square layer's shape
cannot tell the two apart, so the module type comes from the architecture.

``CONV1D_MODULES`` lists, per ``model_type``, the module names transformers builds as
``Conv1D`` (read from transformers 5.x ``models/*/modeling_*.py``: ``= Conv1D(``); every
other module of every other architecture is an ``nn.Linear`` (GPTBigCode, despite its GPT-2
names, uses ``nn.Linear``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

ModuleKind = Literal["linear", "conv1d"]

_GPT2_LIKE = frozenset({"c_attn", "q_attn", "c_proj", "c_fc"})
CONV1D_MODULES: dict[str, frozenset[str]] = {
    "gpt2": _GPT2_LIKE,
    "openai-gpt": _GPT2_LIKE,
    "imagegpt": _GPT2_LIKE,
    "decision_transformer": _GPT2_LIKE,
}
# Input-embedding parameter names of the architectures lorareg knows, and the output head.
EMBEDDING_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight")
HEAD_WEIGHT = "lm_head.weight"


def model_type(architecture: Mapping[str, Any]) -> str | None:
    value = architecture.get("model_type")
    return value if isinstance(value, str) and value else None


def module_kind(architecture: Mapping[str, Any], module: str) -> ModuleKind | None:
    """The type of layer ``module`` is in a base with this config.json; None when the
    config names no model_type (nothing then says what a square layer is)."""
    mtype = model_type(architecture)
    if mtype is None:
        return None
    short = module.rsplit(".", 1)[-1]
    return "conv1d" if short in CONV1D_MODULES.get(mtype, frozenset()) else "linear"


def has_conv1d(architecture: Mapping[str, Any]) -> bool:
    return model_type(architecture) in CONV1D_MODULES


def ties_embeddings(architecture: Mapping[str, Any], tensor_names: Iterable[str]) -> bool:
    """Whether transformers ties ``lm_head`` to the input embedding when it loads this base.

    ``tie_word_embeddings`` decides (top level, or ``text_config`` for multimodal configs);
    when neither sets it, transformers' default (true) holds, which shows in a checkpoint
    that stores an embedding but no ``lm_head.weight``.
    """
    for doc in (architecture, architecture.get("text_config")):
        if isinstance(doc, Mapping) and isinstance(doc.get("tie_word_embeddings"), bool):
            return bool(doc["tie_word_embeddings"])
    names = list(tensor_names)
    has_head = any(n == HEAD_WEIGHT or n.endswith("." + HEAD_WEIGHT) for n in names)
    return embedding_weight(names) is not None and not has_head


def embedding_weight(tensor_names: Iterable[str]) -> str | None:
    """The input embedding's parameter name, when exactly one tensor looks like it."""
    names = list(tensor_names)
    for suffix in EMBEDDING_SUFFIXES:
        hits = [n for n in names if n == suffix or n.endswith("." + suffix)]
        if len(hits) == 1:
            return hits[0]
    return None


def is_embedding_module(module: str) -> bool:
    return any(f"{module}.weight".endswith(s) for s in EMBEDDING_SUFFIXES)


def is_head_module(module: str) -> bool:
    return module.rsplit(".", 1)[-1] == "lm_head"

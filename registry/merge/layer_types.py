"""The type of each base layer as transformers itself builds it, for the verification.

The merge decides a layer's orientation from lorareg's own table of Conv1D architectures
(``registry.compat.architectures``). The verification should not share that assumption:
its second opinion says, for each sampled tensor, whether transformers builds its module as
a ``Conv1D``, an ``nn.Linear`` or an ``nn.Embedding``.

For the architectures in ``KNOWN`` that answer is a table here, read from nothing but the
tensor's name: ``tests/merge/test_layer_types.py`` builds every one of them with
transformers (on the meta device) and checks the table against the class of every module,
so a transformers release that changes a layer's type fails the tests instead of a merge.
Answering from the table costs microseconds; asking transformers costs importing it and
building the skeleton, 10-25 s on a loaded 2-core machine, most of a small merge's time.

For any other architecture the answer comes from transformers itself, in a short-lived
child process (``python -m registry.merge.layer_types``, JSON in and out): importing
transformers and building the skeleton takes about 160 MB that the merge process would
otherwise keep to its end. The child's answer is the same function's (``_in_process``); a
child that fails, or answers anything but a layer type per asked tensor, is no second
opinion (``{}``), and neither is a missing transformers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

KINDS = frozenset({"linear", "conv1d", "embedding"})
TIMEOUT_S = 600.0

_LLAMA_LIKE = frozenset(
    {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"}
)
_NEOX_LIKE = frozenset({"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h", "lm_head"})


def _arch(
    linear: frozenset[str], embedding: frozenset[str], conv1d: frozenset[str] = frozenset()
) -> dict[str, str]:
    return {
        **dict.fromkeys(linear, "linear"),
        **dict.fromkeys(conv1d, "conv1d"),
        **dict.fromkeys(embedding, "embedding"),
    }


_TOKENS = frozenset({"embed_tokens"})
# model_type -> {module short name: layer type}: every Linear, Conv1D and Embedding module
# transformers builds for that architecture (dense causal LMs only: MoE experts are fused
# parameters, not modules). Checked, both ways, by tests/merge/test_layer_types.py.
KNOWN: dict[str, dict[str, str]] = {
    **dict.fromkeys(
        (
            "llama",
            "mistral",
            "qwen2",
            "qwen3",
            "gemma",
            "gemma2",
            "gemma3_text",
            "stablelm",
            "olmo",
            "olmo2",
            "granite",
            "cohere",
        ),
        _arch(_LLAMA_LIKE, _TOKENS),
    ),
    "phi": _arch(
        frozenset({"q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2", "lm_head"}), _TOKENS
    ),
    "phi3": _arch(
        frozenset({"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head"}), _TOKENS
    ),
    "starcoder2": _arch(
        frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "c_fc", "c_proj", "lm_head"}), _TOKENS
    ),
    "opt": _arch(
        frozenset({"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2", "lm_head"}),
        frozenset({"embed_tokens", "embed_positions"}),
    ),
    "gptj": _arch(
        frozenset({"q_proj", "k_proj", "v_proj", "out_proj", "fc_in", "fc_out", "lm_head"}),
        frozenset({"wte"}),
    ),
    "codegen": _arch(
        frozenset({"qkv_proj", "out_proj", "fc_in", "fc_out", "lm_head"}), frozenset({"wte"})
    ),
    "gpt_neox": _arch(_NEOX_LIKE, frozenset({"embed_in"})),
    "bloom": _arch(_NEOX_LIKE, frozenset({"word_embeddings"})),
    "falcon": _arch(_NEOX_LIKE, frozenset({"word_embeddings"})),
    "gpt2": _arch(
        frozenset({"lm_head"}),
        frozenset({"wte", "wpe"}),
        conv1d=frozenset({"c_attn", "c_proj", "c_fc"}),
    ),
    # GPT-2's names, but nn.Linear layers: the case a name-only guess gets wrong.
    "gpt_bigcode": _arch(
        frozenset({"c_attn", "c_proj", "c_fc", "lm_head"}), frozenset({"wte", "wpe"})
    ),
}


def layer_types(architecture: dict[str, Any], tensors: Iterable[str]) -> dict[str, str]:
    """``{tensor name: "linear" | "conv1d" | "embedding"}`` for the tensors transformers
    builds as one of those layers; empty when it cannot say.

    A known architecture answers from ``KNOWN`` (no process, no import); transformers is
    asked, in a child process, only about the names the table does not know."""
    mtype = architecture.get("model_type")
    if not isinstance(mtype, str):
        return {}
    names = list(tensors)
    found = from_table(mtype, names)
    unknown = [n for n in names if n not in found]
    if unknown:
        found |= _ask_transformers(architecture, unknown)
    return found


def from_table(model_type: str, tensors: Iterable[str]) -> dict[str, str]:
    """The ``KNOWN`` table's answer for the tensors (``<module>.weight``) it knows."""
    table = KNOWN.get(model_type, {})
    found = {}
    for name in tensors:
        module, dot, param = name.rpartition(".")
        kind = table.get(module.rpartition(".")[2]) if dot and param == "weight" else None
        if kind is not None:
            found[name] = kind
    return found


def _ask_transformers(architecture: dict[str, Any], names: list[str]) -> dict[str, str]:
    """``_in_process``' answer, from a child process; ``{}`` when it cannot say."""
    if importlib.util.find_spec("transformers") is None:
        return {}
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "registry.merge.layer_types"],
            input=json.dumps({"architecture": architecture, "tensors": names}),
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError, TypeError, ValueError):
        return {}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {}
    try:
        found = json.loads(lines[-1])
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    asked = set(names)
    return {k: v for k, v in found.items() if k in asked and v in KINDS}


def _in_process(architecture: dict[str, Any], tensors: Iterable[str]) -> dict[str, str]:
    """``layer_types``' answer, computed here (the child process runs this)."""
    import torch

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
    import torch
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


def _main() -> None:
    doc = json.loads(sys.stdin.read())
    found = _in_process(doc["architecture"], doc["tensors"])
    sys.stdout.write("\n" + json.dumps(found) + "\n")


if __name__ == "__main__":
    _main()

"""The type of each base layer as transformers itself builds it, for the verification.

The merge decides a layer's orientation from lorareg's own table of Conv1D architectures
(``registry.compat.architectures``). The verification should not share that assumption, so
where transformers is installed (it is optional) it builds the architecture from config.json
on the meta device (no weights, no memory) and reads each sampled module's class: a
``Conv1D``, an ``nn.Linear`` or an ``nn.Embedding``. Where it is not installed, or cannot
build the architecture (remote code), the verification falls back to the table.

It runs in a short-lived child process (``python -m registry.merge.layer_types``, JSON in
and out): importing transformers and building the skeleton takes about 160 MB that the
merge process would otherwise keep to its end, the largest part of its peak memory after
torch. The child's answer is the same function's (``_in_process``); a child that fails,
or answers anything but a layer type per asked tensor, is no second opinion (``{}``).
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


def layer_types(architecture: dict[str, Any], tensors: Iterable[str]) -> dict[str, str]:
    """``{tensor name: "linear" | "conv1d" | "embedding"}`` for the tensors transformers
    builds as one of those layers; empty when it cannot say."""
    mtype = architecture.get("model_type")
    if not isinstance(mtype, str) or importlib.util.find_spec("transformers") is None:
        return {}
    names = list(tensors)
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

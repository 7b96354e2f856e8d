"""Writing factors with scale 1 as a PEFT adapter folder that PEFT and vLLM load as they are.

``r`` is the largest module rank, ``lora_alpha == r``; modules of another rank get a
``rank_pattern`` entry and the same ``alpha_pattern`` value (their scale is 1 too). Pattern keys
are the full module names, regex-escaped, so each matches exactly its module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from registry.formats.peft import CONFIG_NAME, WEIGHTS_NAME, PeftConfig
from registry.library.factors import ModuleFactors
from registry.merge.adapters import SAVE_PREFIX

REPORT_NAME = "lorareg_library.json"
_LAYER_KEYS = ("layers_to_transform", "layers_pattern")


def write_adapter(
    folder: Path,
    modules: Mapping[str, ModuleFactors],
    *,
    template: PeftConfig,
    configs: list[PeftConfig],
    report: dict[str, Any],
    dtype: torch.dtype,
) -> Path:
    """Write adapter_config.json, adapter_model.safetensors and the library report."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, f in modules.items():
        kind = ("lora_embedding_A", "lora_embedding_B") if f.embedding else ("lora_A", "lora_B")
        suffix = "" if f.embedding else ".weight"
        tensors[f"{SAVE_PREFIX}{name}.{kind[0]}{suffix}"] = f.a.to(dtype).contiguous()
        tensors[f"{SAVE_PREFIX}{name}.{kind[1]}{suffix}"] = f.b.to(dtype).contiguous()
    save_file(tensors, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    ranks = {name: f.rank for name, f in modules.items()}
    r = max(ranks.values())
    pattern = {re.escape(name): k for name, k in sorted(ranks.items()) if k != r}
    doc = template.to_json_dict()
    doc.update(
        peft_type="LORA",
        r=r,
        lora_alpha=r,
        rank_pattern=pattern,
        alpha_pattern=dict(pattern),
        use_rslora=False,
        use_dora=False,
        target_modules=_targets(configs, list(modules)),
    )
    if not _same_layers(configs):
        for key in _LAYER_KEYS:
            doc.pop(key, None)
    (folder / CONFIG_NAME).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    (folder / REPORT_NAME).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return folder


def _same_layers(configs: list[PeftConfig]) -> bool:
    def layers(c: PeftConfig) -> tuple[str, ...]:
        extra = c.model_extra or {}
        return tuple(json.dumps(extra.get(k), sort_keys=True) for k in _LAYER_KEYS)

    return len({layers(c) for c in configs}) == 1


def _targets(configs: list[PeftConfig], modules: list[str]) -> list[str]:
    """The inputs' target lists united (as PEFT does) when they are lists over the same
    layers; otherwise the exact module names, which match nothing else."""
    if _same_layers(configs) and all(isinstance(c.target_modules, list) for c in configs):
        return sorted({t for c in configs for t in c.target_list()})
    return sorted(modules)

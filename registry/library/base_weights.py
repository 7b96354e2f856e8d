"""Norms of a base model's weights, read tensor by tensor from its safetensors files."""

from __future__ import annotations

import math
from pathlib import Path

from safetensors import safe_open


def weight_norms(folder: Path, modules: list[str]) -> dict[str, float]:
    """``||W0||_F`` per module, matching ``<module>.weight`` or a suffix of it (a GPT-2
    adapter names ``transformer.h.0.attn.c_attn``, its base file may say ``h.0.attn.c_attn``).
    Modules with no such weight are left out."""
    where: dict[str, Path] = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 (safe_open is not a mapping)
                where.setdefault(key, path)
    out: dict[str, float] = {}
    for module in modules:
        parts = module.split(".")
        for start in range(len(parts)):
            key = ".".join(parts[start:]) + ".weight"
            if key in where:
                with safe_open(str(where[key]), framework="pt") as fh:
                    w = fh.get_tensor(key)
                out[module] = math.sqrt(float(w.double().pow(2).sum()))
                break
    return out

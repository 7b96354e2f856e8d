"""Which modules a serving engine accepts LoRA on, per model architecture, as data.

The lists are read from the engine's own code and kept in a JSON file beside this module
with the engine version they were read from (``vllm_lora.json``), so a new engine release is
a data change that a test can hold against the installed engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

_DATA = Path(__file__).with_name("vllm_lora.json")


@dataclass(frozen=True)
class ArchitectureSupport:
    """An architecture as the engine sees it: LoRA at all, and on which modules."""

    architecture: str
    lora: bool
    modules: frozenset[str]


@dataclass(frozen=True)
class EngineSupport:
    engine: str
    version: str
    architectures: dict[str, ArchitectureSupport]

    def of(self, base_architecture: dict[str, Any] | None) -> ArchitectureSupport | None:
        """The entry for a base's config.json (its first ``architectures`` name)."""
        names = (base_architecture or {}).get("architectures")
        if not isinstance(names, list) or not names or not isinstance(names[0], str):
            return None
        return self.architectures.get(names[0])


@cache
def vllm_support() -> EngineSupport:
    doc = json.loads(_DATA.read_text())
    return EngineSupport(
        engine=doc["engine"],
        version=doc["version"],
        architectures={
            name: ArchitectureSupport(name, bool(entry["lora"]), frozenset(entry["modules"]))
            for name, entry in doc["architectures"].items()
        },
    )

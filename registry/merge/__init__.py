"""Merging LoRA adapters into base weights, and the job queue that runs merges.

The engine (``engine``, ``compose``, ``methods``, ``stream``, ``verify``, ...) is pure tensor
work, with no database and no storage; the job queue (``job_queue``), the worker
(``worker``) and the merge use case (``inputs``) keep jobs and their outputs in the catalog.

Public API (see ``engine.py`` for the promises, ``compose.py`` for the methods)::

    merge_adapters(base_dir, [AdapterInput(folder), ...], out_dir, *, method, ...) -> MergeResult
    interference_report([AdapterInput(...), ...], *, top=10) -> InterferenceReport

Names are imported lazily: torch is an optional dependency (the ``merge`` extra), and the
job queue in ``registry.merge.job_queue`` must import without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.merge.adapters import AdapterInput
    from registry.merge.compose import InterferenceReport, interference_report
    from registry.merge.engine import MergeResult, merge_adapters, resolve_device
    from registry.merge.methods import METHODS
    from registry.merge.stream import MergeCancelled, MergeProgress
    from registry.merge.verify import Verification

_EXPORTS = {
    "AdapterInput": "registry.merge.adapters",
    "InterferenceReport": "registry.merge.compose",
    "interference_report": "registry.merge.compose",
    "MergeResult": "registry.merge.engine",
    "merge_adapters": "registry.merge.engine",
    "resolve_device": "registry.merge.engine",
    "METHODS": "registry.merge.methods",
    "MergeCancelled": "registry.merge.stream",
    "MergeProgress": "registry.merge.stream",
    "Verification": "registry.merge.verify",
}

__all__ = [
    "METHODS",
    "AdapterInput",
    "InterferenceReport",
    "MergeCancelled",
    "MergeProgress",
    "MergeResult",
    "Verification",
    "interference_report",
    "merge_adapters",
    "resolve_device",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'registry.merge' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

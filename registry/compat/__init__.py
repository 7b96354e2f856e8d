"""Base models, fingerprints, compatibility checks and serving-engine profiles.

- ``inspect_base(source)``: read a base model (folder, ``s3://``, ``hf://``) from its
  safetensors headers into a ``BaseModelInfo`` with structure and content hashes;
- ``run_checks(config, header, base=..., trained_on=..., load_tensor=..., engines=...)``:
  every rule, a ``CheckReport`` with a verdict, findings and per-engine verdicts;
- ``tensor_loader(read, header)``: the tensor loader the numbers rules need;
- ``get_engine(name)`` / ``ENGINES``: the engine profiles.

These read files and headers only, with no database and no HTTP. The catalog side of the
package keeps what they return: ``bases`` (registered base models), ``check_records`` and
``version_checks`` (check results of versions).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.compat.checks import RULE_CODES, run_checks
    from registry.compat.engines import ENGINES, get_engine
    from registry.compat.findings import CheckReport, EngineVerdict, Finding, Severity
    from registry.compat.fingerprint import (
        BaseFile,
        BaseFingerprint,
        BaseModelInfo,
        BaseSource,
        content_hash,
        read_base_model,
        structure_hash,
    )
    from registry.compat.sources import LocalFolderSource, inspect_base, open_base_source
    from registry.compat.tensors import local_tensor_loader, tensor_loader

# Loaded on first use (PEP 562): importing one submodule, such as the stored check
# results ``lorareg show`` reads, must not load every rule and base source.
_HOME = {
    "RULE_CODES": "checks", "run_checks": "checks",
    "ENGINES": "engines", "get_engine": "engines",
    "CheckReport": "findings", "EngineVerdict": "findings", "Finding": "findings",
    "Severity": "findings",
    "BaseFile": "fingerprint", "BaseFingerprint": "fingerprint", "BaseModelInfo": "fingerprint",
    "BaseSource": "fingerprint", "content_hash": "fingerprint", "read_base_model": "fingerprint",
    "structure_hash": "fingerprint",
    "LocalFolderSource": "sources", "inspect_base": "sources", "open_base_source": "sources",
    "local_tensor_loader": "tensors", "tensor_loader": "tensors",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'registry.compat' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"registry.compat.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "ENGINES",
    "RULE_CODES",
    "BaseFile",
    "BaseFingerprint",
    "BaseModelInfo",
    "BaseSource",
    "CheckReport",
    "EngineVerdict",
    "Finding",
    "LocalFolderSource",
    "Severity",
    "content_hash",
    "get_engine",
    "inspect_base",
    "local_tensor_loader",
    "open_base_source",
    "read_base_model",
    "run_checks",
    "structure_hash",
    "tensor_loader",
]

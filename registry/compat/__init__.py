"""Base models, fingerprints, compatibility checks and serving-engine profiles.

- ``inspect_base(source)``: read a base model (folder, ``s3://``, ``hf://``) from its
  safetensors headers into a ``BaseModelInfo`` with structure and content hashes;
- ``run_checks(config, header, base=..., trained_on=..., load_tensor=..., engines=...)``:
  every rule, a ``CheckReport`` with a verdict, findings and per-engine verdicts;
- ``tensor_loader(read, header)``: the tensor loader the numbers rules need;
- ``get_engine(name)`` / ``ENGINES``: the engine profiles.

No database and no HTTP here: the catalog stores what these return.
"""

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

"""The compatibility gate: the registry's own checks of a fetched version against the
base model vLLM actually serves, before vLLM is given the path.

The served base is read once per process from vLLM's model folder (safetensors headers
only: no weight is hashed, so starting costs milliseconds even for a large model; the
identity rules then compare structure, not content). The version's training base comes
from the registry (its recorded fingerprint). Reports are kept per content id: a version
never changes, so it is checked once per process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from registry.compat import BaseFingerprint, BaseModelInfo, CheckReport, Severity, run_checks
from registry.compat.sources import inspect_base
from registry.compat.tensors import tensor_loader
from registry.errors import NotFound
from registry.formats.adapter import inspect_adapter, local_files
from registry.formats.peft import WEIGHTS_NAME


class Refused(Exception):
    """The version cannot be served on this engine's base; the message gives the reasons.

    Not a LoraregError: it never crosses lorareg's own HTTP or CLI edges, only vLLM's."""


def served_base(model: str) -> BaseModelInfo | None:
    """The base vLLM serves, read from its folder (or its Hugging Face cache snapshot);
    None when neither is on this machine."""
    folder = Path(model)
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model, local_files_only=True))
        except Exception:  # not a repo id, or not in the cache: nothing to compare with
            return None
    return inspect_base(str(folder), compute_sha256=False)


class Gate:
    """Checks versions against the served base; ``check`` raises Refused."""

    def __init__(self, model: str, client: Any) -> None:
        self.model = model
        self.client = client
        self._base: BaseModelInfo | None = None
        self._base_read = False
        self._trained_on: dict[str, BaseFingerprint | None] = {}
        self._reports: dict[str, CheckReport] = {}
        self._lock = threading.Lock()

    def check(self, *, content_id: str, folder: Path, trained_on: str | None, what: str) -> None:
        """Refuse ``folder`` (the version ``what``) when a check fails on the served base."""
        report = self._reports.get(content_id)
        if report is None:
            report = self._run(folder, trained_on)
            self._reports[content_id] = report
        if report.verdict == Severity.FAIL:
            reasons = "; ".join(f.message for f in report.findings if f.severity == Severity.FAIL)
            raise Refused(f"lorareg refuses {what} on this engine's base ({self.model}): {reasons}")

    def _run(self, folder: Path, trained_on: str | None) -> CheckReport:
        files = {p: f for p, f in local_files(folder).items() if not p.startswith(".")}
        contents = inspect_adapter(files)
        loader = tensor_loader(files[WEIGHTS_NAME].read, contents.header)
        return run_checks(
            contents.config,
            contents.header,
            base=self._served(),
            trained_on=self._fingerprint(trained_on),
            load_tensor=loader,
            engines=["vllm"],
        )

    def _served(self) -> BaseModelInfo | None:
        with self._lock:
            if not self._base_read:
                self._base = served_base(self.model)
                self._base_read = True
            return self._base

    def _fingerprint(self, base_name: str | None) -> BaseFingerprint | None:
        """The fingerprint the registry recorded for the base a version was trained on."""
        if not base_name:
            return None
        if base_name not in self._trained_on:
            try:
                doc = self.client.get_base(base_name)
            except NotFound:
                doc = None
            self._trained_on[base_name] = (
                BaseFingerprint(doc["structure_hash"], doc.get("content_hash")) if doc else None
            )
        return self._trained_on[base_name]

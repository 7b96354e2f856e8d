"""The client protocol: one set of operations, a local and a remote implementation.

The CLI calls only this, so every command behaves the same against the embedded catalog
and against a server (``LORAREG_URL``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from registry.domain import (
    AdapterSummary,
    EvalRecord,
    EventInfo,
    PullResult,
    PushResult,
    VersionInfo,
)
from registry.storage.base import Progress

if TYPE_CHECKING:  # kept out of the CLI's start-up: these pull in the database layer
    from registry.catalog.erase import ErasureReport
    from registry.catalog.quotas import NamespaceInfo
    from registry.experiments.domain import (
        Assignment,
        Conclusion,
        ExperimentInfo,
        ExperimentReport,
        GatePreview,
    )
    from registry.library.results import AnalysisResult, LibraryMap, LibraryVersion
    from registry.services.region_models import RegionStatusReport, RegionView

# Called with each job document while ``wait_job`` polls.
JobProgress = Callable[[dict[str, Any]], None]


class RegistryClient(Protocol):
    """Every operation the CLI (and ``lorareg sync``, ``lorareg import``) uses. ``LocalClient``
    and ``RemoteClient`` both implement all of it, with the same arguments and results:
    ``tests/client/test_contract.py`` runs each operation on both and compares."""

    def push(
        self,
        folder: Path,
        repo: str,
        *,
        base: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        evals: list[EvalRecord] | None = None,
        progress: Progress | None = None,
        strict: bool = False,
    ) -> PushResult: ...

    def pull(
        self,
        ref: str,
        *,
        dest: Path | None = None,
        force: bool = False,
        progress: Progress | None = None,
        region: str | None = None,
    ) -> PullResult: ...

    def show(self, ref: str, *, base: str | None = None) -> VersionInfo: ...

    def versions(self, repo: str) -> list[VersionInfo]: ...

    def list_adapters(self, namespace: str | None = None) -> list[AdapterSummary]: ...

    def history(self, repo: str) -> list[EventInfo]: ...

    def tag(self, ref: str, tags: dict[str, str]) -> VersionInfo: ...

    def resolve(
        self, repo: str, *, ref: str = "latest", base: str | None = None, region: str | None = None
    ) -> dict[str, Any]: ...

    # Stages, aliases, evals and policies.
    def promote(
        self, ref: str, *, to: str, reason: str | None = None, end_experiment: bool = False
    ) -> dict[str, Any]: ...

    def set_alias(
        self, repo: str, label: str, version: int, *, reason: str | None = None
    ) -> VersionInfo: ...

    def delete_alias(self, repo: str, label: str) -> None: ...

    def add_evals(self, ref: str, evals: list[EvalRecord]) -> VersionInfo: ...

    def diff(self, a: str, b: str) -> dict[str, Any]: ...

    def get_policy(self, target: str) -> dict[str, Any]: ...

    def set_policy(self, target: str, rules: dict[str, Any]) -> dict[str, Any]: ...

    def namespace_history(self, namespace: str) -> list[EventInfo]: ...

    def events(
        self, since: int = 0, *, wait: float = 0, namespace: str | None = None
    ) -> list[EventInfo]: ...

    # Tokens and webhooks.
    def create_token(
        self,
        name: str,
        role: str,
        *,
        namespaces: list[str] | None = None,
        expires_in_days: float | None = None,
    ) -> dict[str, Any]: ...

    def list_tokens(self) -> list[dict[str, Any]]: ...

    def revoke_token(self, token_id: int) -> dict[str, Any]: ...

    def create_webhook(
        self, url: str, *, namespace: str | None = None, kinds: list[str] | None = None
    ) -> dict[str, Any]: ...

    def list_webhooks(self) -> list[dict[str, Any]]: ...

    def delete_webhook(self, webhook_id: int) -> None: ...

    # Base models and compatibility checks.
    def add_base(self, name: str, source: str) -> dict[str, Any]: ...

    def list_bases(self) -> list[dict[str, Any]]: ...

    def get_base(self, name: str) -> dict[str, Any]: ...

    def check(self, ref: str, *, base: str, engines: list[str] | None = None) -> dict[str, Any]: ...

    def checks(self, ref: str) -> list[dict[str, Any]]: ...

    # Merge jobs.
    def merge(self, refs: list[str], *, base: str, **options: Any) -> dict[str, Any]: ...

    def jobs(self) -> list[dict[str, Any]]: ...

    def job(self, job_id: int) -> dict[str, Any]: ...

    def cancel_job(self, job_id: int) -> dict[str, Any]: ...

    def wait_job(
        self,
        job_id: int,
        *,
        progress: JobProgress | None = None,
        claim_timeout_s: float = 60.0,
    ) -> dict[str, Any]: ...

    def workers(self) -> dict[str, Any]: ...

    # Namespaces: quotas and erasure.
    def namespace_info(self, namespace: str) -> NamespaceInfo: ...

    def set_quota(self, namespace: str, **limits: Any) -> NamespaceInfo: ...

    def delete(self, ref: str, *, reason: str | None, force: bool = False) -> ErasureReport: ...

    def delete_namespace(
        self, namespace: str, *, reason: str | None, force: bool = False
    ) -> ErasureReport: ...

    # The adapter library: composition, interference, analysis, compression.
    def compose(self, refs: list[str], *, output: str, **options: Any) -> dict[str, Any]: ...

    def interference(
        self,
        refs: list[str] | None = None,
        *,
        base: str | None = None,
        namespace: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> LibraryMap: ...

    def analyze(self, ref: str) -> AnalysisResult: ...

    def compress(self, ref: str, **options: Any) -> LibraryVersion: ...

    # A/B experiments between versions.
    def experiment_create(
        self,
        repo: str,
        name: str,
        *,
        variants: Sequence[tuple[str, str]],
        split: str | Sequence[float],
        metric: str,
        reason: str | None = None,
    ) -> ExperimentInfo: ...

    def experiment_list(self, repo: str, *, running: bool = False) -> list[ExperimentInfo]: ...

    def experiment_show(self, repo: str, name: str) -> ExperimentReport: ...

    def experiment_ramp(
        self, repo: str, name: str, *, split: str | Sequence[float], reason: str | None = None
    ) -> ExperimentInfo: ...

    def experiment_record(self, repo: str, name: str, **outcome: Any) -> ExperimentInfo: ...

    def experiment_preview(
        self, repo: str, name: str, *, winner: str, reason: str | None = None
    ) -> GatePreview: ...

    def experiment_conclude(
        self, repo: str, name: str, *, winner: str, reason: str | None = None
    ) -> Conclusion: ...

    def experiments_of(self, ref: str) -> list[ExperimentInfo]: ...

    def assign(self, repo: str, name: str, subject: str) -> Assignment: ...

    # Regions.
    def regions(self) -> list[RegionView]: ...

    def region_status(self, *, ref: str | None = None) -> RegionStatusReport: ...

    def close(self) -> None: ...

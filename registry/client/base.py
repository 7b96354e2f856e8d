"""The client protocol: one set of operations, a local and a remote implementation.

The CLI calls only this, so every command behaves the same against the embedded catalog
and against a server (``LORAREG_URL``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from registry.domain import (
    AdapterSummary,
    EvalRecord,
    EventInfo,
    PullResult,
    PushResult,
    VersionInfo,
)
from registry.storage.base import Progress


class RegistryClient(Protocol):
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
    ) -> PullResult: ...

    def show(self, ref: str, *, base: str | None = None) -> VersionInfo: ...

    def versions(self, repo: str) -> list[VersionInfo]: ...

    def list_adapters(self, namespace: str | None = None) -> list[AdapterSummary]: ...

    def history(self, repo: str) -> list[EventInfo]: ...

    def tag(self, ref: str, tags: dict[str, str]) -> VersionInfo: ...

    def resolve(
        self, repo: str, *, ref: str = "latest", base: str | None = None
    ) -> dict[str, Any]: ...

    def close(self) -> None: ...

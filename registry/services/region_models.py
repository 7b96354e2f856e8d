"""The typed results of the regions service (``/api/v1/regions``, ``lorareg regions``).

Tenancy: the list of regions (names, modes, reachability) describes the deployment, not
any tenant, so every reader sees it. The figures of ``status`` (backlog, lag, failures)
are counted over every namespace's blobs and the failures name blobs by sha256, so they
are for unscoped admins only; a version's presence is shown to whoever sees the version.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from registry.regions.models import RegionStats, ReplicaFailure


class RegionView(BaseModel):
    """One configured region and whether its store answers now."""

    model_config = ConfigDict(frozen=True)

    name: str
    mode: Literal["primary", "replicate", "external"]
    primary: bool
    reachable: bool
    state: Literal["ok", "degraded"]  # degraded: its store does not answer (reads fall back)
    error: str | None = None  # why it is degraded, in one line


class RegionStatus(RegionStats):
    """One region's replication figures and its most recent failures."""

    primary: bool = False
    failures: list[ReplicaFailure] = []


class FilePresence(BaseModel):
    """One file of a version and the regions that do not hold it yet."""

    path: str
    sha256: str
    size: int
    missing_in: list[str]


class VersionPresence(BaseModel):
    """Which regions hold every file of one version (the primary always does)."""

    ref: str  # ns/name:N
    complete_in: list[str]
    incomplete_in: list[str]
    files: list[FilePresence]

    def missing(self) -> dict[str, list[str]]:
        """region -> the paths it still misses."""
        out: dict[str, list[str]] = {}
        for f in self.files:
            for region in f.missing_in:
                out.setdefault(region, []).append(f.path)
        return out


class RegionStatusReport(BaseModel):
    regions: list[RegionStatus]
    version: VersionPresence | None = None

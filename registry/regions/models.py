"""What the regions service answers with (pydantic, for the API, CLI and dashboard)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class RegionStats(BaseModel):
    """One region's replication state.

    ``backlog_*``: copies needed and not yet present (missing or failed); ``failed_blobs``:
    those whose last attempt failed; lag: seconds from a blob's push (``needed_since``) to
    its copy being present, over the most recent present copies (None: none yet).
    """

    name: str
    mode: str
    url: str
    present_blobs: int = 0
    backlog_blobs: int = 0
    backlog_bytes: int = 0
    failed_blobs: int = 0
    lag_p50_s: float | None = None
    lag_p99_s: float | None = None
    oldest_missing_since: datetime | None = None
    last_error: str | None = None


class ReplicaFailure(BaseModel):
    """A copy whose last attempt failed, and when it is tried again."""

    sha256: str
    region: str
    attempts: int
    last_error: str | None
    next_try_at: datetime


class VersionRegions(BaseModel):
    """Which regions hold a whole version, and which files each other region misses."""

    present: list[str]
    missing: dict[str, list[str]]

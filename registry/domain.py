"""Plain domain objects that cross layers: services return them, the API serialises them,
the remote client parses them back. No database rows leave registry/db."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Stage(StrEnum):
    """Where a version stands in its lifecycle (at most one in production per base)."""

    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class JobState(StrEnum):
    """A merge (or compose) job's state; the last three are terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_JOB_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class MergeMethod(StrEnum):
    """How a merge job combines adapters into the base weights."""

    SUM = "sum"
    LINEAR = "linear"
    CAT = "cat"
    SVD = "svd"


class _Domain(BaseModel):
    model_config = ConfigDict(frozen=True)


class FileEntry(_Domain):
    """One file of a version: its path inside the adapter folder and its blob."""

    path: str
    sha256: str
    size: int


class EvalRecord(_Domain):
    metric: str
    value: float
    dataset: str | None = None
    higher_is_better: bool = True
    recorded_by: str | None = None
    created_at: datetime | None = None


class VersionInfo(_Domain):
    """An immutable adapter version with its metadata and manifest."""

    namespace: str
    name: str
    number: int
    content_id: str
    base_model: str | None
    peft_type: str
    r: int
    lora_alpha: float
    target_modules: list[str]
    config: dict[str, Any]
    size: int
    file_count: int
    author: str
    description: str | None
    parent: int | None
    created_at: datetime
    stage: Stage | None = None
    aliases: list[str] = Field(default_factory=list)
    kind: str = "adapter"
    tags: dict[str, str] = Field(default_factory=dict)
    evals: list[EvalRecord] = Field(default_factory=list)
    files: list[FileEntry] = Field(default_factory=list)

    @property
    def repo(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}:{self.number}"


class AdapterSummary(_Domain):
    namespace: str
    name: str
    versions: int
    latest: int | None
    base_model: str | None
    updated_at: datetime | None


class EventInfo(_Domain):
    id: int
    kind: str
    namespace: str | None
    adapter: str | None
    version: int | None
    actor: str
    payload: dict[str, Any]
    created_at: datetime


class PushResult(_Domain):
    """What a push did: the version (new or the identical existing one) and the bytes sent."""

    version: VersionInfo
    created: bool
    bytes_uploaded: int = 0
    blobs_uploaded: int = 0
    blobs_reused: int = 0
    # The automatic compatibility check, when the base model is registered.
    check: dict[str, Any] | None = None


class PullResult(_Domain):
    version: VersionInfo
    path: str
    bytes_downloaded: int = 0
    bytes_from_cache: int = 0


class UploadPlan(_Domain):
    """The server's answer to a push's manifest: which blobs it still needs, and where to put
    them (a presigned URL on S3; ``None`` means PUT to the server's blob route)."""

    missing: list[str]
    upload_urls: dict[str, str | None] = Field(default_factory=dict)

"""The typed results of the services, as every edge sends them (``response_model``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer

from registry.domain import VersionInfo
from registry.timestamps import iso_z

# One timestamp format on every wire: ISO 8601, UTC, ``Z`` (SQLite hands back naive UTC).
WireTime = Annotated[datetime, PlainSerializer(iso_z, return_type=str, when_used="json")]


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class PromotionResult(_Result):
    """A promotion done (or found already done: ``unchanged``)."""

    version: VersionInfo
    previous_stage: str | None
    archived: int | None  # the production version this promotion replaced
    unchanged: bool = False
    experiments_ended: list[str] = []  # running experiments this promotion ended


class PolicyView(_Result):
    """A namespace's own promotion policy (None: it has none), or the rules just set."""

    target: str
    rules: dict[str, Any] | None


class EffectivePolicy(_Result):
    """The policy in force for an adapter; ``effective_from`` names where it is set (the
    adapter, its namespace, or None: the defaults)."""

    target: str
    effective_from: str | None
    rules: dict[str, Any]


class CheckRun(_Result):
    """A compatibility check just run and recorded."""

    version: str  # ns/name:N
    base_model: str
    report: dict[str, Any]
    lines: list[str]  # what ``lorareg check`` prints


class TokenView(_Result):
    id: int
    name: str
    prefix: str
    role: str
    namespaces: list[str] | None
    created_by: str
    created_at: WireTime
    expires_at: WireTime | None
    revoked_at: WireTime | None


class TokenCreated(TokenView):
    token: str  # the secret: shown in this answer only


class WebhookView(_Result):
    """A subscription as listings show it: the host only (the URL may hold credentials)."""

    id: int
    host: str
    namespace: str | None
    kinds: list[str] | None
    active: bool
    created_by: str
    created_at: WireTime


class WebhookCreated(WebhookView):
    secret: str  # the signing secret: shown in this answer only


class Sides(_Result):
    a: Any
    b: Any


class EvalDelta(_Result):
    a: float | None
    b: float | None
    delta: float | None
    better: bool | None  # None: no change, or only one side has the metric


class TargetDiff(_Result):
    added: list[str]
    removed: list[str]
    common: list[str]


class FileDiff(_Result):
    added: list[str]
    removed: list[str]
    changed: list[str]


class VersionDiff(_Result):
    """Two versions side by side (``catalog.diff.diff_versions``): b compared to a."""

    a: str  # ns/name:N
    b: str
    base_model: Sides
    config: dict[str, Sides]  # only the keys that differ
    targets: TargetDiff
    evals: dict[str, EvalDelta]
    files: FileDiff


class BaseSummary(_Result):
    """A registered base model: its fingerprints and how much it holds."""

    name: str
    source: str | None
    structure_hash: str | None
    content_hash: str | None
    architecture: dict[str, Any]
    tensors: int
    files: int
    total_size: int | None
    created_by: str | None
    created_at: str | None  # ISO 8601, UTC, Z


class BaseAdded(BaseSummary):
    created: bool  # False: the same name and fingerprint were registered already


class TensorEntry(_Result):
    name: str
    dtype: str
    shape: list[int]


class BaseDetail(BaseSummary):
    tensor_list: list[TensorEntry]

"""The typed results of the services, as every edge sends them (``response_model``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, PlainSerializer

from registry.domain import Stage, VersionInfo
from registry.timestamps import iso_z

# One timestamp format on every wire: ISO 8601, UTC, ``Z`` (SQLite hands back naive UTC).
WireTime = Annotated[datetime, PlainSerializer(iso_z, return_type=str, when_used="json")]


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True)


class PromotionResult(_Result):
    """A promotion done (or found already done: ``unchanged``)."""

    version: VersionInfo
    previous_stage: Stage | None
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


class DeliveryAttempt(_Result):
    at: str  # ISO 8601, UTC, Z
    status: int | None  # the endpoint's HTTP status; None when no answer came
    error: str | None  # a short failure code (``timeout``, ``refused``, ...)


class WebhookDelivery(_Result):
    """One event's delivery to a webhook: pending, delivered or failed (out of attempts)."""

    event_id: int
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    attempt_log: list[DeliveryAttempt]


class CheckRecord(_Result):
    """The newest recorded check of a version against one base model."""

    base_model: str
    verdict: Literal["pass", "warn", "fail"]
    created_at: str | None  # ISO 8601, UTC, Z
    created_by: str
    report: dict[str, Any]


class BlobStored(_Result):
    """A blob uploaded through the server; ``created`` is always true (whether the bytes were
    stored before is not revealed)."""

    sha256: str
    created: bool


class ResolvedFile(_Result):
    path: str
    sha256: str
    size: int
    url: str  # presigned on S3, else this server's download route


class ExperimentAssignment(_Result):
    """With ``?experiment=&subject=``: which variant the subject was assigned."""

    name: str
    state: str
    variant: str | None
    bucket: int


class ResolveDocument(_Result):
    """``GET /api/v1/resolve/...``: what a serving system needs to load a version. ``config``
    is the PEFT config summary (for a merged model: its kind, method and inputs)."""

    namespace: str
    name: str
    version: int
    kind: str
    content_id: str
    base_model: str | None
    config: dict[str, Any]
    size: int
    files: list[ResolvedFile]
    experiment: ExperimentAssignment | None = None  # only with ``?experiment=``

"""Typed SQLAlchemy 2 models: the catalog's tables. Rows never leave the data layer.

Surrogate integer keys everywhere; names are unique columns, so a rename never cascades.
Constraints live in the database: unique (adapter, number), sha256 and content-id formats,
foreign keys. Schema changes go through Alembic (migrations/); nothing calls create_all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from registry.domain import JobState, Stage


def _sql_list(values: type[Stage] | type[JobState]) -> str:
    """The enum's wire values as an SQL list for a CHECK constraint: 'a', 'b'."""
    return ", ".join(f"'{v.value}'" for v in values)


# Stable constraint names so Alembic migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY autoincrements).
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are UTC everywhere; SQLite hands them back naive, so say so on load."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Namespace(Base):
    __tablename__ = "namespaces"
    __table_args__ = (
        CheckConstraint("max_bytes IS NULL OR max_bytes >= 0", name="max_bytes_nonneg"),
        CheckConstraint("max_versions IS NULL OR max_versions >= 0", name="max_versions_nonneg"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Quotas an admin sets (catalog/quotas.py); None: no limit.
    max_bytes: Mapped[int | None] = mapped_column(BigInteger)
    max_versions: Mapped[int | None] = mapped_column(Integer)


class Adapter(Base):
    __tablename__ = "adapters"
    __table_args__ = (UniqueConstraint("namespace_id", "name", name="uq_adapters_namespace_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id", ondelete="RESTRICT"))
    name: Mapped[str] = mapped_column(String(64))
    # Next version number to hand out; bumped with a row lock so concurrent pushes
    # get distinct numbers without retrying on unique violations.
    next_number: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    namespace: Mapped[Namespace] = relationship(lazy="joined")


class Blob(Base):
    __tablename__ = "blobs"
    __table_args__ = (
        CheckConstraint("length(sha256) = 64 AND lower(sha256) = sha256", name="sha256_hex"),
        CheckConstraint("size >= 0", name="size_nonneg"),
    )

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Upload(Base):
    """Blob bytes a namespace proved it holds, so a version of it may reference the blob.

    A row with ``staging_key`` names a presigned upload waiting in the store's staging
    area (verified and moved to the blob's key at commit); without one, the bytes were
    verified on the way in. ``namespace`` is ``*`` for an uploader with no namespace scope.
    ``touched_at`` is the freshness gc reads instead of the object's time (no S3 touch).
    """

    __tablename__ = "uploads"
    __table_args__ = (
        CheckConstraint("length(sha256) = 64 AND lower(sha256) = sha256", name="sha256_hex"),
        CheckConstraint("size >= 0", name="size_nonneg"),
        Index("ix_uploads_sha256_namespace", "sha256", "namespace"),
        Index("ix_uploads_touched_at", "touched_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    staging_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    touched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AdapterVersion(Base):
    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("adapter_id", "number", name="uq_versions_adapter_number"),
        CheckConstraint("number >= 1", name="number_positive"),
        CheckConstraint("length(content_id) = 40", name="content_id_len"),
        Index("ix_versions_adapter_content", "adapter_id", "content_id"),
        Index("ix_versions_content_id", "content_id"),
        # The dashboard's base-model filter at 1M versions.
        Index("ix_versions_base_adapter", "base_model", "adapter_id"),
        CheckConstraint(f"stage IS NULL OR stage IN ({_sql_list(Stage)})", name="stage_known"),
        # Production is per base model, so a production version must name its base.
        CheckConstraint(
            "stage IS NULL OR stage <> 'production' OR base_model IS NOT NULL",
            name="production_has_base",
        ),
        # At most one production version per (adapter, base model), even under racing promotes.
        Index(
            "uq_versions_one_production",
            "adapter_id",
            "base_model",
            unique=True,
            sqlite_where=text("stage = 'production'"),
            postgresql_where=text("stage = 'production'"),
        ),
        # The dashboard's staging filter: few rows, so a partial index.
        Index(
            "ix_versions_staging",
            "adapter_id",
            sqlite_where=text("stage = 'staging'"),
            postgresql_where=text("stage = 'staging'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapters.id", ondelete="RESTRICT"))
    number: Mapped[int] = mapped_column(Integer)
    content_id: Mapped[str] = mapped_column(String(40))
    base_model: Mapped[str | None] = mapped_column(String(200))
    peft_type: Mapped[str] = mapped_column(String(32))
    r: Mapped[int] = mapped_column(Integer)
    lora_alpha: Mapped[float] = mapped_column(Float)
    target_modules: Mapped[list[str]] = mapped_column(JSON)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    size: Mapped[int] = mapped_column(BigInteger)
    file_count: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id", ondelete="SET NULL"))
    stage: Mapped[str | None] = mapped_column(String(16))
    # "adapter" (a PEFT LoRA adapter) or "merged" (a full model a merge job produced).
    kind: Mapped[str] = mapped_column(String(16), default="adapter", server_default="adapter")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    adapter: Mapped[Adapter] = relationship(lazy="joined")
    files: Mapped[list[VersionFile]] = relationship(
        order_by="VersionFile.path", cascade="all, delete-orphan", lazy="selectin"
    )
    tags: Mapped[list[Tag]] = relationship(
        order_by="Tag.key", cascade="all, delete-orphan", lazy="selectin"
    )
    evals: Mapped[list[EvalScore]] = relationship(
        order_by="EvalScore.id", cascade="all, delete-orphan", lazy="selectin"
    )


class VersionFile(Base):
    __tablename__ = "version_files"
    __table_args__ = (UniqueConstraint("version_id", "path", name="uq_version_files_path"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256", ondelete="RESTRICT"), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (
        UniqueConstraint("version_id", "key", name="uq_tags_version_key"),
        Index("ix_tags_key_value", "key", "value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(String(1024))


class EvalScore(Base):
    __tablename__ = "eval_scores"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("versions.id", ondelete="CASCADE"), index=True
    )
    metric: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    dataset: Mapped[str | None] = mapped_column(String(200))
    higher_is_better: Mapped[bool] = mapped_column(Boolean, default=True)
    recorded_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BaseModel(Base):
    __tablename__ = "base_models"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str | None] = mapped_column(Text)
    structure_hash: Mapped[str | None] = mapped_column(String(64))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    architecture: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Every tensor's name, dtype and shape plus per-file sha256s (compat.BaseModelInfo).
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    total_size: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class CheckResult(Base):
    """One compatibility check of a version against a base model; the newest one counts."""

    __tablename__ = "check_results"
    __table_args__ = (
        CheckConstraint("verdict IN ('pass', 'warn', 'fail')", name="verdict_known"),
        Index("ix_check_results_version_base", "version_id", "base_model", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    base_model: Mapped[str] = mapped_column(String(200))
    verdict: Mapped[str] = mapped_column(String(8))
    # engine -> {"verdict", "settings", ...}; the whole report for display.
    engines: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Event(Base):
    """Append-only audit log; webhooks and the change feed read from it."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_scope", "namespace", "adapter", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str | None] = mapped_column(String(64))
    adapter: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Alias(Base):
    """A movable label (``champion``, ``canary-b``) pointing at one version of an adapter."""

    __tablename__ = "aliases"
    __table_args__ = (
        UniqueConstraint("adapter_id", "name", name="uq_aliases_adapter_name"),
        # Showing a version lists its aliases: without this, a scan of every alias.
        Index("ix_aliases_version_id", "version_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Policy(Base):
    """Promotion gates for a namespace (``acme``) or one adapter (``acme/brand-voice``)."""

    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    target: Mapped[str] = mapped_column(String(130), unique=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Token(Base):
    """An API token; only its sha256 is stored."""

    __tablename__ = "tokens"
    __table_args__ = (
        CheckConstraint("role IN ('reader', 'writer', 'maintainer', 'admin')", name="role_known"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    # None: every namespace; otherwise the only namespaces this token can see.
    namespaces: Mapped[list[str] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Where this token's reads are served from when a request names no region (issue 20).
    default_region: Mapped[str | None] = mapped_column(String(32))


class BlobReplica(Base):
    """A blob's copy in one non-primary region (issue 20): needed since its first version
    was pushed, present once copied (``replicate``) or seen (``external``).

    ``missing``: not there yet; ``failed``: the last attempt failed (retried at
    ``next_try_at``); ``present``: there and verified. A worker leases a due row by a
    conditional UPDATE of ``lease_owner``/``lease_until``; an expired lease is free again.
    """

    __tablename__ = "blob_replicas"
    __table_args__ = (
        CheckConstraint("state IN ('missing', 'present', 'failed')", name="state_known"),
        CheckConstraint("attempts >= 0", name="attempts_nonneg"),
        Index("ix_blob_replicas_due", "region", "state", "next_try_at"),
    )

    sha256: Mapped[str] = mapped_column(
        ForeignKey("blobs.sha256", ondelete="CASCADE"), primary_key=True
    )
    region: Mapped[str] = mapped_column(String(32), primary_key=True)
    state: Mapped[str] = mapped_column(String(8), default="missing")
    needed_since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    present_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    next_try_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Webhook(Base):
    """A subscription: events (optionally of one namespace) are POSTed, HMAC-signed."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str | None] = mapped_column(String(64))
    kinds: Mapped[list[str] | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The delivery loop's cursor: every event up to here has been queued for this hook.
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)


class WebhookDelivery(Base):
    """One event to one webhook: attempts, backoff and the last outcome."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_event"),
        CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state_known"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Every attempt: [{"at", "status", "error"}], newest last.
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class MergeInput(Base):
    """Lineage of a merged model: which adapter versions went in, with which weight."""

    __tablename__ = "merge_inputs"
    __table_args__ = (
        UniqueConstraint("output_id", "input_id", name="uq_merge_inputs_pair"),
        Index("ix_merge_inputs_input", "input_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    output_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="CASCADE"))
    input_id: Mapped[int] = mapped_column(ForeignKey("versions.id", ondelete="RESTRICT"))
    weight: Mapped[float] = mapped_column(Float)
    position: Mapped[int] = mapped_column(Integer)


class Job(Base):
    """A merge job. Workers claim queued jobs (or running ones whose lease expired) with
    ``FOR UPDATE SKIP LOCKED`` and renew the lease by heartbeat; the job finishes in one
    transaction that checks the worker still owns it, so it completes exactly once."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            f"state IN ({_sql_list(JobState)})",
            name="state_known",
        ),
        Index("ix_jobs_state", "state", "id"),
        Index("ix_jobs_namespace", "namespace", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="merge")
    # The output adapter's namespace: who owns the job (listed and filtered on it).
    namespace: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    # Live detail for `lorareg jobs show`: current shard, rate, ETA.
    status: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    output_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("versions.id", ondelete="SET NULL")
    )
    worker_id: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JobNamespace(Base):
    """Every namespace a job reads or writes (its inputs' and its output's): a scoped viewer
    sees the job only when its scope covers all of them."""

    __tablename__ = "job_namespaces"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(64), primary_key=True)


class InterferencePair(Base):
    """Cached overlap of two adapter versions, keyed by content (``content_x <= content_y``),
    so a new version costs only its own pairs. ``modules`` maps a module to
    ``[inner, norm_sq_x, norm_sq_y]``; ``algorithm`` invalidates rows when the math changes."""

    __tablename__ = "interference_pairs"
    __table_args__ = (
        UniqueConstraint("content_x", "content_y", "algorithm", name="uq_interference_pair"),
        CheckConstraint("content_x <= content_y", name="ordered"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    content_x: Mapped[str] = mapped_column(String(40))
    content_y: Mapped[str] = mapped_column(String(40))
    algorithm: Mapped[int] = mapped_column(Integer)
    modules: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# Experiment tables live in their own module; importing it here puts them in Base.metadata.
from registry.db import experiment_models as _experiment_models  # noqa: E402, F401

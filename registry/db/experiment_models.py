"""Tables of A/B experiments (migration 0010_experiments); imported by ``models``.

One running experiment per (adapter, name), enforced by a partial unique index, so two
racing creates cannot both start one. Outcome rows are append-only counts that add up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db.models import Adapter, Base, BigId, UTCDateTime, utcnow


class Experiment(Base):
    __tablename__ = "experiments"
    __table_args__ = (
        CheckConstraint("state IN ('running', 'concluded', 'ended')", name="state_known"),
        Index(
            "uq_experiments_one_running",
            "adapter_id",
            "name",
            unique=True,
            sqlite_where=text("state = 'running'"),
            postgresql_where=text("state = 'running'"),
        ),
        Index("ix_experiments_adapter", "adapter_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    adapter_id: Mapped[int] = mapped_column(ForeignKey("adapters.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="running")
    base_model: Mapped[str] = mapped_column(String(200))
    # The assignment salt (see registry.experiments.assignment); random per experiment.
    salt: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)
    # [[start, end, variant], ...] covering buckets 0..9999.
    ranges: Mapped[list[Any]] = mapped_column(JSON)
    # Bumped by every ramp: outcomes record it, so the SRM check compares like with like.
    period: Mapped[int] = mapped_column(Integer, default=0)
    winner: Mapped[str | None] = mapped_column(String(64))
    # The statistics at the decision, kept with it.
    conclusion: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_by: Mapped[str | None] = mapped_column(String(200))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    adapter: Mapped[Adapter] = relationship(lazy="joined")
    variants: Mapped[list[ExperimentVariant]] = relationship(
        order_by="ExperimentVariant.position", cascade="all, delete-orphan", lazy="selectin"
    )


class ExperimentVariant(Base):
    __tablename__ = "experiment_variants"
    __table_args__ = (
        UniqueConstraint("experiment_id", "name", name="uq_experiment_variants_name"),
        Index("ix_experiment_variants_version", "version_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    # Pinned at creation; None only once an admin erased the version.
    version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id", ondelete="SET NULL"))
    # What the user wrote (``@production``, ``3``), for display.
    ref: Mapped[str] = mapped_column(String(200))


class ExperimentOutcome(Base):
    """One recorded batch of outcomes of a variant for a metric."""

    __tablename__ = "experiment_outcomes"
    __table_args__ = (
        CheckConstraint("kind IN ('rate', 'mean')", name="kind_known"),
        CheckConstraint(
            "successes IS NULL OR (successes >= 0 AND trials >= successes)", name="rate_counts"
        ),
        CheckConstraint("n IS NULL OR n >= 0", name="n_nonneg"),
        CheckConstraint("variance IS NULL OR variance >= 0", name="variance_nonneg"),
        Index("ix_experiment_outcomes_experiment", "experiment_id", "variant_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    variant_id: Mapped[int] = mapped_column(
        ForeignKey("experiment_variants.id", ondelete="CASCADE")
    )
    metric: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(8))
    successes: Mapped[int | None] = mapped_column(BigInteger)
    trials: Mapped[int | None] = mapped_column(BigInteger)
    n: Mapped[int | None] = mapped_column(BigInteger)
    mean: Mapped[float | None] = mapped_column(Float)
    variance: Mapped[float | None] = mapped_column(Float)
    period: Mapped[int] = mapped_column(Integer)
    recorded_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

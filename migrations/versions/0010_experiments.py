"""experiments: A/B tests between adapter versions (variants, bucket ranges, outcomes)

Revision ID: 0010_experiments
Revises: 0009_uploads
Create Date: 2026-12-03 12:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_experiments"
down_revision = "0009_uploads"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", _ID, nullable=False),
        sa.Column("adapter_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("base_model", sa.String(length=200), nullable=False),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("metric", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("ranges", sa.JSON(), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("winner", sa.String(length=64), nullable=True),
        sa.Column("conclusion", sa.JSON(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_by", sa.String(length=200), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('running', 'concluded', 'ended')", name=op.f("ck_experiments_state_known")
        ),
        sa.ForeignKeyConstraint(
            ["adapter_id"],
            ["adapters.id"],
            name=op.f("fk_experiments_adapter_id_adapters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
    )
    op.create_index("ix_experiments_adapter", "experiments", ["adapter_id", "id"])
    op.create_index(
        "uq_experiments_one_running",
        "experiments",
        ["adapter_id", "name"],
        unique=True,
        sqlite_where=sa.text("state = 'running'"),
        postgresql_where=sa.text("state = 'running'"),
    )
    op.create_table(
        "experiment_variants",
        sa.Column("id", _ID, nullable=False),
        sa.Column("experiment_id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("version_id", _ID, nullable=True),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_variants_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
            name=op.f("fk_experiment_variants_version_id_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_variants")),
        sa.UniqueConstraint("experiment_id", "name", name="uq_experiment_variants_name"),
    )
    op.create_index("ix_experiment_variants_version", "experiment_variants", ["version_id"])
    op.create_table(
        "experiment_outcomes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("experiment_id", _ID, nullable=False),
        sa.Column("variant_id", _ID, nullable=False),
        sa.Column("metric", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("successes", sa.BigInteger(), nullable=True),
        sa.Column("trials", sa.BigInteger(), nullable=True),
        sa.Column("n", sa.BigInteger(), nullable=True),
        sa.Column("mean", sa.Float(), nullable=True),
        sa.Column("variance", sa.Float(), nullable=True),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('rate', 'mean')", name=op.f("ck_experiment_outcomes_kind_known")
        ),
        sa.CheckConstraint(
            "successes IS NULL OR (successes >= 0 AND trials >= successes)",
            name=op.f("ck_experiment_outcomes_rate_counts"),
        ),
        sa.CheckConstraint("n IS NULL OR n >= 0", name=op.f("ck_experiment_outcomes_n_nonneg")),
        sa.CheckConstraint(
            "variance IS NULL OR variance >= 0",
            name=op.f("ck_experiment_outcomes_variance_nonneg"),
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.id"],
            name=op.f("fk_experiment_outcomes_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["experiment_variants.id"],
            name=op.f("fk_experiment_outcomes_variant_id_experiment_variants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_outcomes")),
    )
    op.create_index(
        "ix_experiment_outcomes_experiment",
        "experiment_outcomes",
        ["experiment_id", "variant_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_experiment_outcomes_experiment", table_name="experiment_outcomes")
    op.drop_table("experiment_outcomes")
    op.drop_index("ix_experiment_variants_version", table_name="experiment_variants")
    op.drop_table("experiment_variants")
    op.drop_index("uq_experiments_one_running", table_name="experiments")
    op.drop_index("ix_experiments_adapter", table_name="experiments")
    op.drop_table("experiments")

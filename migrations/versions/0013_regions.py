"""regions: each blob's copies in the regional stores, and a token's default region

``blob_replicas`` holds one row per (blob, non-primary region): whether the copy is
missing, present or failed, since when it is needed and present (replication lag), and
the lease and retry state of the worker that copies or checks it.

Revision ID: 0013_regions
Revises: 0012_event_notify
Create Date: 2026-12-03 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_regions"
down_revision = "0012_event_notify"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_replicas",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("needed_since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("present_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("next_try_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('missing', 'present', 'failed')",
            name=op.f("ck_blob_replicas_state_known"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_blob_replicas_attempts_nonneg")),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["blobs.sha256"],
            name=op.f("fk_blob_replicas_sha256_blobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sha256", "region", name=op.f("pk_blob_replicas")),
    )
    op.create_index("ix_blob_replicas_due", "blob_replicas", ["region", "state", "next_try_at"])
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("default_region", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("default_region")
    op.drop_index("ix_blob_replicas_due", table_name="blob_replicas")
    op.drop_table("blob_replicas")

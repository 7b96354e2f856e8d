"""uploads: blob bytes each namespace proved it holds (tenant-safe dedup, staging, gc)

Revision ID: 0009_uploads
Revises: 0006_staging_index
Create Date: 2026-12-03 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_uploads"
down_revision = "0008_namespace_quotas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("staging_key", sa.String(length=64), nullable=True),
        sa.Column("touched_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "length(sha256) = 64 AND lower(sha256) = sha256", name=op.f("ck_uploads_sha256_hex")
        ),
        sa.CheckConstraint("size >= 0", name=op.f("ck_uploads_size_nonneg")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_uploads")),
        sa.UniqueConstraint("staging_key", name=op.f("uq_uploads_staging_key")),
    )
    op.create_index("ix_uploads_sha256_namespace", "uploads", ["sha256", "namespace"])
    op.create_index("ix_uploads_touched_at", "uploads", ["touched_at"])


def downgrade() -> None:
    op.drop_index("ix_uploads_touched_at", table_name="uploads")
    op.drop_index("ix_uploads_sha256_namespace", table_name="uploads")
    op.drop_table("uploads")

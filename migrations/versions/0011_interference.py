"""interference_pairs: cached pairwise overlaps of adapter versions, keyed by content ids

Revision ID: 0011_interference
Revises: 0010_experiments
Create Date: 2026-12-03 13:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_interference"
down_revision = "0010_experiments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interference_pairs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("content_x", sa.String(length=40), nullable=False),
        sa.Column("content_y", sa.String(length=40), nullable=False),
        sa.Column("algorithm", sa.Integer(), nullable=False),
        sa.Column("modules", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("content_x <= content_y", name=op.f("ck_interference_pairs_ordered")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interference_pairs")),
        sa.UniqueConstraint(
            "content_x", "content_y", "algorithm", name=op.f("uq_interference_pair")
        ),
    )


def downgrade() -> None:
    op.drop_table("interference_pairs")

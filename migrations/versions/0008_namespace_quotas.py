"""namespace quotas: the most bytes and versions a namespace may hold (NULL: no limit)

Revision ID: 0008_namespace_quotas
Revises: 0006_staging_index
Create Date: 2026-12-03 09:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_namespace_quotas"
down_revision = "0007_job_namespace"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("namespaces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("max_versions", sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            op.f("ck_namespaces_max_bytes_nonneg"), "max_bytes IS NULL OR max_bytes >= 0"
        )
        batch_op.create_check_constraint(
            op.f("ck_namespaces_max_versions_nonneg"), "max_versions IS NULL OR max_versions >= 0"
        )


def downgrade() -> None:
    with op.batch_alter_table("namespaces", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_namespaces_max_versions_nonneg"), type_="check")
        batch_op.drop_constraint(op.f("ck_namespaces_max_bytes_nonneg"), type_="check")
        batch_op.drop_column("max_versions")
        batch_op.drop_column("max_bytes")

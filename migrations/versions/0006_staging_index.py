"""partial index of staging versions (the dashboard's staging filter)

Revision ID: 0006_staging_index
Revises: 0005_indexes
Create Date: 2026-11-29 01:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_staging_index"
down_revision = "0005_indexes"
branch_labels = None
depends_on = None

STAGING = "stage = 'staging'"


def upgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_versions_staging",
            ["adapter_id"],
            unique=False,
            sqlite_where=sa.text(STAGING),
            postgresql_where=sa.text(STAGING),
        )


def downgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_versions_staging",
            sqlite_where=sa.text(STAGING),
            postgresql_where=sa.text(STAGING),
        )

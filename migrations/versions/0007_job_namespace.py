"""jobs carry their namespace; job_namespaces lists every namespace a job touches

Jobs were filtered by the namespace of their output after the LIMIT, in Python, and never
by their inputs. ``jobs.namespace`` (the output's namespace, indexed with the id) and
``job_namespaces`` (output and inputs) let a scoped viewer's job list be filtered in SQL.
Existing rows are backfilled from each job's spec.

Revision ID: 0007_job_namespace
Revises: 0006_staging_index
Create Date: 2026-12-03 09:30:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007_job_namespace"
down_revision = "0006_staging_index"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
BATCH = 1000


def _namespace_of(text: object) -> str:
    return str(text or "").partition("/")[0][:64]


def spec_namespaces(spec: dict[str, Any]) -> tuple[str, set[str]]:
    """The output's namespace and every namespace the job reads or writes."""
    output = _namespace_of(spec.get("output"))
    touched = {output} if output else set()
    for item in spec.get("inputs") or []:
        if isinstance(item, dict):
            ns = _namespace_of(item.get("repo") or item.get("ref"))
            if ns:
                touched.add(ns)
    return output, touched


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("namespace", sa.String(length=64), nullable=True))
    op.create_table(
        "job_namespaces",
        sa.Column("job_id", BigId, nullable=False),
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_job_namespaces_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "namespace", name=op.f("pk_job_namespaces")),
    )
    _backfill()
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("namespace", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index("ix_jobs_namespace", ["namespace", "id"], unique=False)


def _backfill() -> None:
    conn = op.get_bind()
    jobs = sa.table(
        "jobs", sa.column("id", BigId), sa.column("spec", sa.JSON), sa.column("namespace")
    )
    links = sa.table("job_namespaces", sa.column("job_id", BigId), sa.column("namespace"))
    after = 0
    while True:
        rows = conn.execute(
            sa.select(jobs.c.id, jobs.c.spec)
            .where(jobs.c.id > after)
            .order_by(jobs.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for job_id, spec in rows:
            output, touched = spec_namespaces(dict(spec or {}))
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(namespace=output))
            if touched:
                conn.execute(
                    links.insert(), [{"job_id": job_id, "namespace": ns} for ns in sorted(touched)]
                )
        after = rows[-1][0]


def downgrade() -> None:
    op.drop_table("job_namespaces")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_namespace")
        batch_op.drop_column("namespace")

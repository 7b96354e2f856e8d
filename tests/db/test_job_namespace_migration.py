"""Migration 0007: jobs gain their namespace, backfilled from each job's spec, on SQLite and
PostgreSQL; the downgrade removes both again."""

from __future__ import annotations

import json

from sqlalchemy import text

from registry.db.database import Database
from registry.db.migrate import downgrade, upgrade
from tests.db.test_migrations import empty_db  # noqa: F401  (the fixture)

BEFORE = "0006_staging_index"


def _spec(output: str | None, *inputs: str) -> str:
    doc = {"inputs": [{"ref": f"{r}:1", "repo": r} for r in inputs], "method": "linear"}
    if output is not None:
        doc["output"] = output
    return json.dumps(doc)


def test_existing_jobs_are_backfilled(empty_db: Database) -> None:  # noqa: F811
    upgrade(empty_db, BEFORE)
    specs = [
        _spec("acme/merged", "acme/a"),
        _spec("beta/mixed", "beta/b", "acme/a"),
        _spec(None, "gamma/c"),  # a spec from before outputs were always named
    ]
    with empty_db.engine.begin() as c:
        for spec in specs:
            c.execute(
                text(
                    "INSERT INTO jobs (kind, state, spec, progress, status, attempts,"
                    " max_attempts, cancel_requested, created_by, created_at) VALUES"
                    " ('merge', 'queued', :spec, 0, '{}', 0, 3, false, 't', CURRENT_TIMESTAMP)"
                ),
                {"spec": spec},
            )
    upgrade(empty_db, "0007_job_namespace")
    with empty_db.engine.connect() as c:
        owners = c.execute(text("SELECT id, namespace FROM jobs ORDER BY id")).all()
        links = c.execute(
            text("SELECT job_id, namespace FROM job_namespaces ORDER BY job_id, namespace")
        ).all()
    assert [tuple(r) for r in owners] == [(1, "acme"), (2, "beta"), (3, "")]
    assert [tuple(r) for r in links] == [(1, "acme"), (2, "acme"), (2, "beta"), (3, "gamma")]
    downgrade(empty_db, BEFORE)
    with empty_db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 3
        columns = c.execute(text("SELECT * FROM jobs")).keys()
    assert "namespace" not in columns

"""The models and the migrations describe the same schema, and the database enforces it."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import exc, text

from registry.db.database import Database
from registry.db.models import Base


def test_models_match_migrations(db: Database) -> None:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], f"models and migrations drifted: {diff}"


def _seed(db: Database) -> tuple[int, int]:
    with db.write() as s:
        ns = s.execute(
            text(
                "INSERT INTO namespaces (name, created_at)"
                " VALUES ('acme', CURRENT_TIMESTAMP) RETURNING id"
            )
        ).scalar_one()
        ad = s.execute(
            text(
                "INSERT INTO adapters (namespace_id, name, next_number, created_at)"
                " VALUES (:ns, 'a', 1, CURRENT_TIMESTAMP) RETURNING id"
            ),
            {"ns": ns},
        ).scalar_one()
    return ns, ad


VERSION_SQL = (
    "INSERT INTO versions (adapter_id, number, content_id, peft_type, r, lora_alpha,"
    " target_modules, config, size, file_count, author, created_at)"
    " VALUES (:ad, :n, :cid, 'LORA', 4, 8, '[]', '{}', 1, 1, 'x', CURRENT_TIMESTAMP)"
)


def test_version_number_unique_per_adapter(db: Database) -> None:
    _, ad = _seed(db)
    with db.write() as s:
        s.execute(text(VERSION_SQL), {"ad": ad, "n": 1, "cid": "a" * 40})
    with pytest.raises(exc.IntegrityError), db.write() as s:
        s.execute(text(VERSION_SQL), {"ad": ad, "n": 1, "cid": "b" * 40})


def test_content_id_and_sha256_formats_enforced(db: Database) -> None:
    _, ad = _seed(db)
    with pytest.raises(exc.IntegrityError), db.write() as s:
        s.execute(text(VERSION_SQL), {"ad": ad, "n": 1, "cid": "short"})
    with pytest.raises(exc.IntegrityError), db.write() as s:
        s.execute(
            text("INSERT INTO blobs (sha256, size, created_at) VALUES (:s, 1, CURRENT_TIMESTAMP)"),
            {"s": "A" * 64},
        )


def test_foreign_keys_enforced(db: Database) -> None:
    with pytest.raises(exc.IntegrityError), db.write() as s:
        s.execute(
            text(
                "INSERT INTO adapters (namespace_id, name, next_number, created_at)"
                " VALUES (999, 'orphan', 1, CURRENT_TIMESTAMP)"
            )
        )


def test_a_value_the_database_refuses_is_invalid_input_not_an_outage(db: Database) -> None:
    """PostgreSQL refuses NUL in text (a DataError); that is the caller's fault, so it must
    surface as InvalidInput (422 / exit 1), never as "database unavailable, retry"."""
    from registry.catalog.queries import list_adapters
    from registry.errors import InvalidInput

    if db.url.startswith("sqlite"):
        with db.read() as s:  # SQLite holds NUL in text: nothing to refuse
            assert list_adapters(s, after="acme/\x00a") == []
        return
    with pytest.raises(InvalidInput, match="cannot contain NUL"), db.read() as s:
        list_adapters(s, after="acme/\x00a")
    with pytest.raises(InvalidInput, match="integer out of range"), db.write() as s:
        s.execute(text("SELECT CAST(:n AS INTEGER)"), {"n": 10**12})

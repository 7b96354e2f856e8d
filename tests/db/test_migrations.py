"""Every migration upgrades with data present and downgrades, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from registry.db.database import Database
from registry.db.migrate import alembic_config, current_revision, downgrade, upgrade
from tests.fixtures.catalog import PG_ADMIN_URL


@pytest.fixture
def empty_db(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Database]:
    """A database with no tables at all (migrations start from nothing)."""
    if db_backend == "sqlite":
        d = Database(f"sqlite:///{tmp_path / 'm.db'}")
        yield d
        d.dispose()
        return
    name = f"lorareg_mig_{request.node.name[-20:].strip('[]-').replace('-', '_')}_{id(tmp_path) % 10**6}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    d = Database(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    yield d
    d.dispose()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _revisions(db: Database) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(db))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


SEED = [
    "INSERT INTO namespaces (name, created_at) VALUES ('acme', CURRENT_TIMESTAMP)",
    "INSERT INTO adapters (namespace_id, name, next_number, created_at) VALUES (1, 'a', 2, CURRENT_TIMESTAMP)",
    "INSERT INTO blobs (sha256, size, created_at) VALUES ('"
    + "a" * 64
    + "', 3, CURRENT_TIMESTAMP)",
    "INSERT INTO versions (adapter_id, number, content_id, base_model, peft_type, r, lora_alpha,"
    " target_modules, config, size, file_count, author, created_at) VALUES (1, 1, '"
    + "b" * 40
    + "', 'base', 'LORA', 4, 8, '[]', '{}', 3, 1, 'x', CURRENT_TIMESTAMP)",
    "INSERT INTO version_files (version_id, path, sha256, size) VALUES (1, 'f', '"
    + "a" * 64
    + "', 3)",
    "INSERT INTO events (kind, actor, payload, created_at) VALUES ('version.created', 'x', '{}', CURRENT_TIMESTAMP)",
]


def test_upgrade_step_by_step_with_data_then_downgrade(empty_db: Database) -> None:
    revs = _revisions(empty_db)
    assert revs[0] == "0001_core" and len(revs) >= 4
    upgrade(empty_db, revs[0])
    with empty_db.engine.begin() as c:
        for sql in SEED:
            c.execute(text(sql))
    for rev in revs[1:]:
        upgrade(empty_db, rev)
        assert current_revision(empty_db) == rev
        with empty_db.engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM versions")).scalar_one() == 1
            assert c.execute(text("SELECT path FROM version_files")).scalar_one() == "f"
    with empty_db.engine.connect() as c:
        assert c.execute(text("SELECT kind, stage FROM versions")).one() == ("adapter", None)
    for rev in reversed(revs[:-1]):
        downgrade(empty_db, rev)
        assert current_revision(empty_db) == rev
        with empty_db.engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM versions")).scalar_one() == 1
    downgrade(empty_db, "base")
    assert current_revision(empty_db) is None
    upgrade(empty_db)
    assert current_revision(empty_db) == revs[-1]

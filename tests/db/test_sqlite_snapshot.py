"""A new embedded catalog from the schema snapshot is the catalog the migrations build."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from registry.config import load_settings
from registry.db import sqlite_snapshot
from registry.db.database import Database
from registry.db.migrate import downgrade, upgrade
from registry.db.schema_version import head_revisions, is_current
from registry.runtime import open_runtime


def _normal(statement: str) -> str:
    """A statement with its CREATE TABLE items in a fixed order: SQLite's table rebuilds in
    the migrations list a table's constraints in an order that varies from run to run."""
    head, paren, body = statement.partition("(")
    if not head.upper().startswith("CREATE TABLE") or not paren:
        return statement
    body, _, tail = body.rpartition(")")
    items, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(body[start:i].strip())
            start = i + 1
    items.append(body[start:].strip())
    return f"{head}({', '.join(sorted(items))}){tail}"


def _dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return sorted(_normal(s) for s in conn.iterdump())
    finally:
        conn.close()


def _schema(path: Path) -> set[tuple[str, str, str, str]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
        return {(t, n, tbl, _normal(sql or "")) for t, n, tbl, sql in rows}
    finally:
        conn.close()


def test_the_snapshot_is_at_the_heads_and_up_to_date(tmp_path: Path) -> None:
    """Fails after a migration is added: run `python -m registry.db.sqlite_snapshot`."""
    revisions, statements = sqlite_snapshot.read_snapshot()
    assert revisions == head_revisions(), "regenerate: python -m registry.db.sqlite_snapshot"
    assert statements
    fresh = sqlite_snapshot.read_snapshot()[1]
    generated = tmp_path / "now.sql"
    generated.write_text(sqlite_snapshot.generate())
    assert sorted(map(_normal, fresh)) == sorted(
        map(_normal, sqlite_snapshot.read_snapshot(generated)[1])
    ), "regenerate: python -m registry.db.sqlite_snapshot"


def test_a_catalog_from_the_snapshot_equals_the_migrated_one(tmp_path: Path) -> None:
    migrated = tmp_path / "migrated.db"
    db = Database(f"sqlite:///{migrated}")
    upgrade(db)
    db.dispose()
    fresh = tmp_path / "fresh.db"
    db = Database(f"sqlite:///{fresh}")
    try:
        assert sqlite_snapshot.create_from_snapshot(db)
        assert is_current(db)
        assert not sqlite_snapshot.create_from_snapshot(db)  # never over an existing schema
    finally:
        db.dispose()
    assert _dump(fresh) == _dump(migrated)
    assert _schema(fresh) == _schema(migrated)
    # Alembic agrees it is at the head, and can take it down and up again.
    db = Database(f"sqlite:///{fresh}")
    try:
        downgrade(db, "0011_interference")
        upgrade(db)
        assert is_current(db)
    finally:
        db.dispose()


def test_a_stale_snapshot_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "stale.sql"
    text = sqlite_snapshot.SNAPSHOT.read_text()
    first, _, rest = text.partition("\n")
    stale.write_text("-- revisions: 0011_interference\n" + rest)
    monkeypatch.setattr(sqlite_snapshot, "SNAPSHOT", stale)
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert not sqlite_snapshot.create_from_snapshot(db)
    finally:
        db.dispose()
    # The embedded runtime then migrates with Alembic: the same catalog.
    rt = open_runtime(
        load_settings(home=tmp_path / "home", storage_url=(tmp_path / "blobs").as_uri())
    )
    try:
        assert is_current(rt.db)
    finally:
        rt.close()


def test_a_damaged_snapshot_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.sql"
    bad.write_text("-- revisions: 0012_event_notify\nCREATE TABLE x (\n")
    monkeypatch.setattr(sqlite_snapshot, "SNAPSHOT", bad)
    assert sqlite_snapshot.read_snapshot() == (frozenset(), [])
    monkeypatch.setattr(sqlite_snapshot, "SNAPSHOT", tmp_path / "absent.sql")
    assert sqlite_snapshot.read_snapshot() == (frozenset(), [])

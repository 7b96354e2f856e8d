"""The one-query schema check agrees with Alembic, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from registry.db.database import Database
from registry.db.migrate import alembic_config, downgrade, upgrade
from registry.db.schema_version import head_revisions, is_current, stored_revisions
from tests.db.test_migrations import _revisions, empty_db  # noqa: F401  (fixture)


def test_heads_read_from_the_files_are_alembics(tmp_path: Path) -> None:
    cfg = alembic_config(Database(f"sqlite:///{tmp_path / 'h.db'}"))
    assert head_revisions() == frozenset(ScriptDirectory.from_config(cfg).get_heads())


def test_current_only_at_the_head(empty_db: Database) -> None:  # noqa: F811
    assert stored_revisions(empty_db) == frozenset()
    assert not is_current(empty_db)
    revs = _revisions(empty_db)
    upgrade(empty_db, revs[-2])
    assert stored_revisions(empty_db) == {revs[-2]}
    assert not is_current(empty_db)
    upgrade(empty_db)
    assert is_current(empty_db)
    downgrade(empty_db, revs[0])
    assert not is_current(empty_db)


def _migration(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(f'"""{name}"""\n{body}\ndef upgrade():\n    pass\n')


def test_branches_merges_and_annotations(tmp_path: Path) -> None:
    _migration(tmp_path, "a", 'revision = "a"\ndown_revision = None')
    _migration(tmp_path, "b", 'revision: str = "b"  # typed, as newer templates write it\n'
                              'down_revision: str | None = "a"')  # fmt: skip
    _migration(tmp_path, "c", "revision = 'c'\ndown_revision = 'a'")
    assert head_revisions(tmp_path) == {"b", "c"}
    _migration(tmp_path, "d", 'revision = "d"\ndown_revision = ("b", "c")')
    assert head_revisions(tmp_path) == {"d"}


def test_a_revision_it_cannot_read_is_left_to_alembic(tmp_path: Path) -> None:
    _migration(tmp_path, "a", 'revision = "a"\ndown_revision = None')
    _migration(tmp_path, "b", 'revision = "b" + "x"\ndown_revision = "a"')
    # Not a plain literal: the answer comes from Alembic (the project's real migrations).
    assert head_revisions(tmp_path) == head_revisions()

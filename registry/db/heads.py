"""The migrations' head revisions, read from their files without SQLAlchemy or Alembic.

Apart from ``schema_version`` (which asks the database) so that a stdlib ``sqlite3`` reader
(``client.repush``) can check the schema without importing SQLAlchemy. The migrations'
own files name each revision and its parent; anything they do not say plainly (a
computed revision id) falls back to Alembic, which stays the authority.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

# migrations/ sits beside the registry package in the source tree (installed editable).
MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"

_ASSIGNMENT = re.compile(
    r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*(?:#.*)?$", re.MULTILINE
)


def _literal(source: str) -> object:
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return ...  # not a plain literal: let Alembic work it out


def head_revisions(versions: Path | None = None) -> frozenset[str]:
    """The revisions no migration builds on, read from the migration files in
    ``versions`` (default: the project's, read once per process)."""
    return _project_heads() if versions is None else _read_heads(versions)


@lru_cache(maxsize=1)
def _project_heads() -> frozenset[str]:
    return _read_heads(MIGRATIONS / "versions")


def _read_heads(versions: Path) -> frozenset[str]:
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(versions.glob("*.py")):
        text_ = path.read_text(encoding="utf-8")
        found: dict[str, str] = {m[1]: m[2] for m in _ASSIGNMENT.finditer(text_)}
        revision = _literal(found.get("revision", "..."))
        down = _literal(found.get("down_revision", "None"))
        if not isinstance(revision, str):
            return _alembic_heads()
        if isinstance(down, str):
            down = (down,)
        if down is not None and not (
            isinstance(down, tuple | list) and all(isinstance(d, str) for d in down)
        ):
            return _alembic_heads()
        revisions.add(revision)
        parents.update(down or ())
    return frozenset(revisions - parents)


def _alembic_heads() -> frozenset[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())

"""Is the catalog's schema current? One query, without loading Alembic.

Every command opens the catalog, and importing Alembic to ask costs a third of a second of
start-up. The migrations' own files name each revision and its parent, so the heads are
read from them (once per process); the database answers with one ``SELECT`` of
``alembic_version``. Anything these files do not say plainly (a computed revision id) falls
back to Alembic, which stays the authority (``lorareg db upgrade`` runs it).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from registry.db.database import Database
from registry.db.heads import MIGRATIONS, head_revisions

__all__ = ["MIGRATIONS", "head_revisions", "is_current", "stored_revisions"]


def stored_revisions(db: Database) -> frozenset[str]:
    """The revisions the database says it is at; empty for a catalog never migrated."""
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            return frozenset(rows)
    except DBAPIError as exc:
        if _missing_table(exc):
            return frozenset()
        raise


def _missing_table(exc: DBAPIError) -> bool:
    msg = str(exc.orig).lower()
    return "alembic_version" in msg and ("no such table" in msg or "does not exist" in msg)


def is_current(db: Database) -> bool:
    """True when the database is at every head of the migrations (one query)."""
    return stored_revisions(db) == head_revisions()

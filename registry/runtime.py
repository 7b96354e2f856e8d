"""The running pieces a process needs: settings, the catalog database and the blob store.

Built explicitly (by the app factory, the CLI or a test), never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.config import Settings
from registry.db.database import Database
from registry.errors import InvalidInput
from registry.storage import open_store
from registry.storage.base import BlobStore

# The optional extra that brings each SQL dialect's driver (pyproject.toml).
_DRIVER_EXTRAS = {"postgresql": "postgres", "postgres": "postgres"}


@dataclass
class Runtime:
    settings: Settings
    db: Database
    store: BlobStore

    def close(self) -> None:
        self.db.dispose()


def open_database(settings: Settings) -> Database:
    """The configured catalog; a URL that does not parse, names an unknown database or
    needs a driver that is not installed is InvalidInput saying what to do."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    url = settings.effective_database_url
    dialect = url.split(":", 1)[0].split("+", 1)[0].lower()
    try:
        return Database(url)
    except NoSuchModuleError:
        raise InvalidInput(
            f"LORAREG_DATABASE_URL: unknown database kind {dialect!r};"
            " use sqlite:///path or postgresql://user@host/db"
        ) from None
    except ArgumentError:
        raise InvalidInput(
            "LORAREG_DATABASE_URL is not a database URL;"
            " use sqlite:///path or postgresql://user@host/db"
        ) from None
    except ModuleNotFoundError as exc:
        extra = _DRIVER_EXTRAS.get(dialect)
        advice = (
            f"install it with: pip install 'lorareg[{extra}]'"
            if extra
            else "lorareg supports SQLite and PostgreSQL (pip install 'lorareg[postgres]')"
        )
        raise InvalidInput(
            f"LORAREG_DATABASE_URL needs the {dialect} driver ({exc.name}), which is not"
            f" installed; {advice}"
        ) from None


def open_runtime(settings: Settings, *, migrate: bool = False) -> Runtime:
    """Connect to the configured catalog and storage; with ``migrate``, upgrade the schema.

    Embedded mode (SQLite) migrates on first use so ``lorareg push`` just works; production
    databases are only migrated by ``lorareg db upgrade``.
    """
    store = open_store(settings)
    db = open_database(settings)
    if migrate or db.is_sqlite:
        # One query answers "current?"; Alembic is imported only when there is work to do.
        from registry.db.schema_version import is_current

        if not is_current(db):
            # A new embedded catalog: its schema from the snapshot of the migrated one.
            from registry.db.sqlite_snapshot import create_from_snapshot

            if not create_from_snapshot(db):
                from registry.db.migrate import upgrade

                upgrade(db)
    return Runtime(settings=settings, db=db, store=store)

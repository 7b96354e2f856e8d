"""The running pieces a process needs: settings, the catalog database and the blob store.

Built explicitly (by the app factory, the CLI or a test), never at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.config import Settings
from registry.db.database import Database
from registry.storage import open_store
from registry.storage.base import BlobStore


@dataclass
class Runtime:
    settings: Settings
    db: Database
    store: BlobStore

    def close(self) -> None:
        self.db.dispose()


def open_runtime(settings: Settings, *, migrate: bool = False) -> Runtime:
    """Connect to the configured catalog and storage; with ``migrate``, upgrade the schema.

    Embedded mode (SQLite) migrates on first use so ``lorareg push`` just works; production
    databases are only migrated by ``lorareg db upgrade``.
    """
    db = Database(settings.effective_database_url)
    if migrate or db.is_sqlite:
        from registry.db.migrate import is_current, upgrade

        if not is_current(db):
            upgrade(db)
    return Runtime(settings=settings, db=db, store=open_store(settings))

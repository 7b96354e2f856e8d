"""Acting on this process's own commits, for caches that must not serve what it just
changed (the resolve cache, the experiment definitions)."""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import event

from registry.db.database import Database

T = TypeVar("T")
_marks = itertools.count()


def after_commits(db: Database, owner: T, changed: Callable[[T], None]) -> None:
    """Call ``changed(owner)`` after every commit through ``db`` has landed, for as long as
    ``owner`` lives (it is held weakly). The "commit" event fires before the commit lands,
    so it only marks the connection; the pool's "checkin" (after the commit, when the
    session lets go) acts on the mark. Each call has its own mark, so several owners on
    one database all hear of every commit."""
    mark = f"lorareg.committed.{next(_marks)}"
    ref = weakref.ref(owner)

    def on_commit(conn: Any) -> None:
        conn.info[mark] = True

    def on_checkin(_dbapi_conn: Any, record: Any) -> None:
        target = ref()
        if record is not None and record.info.pop(mark, False) and target is not None:
            changed(target)

    # SQLite writes go through a second engine; Database has no public name for it.
    writer = getattr(db, "_write_engine", db.engine)
    for engine in {id(e): e for e in (db.engine, writer)}.values():
        event.listen(engine, "commit", on_commit)
        event.listen(engine, "checkin", on_checkin)

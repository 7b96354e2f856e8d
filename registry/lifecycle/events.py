"""The change feed: every change is an event; readers follow it by id."""

from __future__ import annotations

from sqlalchemy import func, select

from registry.catalog.records import event_info
from registry.db import models as m
from registry.db.database import Database
from registry.domain import EventInfo


def events_after(
    db: Database,
    since: int,
    *,
    namespaces: frozenset[str] | None = None,
    namespace: str | None = None,
    limit: int = 100,
) -> list[EventInfo]:
    """Events with id > ``since``, oldest first, limited to what the caller may see.

    Events without a namespace (token changes) are visible only to unscoped callers.
    """
    q = select(m.Event).where(m.Event.id > since).order_by(m.Event.id).limit(limit)
    if namespaces is not None:
        q = q.where(m.Event.namespace.in_(sorted(namespaces)))
    if namespace is not None:
        q = q.where(m.Event.namespace == namespace)
    with db.read() as s:
        return [event_info(r) for r in s.scalars(q)]


def last_event_id(db: Database) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.coalesce(func.max(m.Event.id), 0))) or 0)


def namespace_history(db: Database, namespace: str, *, limit: int = 1000) -> list[EventInfo]:
    with db.read() as s:
        rows = s.scalars(
            select(m.Event).where(m.Event.namespace == namespace).order_by(m.Event.id).limit(limit)
        )
        return [event_info(r) for r in rows]

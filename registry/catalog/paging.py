"""Adapters in ``ns/name`` order, a page after (or before) a key, at a cost that follows the
page, not the size of a namespace or of the catalog.

A page is read in two steps. The rest of the key's own namespace is a range on the unique
``(namespace_id, name)`` index (the namespace id as a sub-select, a constant to the
planner), so it stops after ``limit`` rows. The namespaces after it come from a join that
walks namespaces by name and each one's adapters by name. SQLite runs that join as nested
loops in index order and stops at the limit. PostgreSQL does not know that the inner
index scan is in name order, so it sorts each namespace's adapters (an incremental sort):
a page would read all of its first namespace, 50,000 rows for a tenant that size. There a
LATERAL sub-select takes at most ``limit`` adapters of each namespace, so the sort only
ever holds a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from registry.db import models as m

# A column of a model (``Adapter.id``) or any expression over one.
Column = ColumnElement[Any] | InstrumentedAttribute[Any]


def adapters_in_order(
    session: Session,
    columns: Sequence[Column],
    *,
    limit: int,
    key: str | None = None,
    forward: bool = True,
    where_adapter: Sequence[ColumnElement[bool]] = (),
    where_namespace: Sequence[ColumnElement[bool]] = (),
) -> list[tuple[Any, ...]]:
    """``(namespace, name, *columns)`` of up to ``limit`` adapters after ``key`` (``ns/name``;
    ``ns`` alone: that namespace's first), or before it when not ``forward`` (then nearest
    first, in descending order). ``columns`` and ``where_adapter`` are expressions over
    ``Adapter`` (correlated sub-selects included); ``where_namespace`` over ``Namespace``."""
    A, N = m.Adapter, m.Namespace
    rows: list[tuple[Any, ...]] = []
    ns: str | None = None
    if key is not None:
        ns, _, nm = key.partition("/")
        ns_id = select(N.id).where(N.name == ns).scalar_subquery()
        q = (
            select(N.name, A.name, *columns)
            .select_from(A)
            .join(N, N.id == A.namespace_id)
            .where(A.namespace_id == ns_id, N.name == ns, *where_adapter, *where_namespace)
        )
        if forward:
            q = q.where(A.name > nm).order_by(A.name)
        else:
            q = q.where(A.name < nm).order_by(A.name.desc())
        rows = [tuple(r) for r in session.execute(q.limit(limit))]
    if len(rows) < limit:
        rows += _later_namespaces(
            session,
            columns,
            after=ns,
            forward=forward,
            limit=limit - len(rows),
            where_adapter=where_adapter,
            where_namespace=where_namespace,
        )
    return rows


def _later_namespaces(
    session: Session,
    columns: Sequence[Column],
    *,
    after: str | None,
    forward: bool,
    limit: int,
    where_adapter: Sequence[ColumnElement[bool]],
    where_namespace: Sequence[ColumnElement[bool]],
) -> list[tuple[Any, ...]]:
    """The first ``limit`` adapters of the namespaces after (or before) ``after``."""
    A, N = m.Adapter, m.Namespace
    ns_order = N.name if forward else N.name.desc()
    if session.get_bind().dialect.name == "postgresql":
        labelled = [A.name.label("adapter_name")]
        labelled += [c.label(f"c{i}") for i, c in enumerate(columns)]
        inner = (
            select(*labelled)
            .where(A.namespace_id == N.id, *where_adapter)
            .order_by(A.name if forward else A.name.desc())
            .limit(limit)
            .lateral("page")
        )
        cols = [inner.c[f"c{i}"] for i in range(len(columns))]
        name: Column = inner.c.adapter_name
        q = select(N.name, name, *cols).select_from(N).join(inner, true())
    else:
        name = A.name
        q = (
            select(N.name, A.name, *columns)
            .select_from(A)
            .join(N, N.id == A.namespace_id)
            .where(*where_adapter)
        )
    q = q.where(*where_namespace)
    if after is not None:
        q = q.where(N.name > after if forward else N.name < after)
    q = q.order_by(ns_order, name if forward else name.desc())
    return [tuple(r) for r in session.execute(q.limit(limit))]

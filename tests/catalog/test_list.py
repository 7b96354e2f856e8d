"""``list_adapters``: keyset pages that cover every adapter once, and the same answers as the
implementation it replaced (which aggregated every version of the page's adapters and
matched newest versions through an adapter x number cross product)."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from registry.catalog import queries
from registry.db import models as m
from registry.db.database import Database
from registry.domain import AdapterSummary
from tests.web.seed import seed_catalog


def list_before(
    session: Session,
    namespace: str | None = None,
    *,
    limit: int = 1000,
    after: str | None = None,
    visible: frozenset[str] | None = None,
) -> list[AdapterSummary]:
    """The implementation before the scale work, kept verbatim as the oracle."""
    q = (
        select(m.Adapter.id, m.Namespace.name, m.Adapter.name)
        .join(m.Namespace)
        .order_by(m.Namespace.name, m.Adapter.name)
        .limit(limit)
    )
    if namespace is not None:
        q = q.where(m.Namespace.name == namespace)
    if visible is not None:
        q = q.where(m.Namespace.name.in_(sorted(visible)))
    if after:
        ns, _, nm = after.partition("/")
        q = q.where((m.Namespace.name > ns) | ((m.Namespace.name == ns) & (m.Adapter.name > nm)))
    page = session.execute(q).all()
    ids = [row[0] for row in page]
    if not ids:
        return []
    V = m.AdapterVersion
    stats = {
        aid: (n, latest, updated)
        for aid, n, latest, updated in session.execute(
            select(V.adapter_id, func.count(), func.max(V.number), func.max(V.created_at))
            .where(V.adapter_id.in_(ids))
            .group_by(V.adapter_id)
        )
    }
    newest = {aid: latest for aid, (_, latest, _) in stats.items()}
    bases = {
        aid: base
        for aid, number, base in session.execute(
            select(V.adapter_id, V.number, V.base_model)
            .where(V.adapter_id.in_(ids))
            .where(V.number.in_(sorted(set(newest.values()))))
        )
        if newest.get(aid) == number
    }
    out = []
    for aid, ns_name, name in page:
        if aid not in stats:
            continue
        n, latest, updated = stats[aid]
        out.append(
            AdapterSummary(
                namespace=ns_name,
                name=name,
                versions=n,
                latest=latest,
                base_model=bases.get(aid),
                updated_at=updated,
            )
        )
    return out


@pytest.fixture
def varied(db: Database) -> Database:
    """4 namespaces x 6 adapters x 1..9 versions (every adapter a different count), newest
    versions on varied bases, a gap where a version was erased, and an adapter with none."""
    seed_catalog(db, namespaces=4, adapters_per_namespace=6, versions_per_adapter=9)
    V, A, N = m.AdapterVersion, m.Adapter, m.Namespace
    with db.write() as s:
        s.execute(delete(m.Tag))
        ids = list(s.scalars(select(A.id).join(N).order_by(N.name, A.name)))
        for k, aid in enumerate(ids):
            # Adapter k keeps versions 1..(k % 9 + 1): counts and newest numbers differ.
            s.execute(delete(V).where(V.adapter_id == aid, V.number > k % 9 + 1))
            if k % 3 == 0:
                s.execute(update(V).where(V.adapter_id == aid).values(base_model="Qwen/Qwen2.5-7B"))
            if k % 4 == 1:
                s.execute(
                    update(V).where(V.adapter_id == aid, V.number == 1).values(base_model=None)
                )
        # ns000/adapter-00004 (k = 4) loses version 2: versions 1, 3, 4, 5.
        s.execute(delete(V).where(V.adapter_id == ids[4], V.number == 2))
        ns = s.scalar(select(N.id).where(N.name == "ns002"))
        s.execute(insert(A).values(namespace_id=ns, name="empty", next_number=1))
    return db


def walk(db: Database, limit: int, **kw: object) -> list[AdapterSummary]:
    out: list[AdapterSummary] = []
    after: str | None = None
    with db.read() as s:
        while True:
            page = queries.list_adapters(s, limit=limit, after=after, **kw)  # type: ignore[arg-type]
            out += page
            if len(page) < limit:
                return out
            after = f"{page[-1].namespace}/{page[-1].name}"


def test_pages_answer_as_before(varied: Database) -> None:
    cases: list[dict[str, object]] = [
        {},
        {"namespace": "ns002"},
        {"namespace": "ns003", "after": "ns003/adapter-00002"},
        {"after": "ns001/adapter-00004", "limit": 7},
        {"limit": 1},
        {"visible": frozenset({"ns000", "ns003"}), "limit": 5},
        {"namespace": "ns001", "visible": frozenset({"ns000"})},
        {"namespace": "nope"},
        {"namespace": "ns002", "after": "ns001/adapter-00003"},
        {"namespace": "ns002", "after": "ns003/adapter-00000"},
        {"namespace": "ns002", "after": "ns002"},
        {"after": "ns001", "limit": 3},
        {"after": "zz/"},
    ]
    with varied.read() as s:
        for kw in cases:
            now = queries.list_adapters(s, **kw)  # type: ignore[arg-type]
            assert now == list_before(s, **kw), kw  # type: ignore[arg-type]
        everything = queries.list_adapters(s)
    assert len(everything) == 24  # "empty" has no versions and is not listed
    assert {a.versions for a in everything} == set(range(1, 10))
    gap = next(a for a in everything if a.name == "adapter-00004" and a.namespace == "ns000")
    assert (gap.versions, gap.latest) == (4, 5)
    assert {a.base_model for a in everything} >= {"Qwen/Qwen2.5-7B", "meta-llama/Llama-3.1-8B"}


def test_keyset_walk_covers_every_adapter_once(varied: Database) -> None:
    with varied.read() as s:
        everything = queries.list_adapters(s)
        # After ns002's last adapter comes "empty" (no versions): the page is filled from
        # ns003 rather than cut short (the old query answered one row here).
        page = queries.list_adapters(s, after="ns002/adapter-00005", limit=2)
        assert [f"{a.namespace}/{a.name}" for a in page] == [
            "ns003/adapter-00000",
            "ns003/adapter-00001",
        ]
        assert len(list_before(s, after="ns002/adapter-00005", limit=2)) == 1
    for limit in (1, 4, 7):
        assert walk(varied, limit) == everything, limit
    assert walk(varied, 2, namespace="ns001") == [a for a in everything if a.namespace == "ns001"]

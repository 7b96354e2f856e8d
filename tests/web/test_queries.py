"""The dashboard's list queries: keyset pages that neither skip nor repeat rows, filters that
page too, namespace scopes, no OFFSET or COUNT(*), and (slow) page times at 1M versions."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, update

from registry.catalog import browse
from registry.catalog.refs import Repo
from registry.db import models as m
from registry.db.database import Database
from registry.runtime import Runtime
from tests.web.seed import seed_catalog


@pytest.fixture
def seeded(db: Database) -> Database:
    seed_catalog(db, namespaces=3, adapters_per_namespace=7, versions_per_adapter=5)
    return db


def walk(db: Database, flt: browse.AdapterFilter, limit: int) -> tuple[list[str], list[str]]:
    """Every key page by page forwards, then backwards from the last page."""
    forward: list[str] = []
    after: str | None = None
    with db.read() as s:
        while True:
            page = browse.adapter_page(s, flt, after=after, limit=limit)
            assert page.has_prev == (after is not None)
            forward += [a.key for a in page.items]
            if not page.has_next:
                break
            after = page.items[-1].key
        before: str | None = forward[-1] if forward else None
        backward: list[str] = forward[-1:]
        while before is not None:
            page = browse.adapter_page(s, flt, before=before, limit=limit)
            assert page.has_next
            backward = [a.key for a in page.items] + backward
            before = page.items[0].key if page.has_prev else None
    return forward, backward


def test_adapter_pages_cover_every_adapter_once(seeded: Database) -> None:
    everything = [f"ns{i:03d}/adapter-{j:05d}" for i in range(3) for j in range(7)]
    for limit in (1, 4, 7, 50):
        forward, backward = walk(seeded, browse.AdapterFilter(), limit)
        assert forward == everything and backward == everything, limit
    with seeded.read() as s:
        first = browse.adapter_page(s, browse.AdapterFilter(), limit=2).items[0]
    assert (first.latest, first.base_model, first.author) == (5, "meta-llama/Llama-3.1-8B", "seed")


def test_filters_page_too(seeded: Database) -> None:
    forward, backward = walk(seeded, browse.AdapterFilter(namespace="ns001", search="0000"), 3)
    assert forward == backward == [f"ns001/adapter-{j:05d}" for j in range(7)]
    forward, _ = walk(seeded, browse.AdapterFilter(tag_key="team", tag_value="ns002"), 2)
    assert forward == [f"ns002/adapter-{j:05d}" for j in range(7)]
    forward, _ = walk(seeded, browse.AdapterFilter(search="adapter-00003"), 2)
    assert forward == [f"ns{i:03d}/adapter-00003" for i in range(3)]
    assert walk(seeded, browse.AdapterFilter(base_model="nope"), 2) == ([], [])


def test_stage_filter_pages_too(seeded: Database) -> None:
    V, A, N = m.AdapterVersion, m.Adapter, m.Namespace
    with seeded.write() as s:
        s.execute(update(V).where(V.number == 3, V.adapter_id % 3 == 0).values(stage="production"))
        s.execute(update(V).where(V.number == 2, V.adapter_id % 2 == 0).values(stage="staging"))
        chosen = sorted(
            f"{ns}/{name}"
            for ns, name in s.execute(
                select(N.name, A.name).join(N, N.id == A.namespace_id).where(A.id % 3 == 0)
            )
        )
        staged = sorted(
            f"{ns}/{name}"
            for ns, name in s.execute(
                select(N.name, A.name).join(N, N.id == A.namespace_id).where(A.id % 2 == 0)
            )
        )
    flt = browse.AdapterFilter(stage="production")
    for limit in (1, 2, 50):
        forward, backward = walk(seeded, flt, limit)
        assert forward == backward == chosen, limit
    with seeded.read() as s:
        page = browse.adapter_page(s, flt, limit=1)
    assert page.items[0].production == ((3, "meta-llama/Llama-3.1-8B"),)
    for limit in (1, 3):
        forward, backward = walk(seeded, browse.AdapterFilter(stage="staging"), limit)
        assert forward == backward == staged, limit
    with pytest.raises(ValueError, match="no index"):
        walk(seeded, browse.AdapterFilter(stage="archived"), 2)


def test_namespace_scope_hides_other_namespaces(seeded: Database) -> None:
    scope = frozenset({"ns002"})
    forward, _ = walk(seeded, browse.AdapterFilter(visible=scope), 4)
    assert {k.split("/")[0] for k in forward} == {"ns002"}
    with seeded.read() as s:
        assert browse.namespace_names(s, visible=scope) == ["ns002"]
        assert browse.namespace_names(s) == ["ns000", "ns001", "ns002"]


def test_version_pages(seeded: Database) -> None:
    repo = Repo("ns001", "adapter-00004")
    with seeded.read() as s:
        p1 = browse.version_page(s, repo, limit=2)
        p2 = browse.version_page(s, repo, older_than=p1.items[-1].number, limit=2)
        p3 = browse.version_page(s, repo, older_than=p2.items[-1].number, limit=2)
        back = browse.version_page(s, repo, newer_than=p2.items[0].number, limit=2)
    assert [[v.number for v in p.items] for p in (p1, p2, p3, back)] == [
        [5, 4],
        [3, 2],
        [1],
        [5, 4],
    ]
    assert (p1.has_prev, p1.has_next, p3.has_prev, p3.has_next) == (False, True, True, False)
    assert (back.has_prev, back.has_next) == (False, True)


@contextmanager
def statements(db: Database) -> Iterator[list[tuple[str, bool]]]:
    """Each statement run: its SQL and whether it carries an OFFSET. (SQLite's compiler
    prints ``LIMIT ? OFFSET ?`` for every LIMIT, so the clause is checked, not the text.)"""
    seen: list[tuple[str, bool]] = []

    def record(_conn: Any, clause: Any, *_args: Any) -> None:
        offset = getattr(clause, "_offset_clause", None) is not None
        seen.append((str(clause).upper(), offset))

    event.listen(db.engine, "before_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_execute", record)


def test_no_offset_and_no_count(seeded: Database) -> None:
    repo = Repo("ns001", "adapter-00004")
    with statements(seeded) as seen, seeded.read() as s:
        browse.adapter_page(s, browse.AdapterFilter(), after="ns001/adapter-00002", limit=3)
        browse.adapter_page(s, browse.AdapterFilter(base_model="x", tag_key="team"), limit=3)
        browse.adapter_page(s, browse.AdapterFilter(stage="production"), after="ns001/x", limit=3)
        browse.version_page(s, repo, older_than=4, limit=2)
        browse.event_page(s, repo, before_id=10)
    assert len(seen) >= 4
    assert not [sql for sql, offset in seen if offset or "COUNT(" in sql]


@pytest.mark.slow
@pytest.mark.parametrize(("db_backend", "storage_backend"), [("sqlite", "local")])
def test_pages_stay_fast_at_a_million_versions(runtime: Runtime) -> None:
    """20 namespaces x 1,000 adapters x 50 versions, every page rendered over HTTP."""
    seed_catalog(runtime.db, namespaces=20, adapters_per_namespace=1000, versions_per_adapter=50)
    with runtime.db.write() as s:  # every adapter in production: the stage filter's worst case
        s.execute(
            update(m.AdapterVersion).where(m.AdapterVersion.number == 40).values(stage="production")
        )
    from registry.server import create_app

    budget_s = 1.0  # generous for a loaded CI box; typical is 10-50 ms
    urls = [
        "/ui/",
        "/ui/?after=ns019%2Fadapter-00900",
        "/ui/?before=ns010%2Fadapter-00500",
        "/ui/?q=00999",
        "/ui/?namespace=ns010&after=ns010%2Fadapter-00500",
        "/ui/?tag=team%3Dns019",
        "/ui/?base=meta-llama%2FLlama-3.1-8B",
        "/ui/?stage=production",
        "/ui/?stage=production&namespace=ns010",
        "/ui/ns005/adapter-00500",
        "/ui/ns005/adapter-00500?older=10",
        "/ui/ns005/adapter-00500/v25",
        "/ui/ns005/adapter-00500/compare?a=1&b=50",
    ]
    with TestClient(create_app(runtime, background=False), base_url="http://localhost") as web:
        for url in urls:
            web.get(url)  # warm the page cache: we time queries, not the first disk read
            start = time.perf_counter()
            r = web.get(url)
            took = time.perf_counter() - start
            assert r.status_code == 200, url
            assert took < budget_s, f"{url} took {took:.2f}s"

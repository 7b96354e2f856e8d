"""Which statement makes a use-case slow: run the list, dashboard and resolve use-cases
in-process on a catalog, record every SQL statement they issue, and EXPLAIN (ANALYZE,
BUFFERS) each with its real parameters."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, select, text

from registry.catalog import browse
from registry.catalog import queries as cq
from registry.catalog.refs import Repo
from registry.catalog.resolve import resolve
from registry.compat import bases
from registry.db import models as m
from registry.db.database import Database


def explain_use_cases(
    url: str, *, threshold_ms: float = 1.0, rows: dict[str, int] | None = None
) -> dict[str, dict[str, Any]]:
    """Per use-case: how many statements it issues, their total execution time as
    PostgreSQL measures it (EXPLAIN ANALYZE, so client and network noise stay out), and
    the plans of those over ``threshold_ms``. ``rows``: rows per page of the list use-cases
    (``namespace``, ``namespace_keyset``, ``everything``, ``ui_keyset``), as the benchmark
    requests them."""
    db = Database(url)
    captured: list[tuple[str, str, Any]] = []
    current = [""]

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if current[0]:  # not the set-up queries of _use_cases
            captured.append((current[0], statement, params))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        for name, run in _use_cases(db, rows or {}).items():
            current[0] = name
            run()  # once to warm caches, as a running server would be
            captured[:] = [c for c in captured if c[0] != name]
            run()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    out: dict[str, dict[str, Any]] = {}
    with db.engine.connect() as conn:
        for use_case, statement, params in captured:
            lines = list(
                conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params or {})
                .scalars()
                .all()
            )
            found = re.search(r"Execution Time: ([\d.]+) ms", lines[-1])
            ms = float(found.group(1)) if found else math.nan
            doc = out.setdefault(use_case, {"statements": 0, "db_ms": 0.0, "slow": []})
            doc["statements"] += 1
            doc["db_ms"] += ms
            if ms >= threshold_ms:
                doc["slow"].append({"ms": ms, "sql": statement, "params": params,
                                    "plan": "\n".join(lines)})  # fmt: skip
    db.dispose()
    return out


def _use_cases(db: Database, rows: dict[str, int]) -> dict[str, Callable[[], object]]:
    rng = random.Random(3)
    with db.read() as s:
        namespaces = list(s.scalars(select(m.Namespace.name).order_by(m.Namespace.name)))
        hot = s.execute(
            select(m.Namespace.name, m.Adapter.name)
            .join(m.Namespace)
            .order_by(m.Adapter.next_number.desc())
            .limit(1)
        ).one()
        some = s.execute(
            text(
                "SELECT n.name, a.name FROM adapters a JOIN namespaces n ON n.id = a.namespace_id"
                " JOIN versions v ON v.adapter_id = a.id AND v.stage = 'production' LIMIT 50"
            )
        ).all()
    ns = rng.choice(namespaces)
    with db.read() as s:
        names = list(
            s.scalars(
                select(m.Adapter.name)
                .join(m.Namespace)
                .where(m.Namespace.name == ns)
                .order_by(m.Adapter.name)
            )
        )
    middle = f"{ns}/{names[len(names) // 2 - 1]}"  # as the benchmark's keyset pages
    prod_ns, prod_name = rng.choice(some)
    hot_repo = Repo(hot[0], hot[1])

    def read(fn: Callable[[Any], object]) -> Callable[[], object]:
        def run() -> object:
            with db.read() as s:
                return fn(s)

        return run

    ns_rows = rows.get("namespace", 10)
    keyset_rows = rows.get("namespace_keyset", ns_rows // 2)
    everything = rows.get("everything", 50)
    ui_keyset = rows.get("ui_keyset", 24)

    def index(after: str | None, limit: int) -> Callable[[], object]:
        # What the /ui/ route runs: a page of adapters, the namespace and base pickers.
        return read(
            lambda s: (
                browse.adapter_page(s, browse.AdapterFilter(), after=after, limit=limit),
                browse.namespace_names(s),
                bases.base_names(s, limit=500),
            )
        )

    return {
        "api list first page": read(lambda s: cq.list_adapters(s, ns, limit=ns_rows)),
        "api list keyset page": read(
            lambda s: cq.list_adapters(s, ns, limit=keyset_rows, after=middle)
        ),
        "api list all namespaces": read(lambda s: cq.list_adapters(s, limit=everything)),
        "ui index": index(None, everything),
        "ui index keyset": index(middle, ui_keyset),
        # The first page of versions is all the /ui/{ns}/{name} route queries.
        "ui adapter (longest history)": read(lambda s: browse.version_page(s, hot_repo, limit=50)),
        "resolve production": lambda: resolve(db, Repo(prod_ns, prod_name), ref="production"),
        "resolve latest": lambda: resolve(db, hot_repo, ref="latest"),
        "resolve number": lambda: resolve(db, hot_repo, ref="7"),
    }

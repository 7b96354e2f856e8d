"""Catalog rows in bulk, straight into the tables: for pagination and scale tests that need
thousands of adapters or a million versions, where pushing real files would take hours.

The rows are what a push writes (namespaces, adapters, versions, tags); no blobs or files,
which the list pages never read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select

from registry.db import models as m
from registry.db.database import Database

CONFIG = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def seed_catalog(
    db: Database,
    *,
    namespaces: int,
    adapters_per_namespace: int,
    versions_per_adapter: int,
    base: str = "meta-llama/Llama-3.1-8B",
    batch: int = 20_000,
) -> None:
    """Namespaces ``ns000``.., adapters ``adapter-00000``.., versions 1..N each; the newest
    version of every adapter tagged ``team=<namespace>``."""
    with db.write() as s:
        s.execute(
            insert(m.Namespace),
            [{"name": f"ns{i:03d}", "created_at": EPOCH} for i in range(namespaces)],
        )
        ns_ids = list(s.scalars(select(m.Namespace.id).order_by(m.Namespace.name)))
        s.execute(
            insert(m.Adapter),
            [
                {
                    "namespace_id": ns_id,
                    "name": f"adapter-{j:05d}",
                    "next_number": versions_per_adapter + 1,
                    "created_at": EPOCH,
                }
                for ns_id in ns_ids
                for j in range(adapters_per_namespace)
            ],
        )
        adapters = list(
            s.execute(
                select(m.Adapter.id, m.Namespace.name).join(m.Namespace).order_by(m.Adapter.id)
            )
        )
    cols = (
        "adapter_id, number, content_id, base_model, peft_type, r, lora_alpha,"
        " target_modules, config, size, file_count, author, created_at"
    )
    # Driver-level executemany with JSON pre-encoded: a million rows in seconds, not minutes.
    sqlite = db.is_sqlite
    mark = "?" if sqlite else "%s"
    sql = f"INSERT INTO versions ({cols}) VALUES ({', '.join([mark] * 13)})"
    targets, config = json.dumps(["q_proj", "v_proj"]), json.dumps(CONFIG)
    rows: list[tuple[object, ...]] = []
    newest: list[tuple[int, str]] = []  # (adapter id, namespace) of each adapter's newest

    def flush() -> None:
        with db.write() as s:
            s.connection().exec_driver_sql(sql, rows)  # type: ignore[arg-type]
        rows.clear()

    # SQLAlchemy's SQLite DateTime storage format; PostgreSQL takes the object.
    times = [EPOCH + timedelta(minutes=n) for n in range(versions_per_adapter + 1)]
    stamps = [t.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else t for t in times]
    for aid, ns in adapters:
        for n in range(1, versions_per_adapter + 1):
            rows.append(
                (
                    aid,
                    n,
                    # Ascending ids keep the content-id indexes append-only (random
                    # hashes make the seed several times slower); only the length is checked.
                    f"{aid:020x}{n:020x}",
                    base,
                    "LORA",
                    8,
                    16.0,
                    targets,
                    config,
                    10_000 + n,
                    2,
                    "seed",
                    stamps[n],
                )
            )
            if len(rows) >= batch:
                flush()
        newest.append((aid, ns))
    if rows:
        flush()
    with db.write() as s:
        ids = dict(
            s.execute(
                select(m.AdapterVersion.adapter_id, m.AdapterVersion.id).where(
                    m.AdapterVersion.number == versions_per_adapter
                )
            ).all()
        )
        s.execute(
            insert(m.Tag),
            [{"version_id": ids[aid], "key": "team", "value": ns} for aid, ns in newest],
        )

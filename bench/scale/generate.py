"""A realistic lorareg catalog of N versions, generated inside PostgreSQL.

Shape (1M versions): 50k adapters in 500 namespaces; versions per adapter heavy-tailed
(most adapters a handful, a few hundreds, one "hot" adapter with 5000); 5 base models;
every version with its files (config, weights, and a README on a third) and their blobs;
30% of adapters with their newest version in production and the one before archived, 10%
with it in staging; `champion` and `canary` aliases; dataset tags, eval scores and the
audit events a real history leaves (one `version.created` per version, `stage.changed`
per stage). Rows satisfy every constraint of the schema; foreign keys stay checked.

The Python side only computes the per-adapter version counts (heavy-tailed, summing to
exactly N) and COPYs the adapters; every other row comes from ``INSERT ... SELECT`` over
``generate_series`` in the server, so a million versions take minutes, not hours.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass

import numpy as np
import psycopg

BASES = [
    "meta-llama/Llama-3.1-8B",
    "meta-llama/Llama-3.1-70B",
    "mistralai/Mistral-7B-v0.3",
    "Qwen/Qwen2.5-7B",
    "google/gemma-2-9b",
]
WORDS = ["chat", "sql", "code", "voice", "support", "legal", "med", "translate", "extract", "sum"]
EPOCH = "2025-01-01 00:00:00+00"


@dataclass(frozen=True)
class Shape:
    versions: int
    adapters: int
    namespaces: int
    hot_versions: int  # versions of the one adapter with the longest history


def shape_for(versions: int) -> Shape:
    """20 versions per adapter on average, 100 adapters per namespace (at least 5)."""
    adapters = max(1, versions // 20)
    return Shape(
        versions=versions,
        adapters=adapters,
        namespaces=max(5, adapters // 100),
        hot_versions=min(5000, versions // 10),
    )


def version_counts(shape: Shape, *, seed: int = 8) -> np.ndarray:
    """Versions per adapter: Pareto-tailed, at least 1 each, adapter 0 the hot one, summing
    to exactly ``shape.versions``."""
    rng = np.random.default_rng(seed)
    rest = shape.versions - shape.hot_versions - (shape.adapters - 1)
    weights = rng.pareto(1.6, shape.adapters - 1) + 0.05
    extra = np.floor(weights / weights.sum() * rest).astype(np.int64)
    # Hand out what flooring lost, one each to random adapters.
    short = rest - int(extra.sum())
    extra[rng.choice(len(extra), size=short, replace=False)] += 1
    counts = np.concatenate([[shape.hot_versions], 1 + extra])
    assert int(counts.sum()) == shape.versions and counts.min() >= 1
    return counts


# Every statement sees the adapters (with their version count in next_number - 1) and the
# temporary table `offsets` (adapter id -> id of its version 1 minus 1).
SQL = [
    (
        "versions",
        """
        INSERT INTO versions (id, adapter_id, number, content_id, base_model, peft_type, r,
            lora_alpha, target_modules, config, size, file_count, author, description,
            parent_id, stage, kind, created_at)
        SELECT o.off + n, a.id, n,
            substr(md5(a.id || ':' || n) || md5(n || ':' || a.id), 1, 40),
            (%(bases)s::text[])[1 + a.id %% 5], 'LORA', (ARRAY[8, 16, 32, 64])[1 + a.id %% 4],
            2 * (ARRAY[8, 16, 32, 64])[1 + a.id %% 4],
            CAST('["q_proj", "k_proj", "v_proj", "o_proj"]' AS json),
            json_build_object('peft_type', 'LORA', 'r', (ARRAY[8, 16, 32, 64])[1 + a.id %% 4],
                'lora_alpha', 2 * (ARRAY[8, 16, 32, 64])[1 + a.id %% 4],
                'target_modules', json_build_array('q_proj', 'k_proj', 'v_proj', 'o_proj'),
                'base_model_name_or_path', (%(bases)s::text[])[1 + a.id %% 5],
                'task_type', 'CAUSAL_LM', 'lora_dropout', 0.05, 'bias', 'none'),
            16 * 1048576 * (ARRAY[8, 16, 32, 64])[1 + a.id %% 4] / 8 + 1024 + (n %% 3 = 0)::int * 2048,
            2 + (n %% 3 = 0)::int,
            'user' || ((a.id * 7 + n) %% 300),
            'training run ' || n || ' of ' || a.name,
            CASE WHEN n > 1 THEN o.off + n - 1 END,
            CASE
                WHEN n = a.next_number - 1 AND a.id %% 10 < 3 THEN 'production'
                WHEN n = a.next_number - 1 AND a.id %% 10 = 3 THEN 'staging'
                WHEN n = a.next_number - 2 AND a.id %% 10 < 3 THEN 'archived'
            END,
            'adapter',
            %(epoch)s::timestamptz + (o.off + n) * INTERVAL '30 seconds'
        FROM adapters a
        JOIN offsets o ON o.adapter_id = a.id,
        LATERAL generate_series(1, a.next_number - 1) n
        """,
    ),
    (
        "blobs",
        """
        INSERT INTO blobs (sha256, size, created_at)
        SELECT encode(sha256(('config:' || a.id)::bytea), 'hex'), 1024, a.created_at
        FROM adapters a
        UNION ALL
        SELECT encode(sha256(('weights:' || v.id)::bytea), 'hex'), v.size - 1024
            - (v.file_count = 3)::int * 2048, v.created_at
        FROM versions v
        UNION ALL
        SELECT encode(sha256(('readme:' || v.id)::bytea), 'hex'), 2048, v.created_at
        FROM versions v WHERE v.file_count = 3
        """,
    ),
    (
        "version_files",
        """
        INSERT INTO version_files (version_id, path, sha256, size)
        SELECT v.id, 'adapter_config.json', encode(sha256(('config:' || v.adapter_id)::bytea), 'hex'), 1024
        FROM versions v
        UNION ALL
        SELECT v.id, 'adapter_model.safetensors', encode(sha256(('weights:' || v.id)::bytea), 'hex'),
            v.size - 1024 - (v.file_count = 3)::int * 2048
        FROM versions v
        UNION ALL
        SELECT v.id, 'README.md', encode(sha256(('readme:' || v.id)::bytea), 'hex'), 2048
        FROM versions v WHERE v.file_count = 3
        """,
    ),
    (
        "tags",
        """
        INSERT INTO tags (version_id, key, value)
        SELECT v.id, 'dataset', 'ds-' || (v.id %% 50) FROM versions v WHERE v.id %% 5 = 0
        UNION ALL
        SELECT o.off + a.next_number - 1, 'team', n.name
        FROM adapters a JOIN offsets o ON o.adapter_id = a.id JOIN namespaces n ON n.id = a.namespace_id
        """,
    ),
    (
        "eval_scores",
        """
        INSERT INTO eval_scores (version_id, metric, value, dataset, higher_is_better,
            recorded_by, created_at)
        SELECT v.id, m.metric, CASE WHEN m.up THEN 0.5 + (v.id %% 500) / 1000.0
            ELSE 2.0 - (v.id %% 700) / 1000.0 END,
            'eval-' || (v.adapter_id %% 20), m.up, 'ci', v.created_at + INTERVAL '1 hour'
        FROM versions v, (VALUES ('accuracy', true), ('loss', false)) m(metric, up)
        WHERE v.id %% 10 < 3
        """,
    ),
    (
        "aliases",
        """
        INSERT INTO aliases (adapter_id, name, version_id, updated_by, updated_at)
        SELECT a.id, l.name, o.off + GREATEST(1, a.next_number - 1 - l.back), 'release-bot',
            %(epoch)s::timestamptz + INTERVAL '400 days'
        FROM adapters a JOIN offsets o ON o.adapter_id = a.id,
            (VALUES ('champion', 0, 5), ('canary', 1, 20)) l(name, back, every)
        WHERE a.id %% l.every = 0
        """,
    ),
    (
        "events",
        """
        INSERT INTO events (kind, namespace, adapter, version, actor, payload, created_at)
        SELECT e.kind, n.name, a.name, e.number, e.actor, e.payload, e.at
        FROM (
            SELECT v.adapter_id, v.number, 'version.created' AS kind, v.author AS actor,
                json_build_object('content_id', v.content_id, 'base_model', v.base_model,
                    'size', v.size, 'kind', 'adapter') AS payload, v.created_at AS at
            FROM versions v
            UNION ALL
            SELECT v.adapter_id, v.number, 'stage.changed', 'release-bot',
                json_build_object('from', NULL, 'to', v.stage, 'reason', NULL,
                    'base_model', v.base_model, 'replaced', NULL),
                v.created_at + INTERVAL '2 hours'
            FROM versions v WHERE v.stage IS NOT NULL
        ) e
        JOIN adapters a ON a.id = e.adapter_id JOIN namespaces n ON n.id = a.namespace_id
        ORDER BY e.at
        """,
    ),
]

SEQUENCES = ["namespaces", "adapters", "versions"]


def generate(dsn: str, shape: Shape) -> dict[str, float]:
    """Fill the empty, migrated catalog at ``dsn`` (a libpq URL); seconds per table."""
    counts = version_counts(shape)
    timings: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        t0 = time.monotonic()
        with conn.cursor().copy("COPY namespaces (id, name, created_at) FROM STDIN") as cp:
            for i in range(shape.namespaces):
                cp.write_row((i + 1, f"team-{i:03d}", EPOCH))
        buf = io.StringIO()
        for i, count in enumerate(counts):
            name = f"{WORDS[i % len(WORDS)]}-{i:05d}"
            buf.write(f"{i + 1}\t{i % shape.namespaces + 1}\t{name}\t{count + 1}\t{EPOCH}\n")
        with conn.cursor().copy(
            "COPY adapters (id, namespace_id, name, next_number, created_at) FROM STDIN"
        ) as cp:
            cp.write(buf.getvalue())
        timings["namespaces+adapters"] = time.monotonic() - t0
        conn.execute(
            "CREATE UNLOGGED TABLE offsets AS SELECT id AS adapter_id,"
            " sum(next_number - 1) OVER (ORDER BY id) - (next_number - 1) AS off FROM adapters"
        )
        conn.execute("ALTER TABLE offsets ADD PRIMARY KEY (adapter_id)")
        conn.execute(
            "INSERT INTO base_models (name, source, architecture, created_by, created_at)"
            " SELECT b, 'hf://' || b || '@main', '{}', 'admin', %(epoch)s::timestamptz"
            " FROM unnest(%(bases)s::text[]) b",
            {"bases": BASES, "epoch": EPOCH},
        )
        for table, sql in SQL:
            t0 = time.monotonic()
            conn.execute(sql, {"bases": BASES, "epoch": EPOCH})
            timings[table] = time.monotonic() - t0
        conn.execute("DROP TABLE offsets")
        for table in SEQUENCES:  # explicit ids were inserted: move the sequences past them
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) FROM {table}))"
            )
        t0 = time.monotonic()
        # Autovacuum would get there on its own; a steady-state catalog has statistics.
        conn.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = time.monotonic() - t0
    return timings


def table_rows(dsn: str) -> dict[str, int]:
    """Exact row counts of the tables the generator fills."""
    tables = [
        "namespaces",
        "adapters",
        "versions",
        "version_files",
        "blobs",
        "tags",
        "eval_scores",
        "aliases",
        "events",
    ]
    with psycopg.connect(dsn) as conn:
        return {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}  # type: ignore[index]


def check_consistent(dsn: str) -> list[str]:
    """Problems a real catalog could not have (none expected)."""
    checks = {
        "versions not numbered 1..n": "SELECT count(*) FROM adapters a WHERE a.next_number - 1"
        " <> (SELECT count(*) FROM versions v WHERE v.adapter_id = a.id)",
        "files whose blob is missing": "SELECT count(*) FROM version_files f"
        " LEFT JOIN blobs b ON b.sha256 = f.sha256 WHERE b.sha256 IS NULL",
        "versions whose size is not their files'": "SELECT count(*) FROM versions v WHERE"
        " v.size <> (SELECT sum(size) FROM version_files f WHERE f.version_id = v.id)",
        "unreferenced blobs": "SELECT count(*) FROM blobs b WHERE NOT EXISTS"
        " (SELECT 1 FROM version_files f WHERE f.sha256 = b.sha256)",
        "versions without a created event": "SELECT (SELECT count(*) FROM versions)"
        " - (SELECT count(*) FROM events WHERE kind = 'version.created')",
    }
    problems = []
    with psycopg.connect(dsn) as conn:
        for what, sql in checks.items():
            n = int(conn.execute(sql).fetchone()[0])  # type: ignore[index]
            if n:
                problems.append(f"{n} {what}")
    return problems


def describe(shape: Shape) -> str:
    return json.dumps(shape.__dict__)

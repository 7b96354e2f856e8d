"""Scale: resolve, list and dashboard latencies on PostgreSQL catalogs of 1k, 100k and 1M
versions, in one run (goal: flat within 1.5x from the smallest to the largest).

    .venv/bin/python bench/scale/bench_scale.py [--sizes 1000,100000,1000000]
        [--rounds 3] [--seconds 8] [--reuse] [--keep] [--explain] [--json out.json]

1. For each size, a fresh database ``lorareg_scale_<size>`` migrated with Alembic and filled
   by ``generate.py`` (``--reuse`` keeps one already generated); prints the time, the rows
   and the disk it takes, and checks the rows are consistent.
2. One ``lorareg serve`` per size (uvicorn, local blob folder: no request reads a blob).
3. ``--rounds`` rounds, each measuring every size in turn (so background load on the
   machine hits all sizes alike); each figure is the median over rounds of:

   - resolve (hot): ``wrk`` for ``--seconds`` over 1000 references (latest, production,
     numbered; random adapters), after one pass that fills the server's cache: the steady
     state of a serving fleet;
   - resolve (cold): 300 references the server has not seen (its cache misses, so each
     one runs the catalog queries), 4 at a time (at most 8 rounds: the 1k catalog has
     3000 such references);
   - list: ``GET /api/v1/adapters?namespace=NS&limit=100``, first page and a keyset page
     (``after`` = the middle adapter of NS), one at a time (a namespace holds 10 adapters
     at 1k and 100 at 1M, so these pages grow with the catalog); and the first 50
     adapters of all namespaces (``?limit=50``), 50 rows at every size;
   - dashboard: ``GET /ui/`` (first page and a keyset page) and ``/ui/{ns}/{name}`` of
     random adapters and of the one with the longest history, one at a time.

   Every series stops at its request count (200 for pages) or after ``--seconds``,
   whichever comes first.
4. ``--explain``: EXPLAIN (ANALYZE, BUFFERS) of every statement the list, dashboard and
   resolve use-cases issue, at every size: their database time (free of client and
   network noise), and on the largest catalog the plans of those over 1 ms.

Needs PostgreSQL (``LORAREG_TEST_PG_URL``, default postgres@127.0.0.1:5432, trust) and
``wrk`` (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.scale.explain import explain_use_cases  # noqa: E402
from bench.scale.generate import check_consistent, generate, shape_for, table_rows  # noqa: E402
from bench.scale.load import Series, run_series, run_wrk  # noqa: E402
from registry.db.database import Database  # noqa: E402
from registry.db.migrate import upgrade  # noqa: E402
from tests.fixtures.s3 import free_port  # noqa: E402

ADMIN_URL = os.environ.get(
    "LORAREG_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
LORAREG = Path(sys.executable).parent / "lorareg"


def db_urls(size: int) -> tuple[str, str]:
    """(SQLAlchemy URL, libpq URL) of the catalog for ``size`` versions."""
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/lorareg_scale_{size}"
    return url, url.replace("postgresql+psycopg://", "postgresql://")


def _admin() -> psycopg.Connection[Any]:
    return psycopg.connect(
        ADMIN_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    )


def prepare(size: int, *, reuse: bool) -> dict[str, Any]:
    """A generated catalog of ``size`` versions; what it took and what it holds."""
    url, dsn = db_urls(size)
    name = f"lorareg_scale_{size}"
    with _admin() as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and reuse and table_rows(dsn)["versions"] == size:
            # Migrations that landed since it was generated run on its rows, as in production.
            t0 = time.monotonic()
            db = Database(url)
            upgrade(db)
            db.dispose()
            print(
                f"[{size}] reusing {name} (upgraded in {time.monotonic() - t0:.1f} s)", flush=True
            )
            return {"generated": False, **_disk(admin, name), "rows": table_rows(dsn)}
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    db = Database(url)
    upgrade(db)
    db.dispose()
    shape = shape_for(size)
    print(f"[{size}] generating {shape}", flush=True)
    t0 = time.monotonic()
    timings = generate(dsn, shape)
    took = time.monotonic() - t0
    problems = check_consistent(dsn)
    if problems:
        raise SystemExit(f"[{size}] generated catalog is inconsistent: {problems}")
    with _admin() as admin:
        disk = _disk(admin, name)
    rows = table_rows(dsn)
    print(
        f"[{size}] generated in {took:.1f} s ({', '.join(f'{k} {v:.1f}' for k, v in timings.items())}),"
        f" {disk['disk_mb']:.0f} MB; rows {rows}",
        flush=True,
    )
    return {"generated": True, "generate_s": took, "timings": timings, **disk, "rows": rows}


def _disk(admin: psycopg.Connection[Any], name: str) -> dict[str, float]:
    size = admin.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
    return {"disk_mb": int(size[0]) / 2**20 if size else 0.0}


class Server:
    """``lorareg serve`` on one catalog, on a free loopback port."""

    def __init__(self, size: int, home: Path) -> None:
        url, _ = db_urls(size)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "LORAREG_HOME": str(home),
            "LORAREG_DATABASE_URL": url,
            "LORAREG_STORAGE_URL": (home / "blobs").as_uri(),
            "LORAREG_AUTH": "open",
        }
        env.pop("LORAREG_URL", None)
        self.log = open(home / "serve.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(LORAREG), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def wait_ready(self, deadline_s: float = 90) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"lorareg serve on {self.url} did not start; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Targets:
    """What to request on one catalog: random adapters, their references, namespaces."""

    def __init__(self, size: int, rng: random.Random) -> None:
        _, dsn = db_urls(size)
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT n.name, a.name, a.next_number - 1,"
                " EXISTS (SELECT 1 FROM versions v WHERE v.adapter_id = a.id"
                " AND v.stage = 'production'),"
                " (SELECT v.base_model FROM versions v WHERE v.adapter_id = a.id AND v.number = 1)"
                " FROM adapters a JOIN namespaces n ON n.id = a.namespace_id"
            ).fetchall()
            mids = conn.execute(
                "SELECT ns, name FROM (SELECT n.name AS ns, a.name, row_number() OVER"
                " (PARTITION BY n.id ORDER BY a.name) AS k, count(*) OVER (PARTITION BY n.id)"
                " AS c FROM adapters a JOIN namespaces n ON n.id = a.namespace_id) x"
                " WHERE k = c / 2 + 1"
            ).fetchall()
        self.adapters: list[tuple[str, str, int, bool, str]] = [tuple(r) for r in rows]  # type: ignore[misc]
        self.middle: dict[str, str] = dict(
            mids
        )  # namespace -> the adapter in the middle of its list
        self.hot = max(self.adapters, key=lambda a: a[2])
        self.rng = rng

    def refs(self, count: int) -> list[str]:
        """Random resolve paths: latest, production (where there is one) and numbered."""
        out = []
        for _ in range(count):
            ns, name, n, prod, _ = self.rng.choice(self.adapters)
            kind = self.rng.random()
            if kind < 0.3 and prod:
                ref = "production"
            elif kind < 0.6:
                ref = f"v{self.rng.randint(1, n)}"  # the one form cold_refs never uses
            else:
                ref = "latest"
            out.append(f"/api/v1/resolve/{ns}/{name}?ref={ref}")
        return out

    def cold_refs(self, count: int, seen: set[str]) -> list[str]:
        """Numbered references not requested before on this server (cache misses). The
        cache keys on the reference as written, so ``7``, ``v7&base=B`` and ``7&base=B``
        are three misses for one version: the 1k catalog has 3000 to hand out."""
        out: list[str] = []
        for _ in range(count * 100):  # bounded: a small catalog runs out of fresh ones
            ns, name, n, _, base = self.rng.choice(self.adapters)
            ref = self.rng.choice(("{}", "v{}&base=" + base, "{}&base=" + base))
            path = f"/api/v1/resolve/{ns}/{name}?ref=" + ref.format(self.rng.randint(1, n))
            if path not in seen:
                seen.add(path)
                out.append(path)
                if len(out) == count:
                    return out
        raise SystemExit(f"fewer than {count} unrequested references left; use fewer rounds")

    def namespace(self) -> str:
        return self.rng.choice(sorted(self.middle))

    def adapter_page(self) -> str:
        ns, name, *_ = self.rng.choice(self.adapters)
        return f"/ui/{ns}/{name}"


def measure(server: Server, t: Targets, seen: set[str], seconds: float) -> dict[str, Series]:
    """One round of every series on one server."""
    out: dict[str, Series] = {}
    hot = t.refs(1000)
    asyncio.run(run_series(server.url, lambda i: hot[i], count=len(hot), seconds=60, concurrency=8))
    out["resolve hot (wrk)"] = run_wrk(server.url, hot, seconds=seconds, connections=16)
    cold = t.cold_refs(300, seen)
    out["resolve cold"] = _series(server, lambda i: cold[i], 300, seconds, concurrency=4)
    out["list first page"] = _series(
        server, lambda i: f"/api/v1/adapters?namespace={t.namespace()}&limit=100", 200, seconds
    )

    def after(_: int) -> str:
        ns = t.namespace()
        return f"/api/v1/adapters?namespace={ns}&limit=100&after={ns}/{t.middle[ns]}"

    out["list keyset page"] = _series(server, after, 200, seconds)

    # No namespace, 50 rows: the one page with as many rows at 1k (50 adapters) as at 1M.
    out["list first 50, all namespaces"] = _series(
        server, lambda i: "/api/v1/adapters?limit=50", 200, seconds
    )
    out["ui index"] = _series(server, lambda i: "/ui/", 200, seconds)

    def ui_after(_: int) -> str:
        ns = t.namespace()
        return f"/ui/?after={ns}/{t.middle[ns]}"

    out["ui index keyset"] = _series(server, ui_after, 200, seconds)
    out["ui adapter"] = _series(server, lambda i: t.adapter_page(), 200, seconds)
    hot_page = f"/ui/{t.hot[0]}/{t.hot[1]}"
    out["ui adapter (longest history)"] = _series(server, lambda i: hot_page, 200, seconds)
    return out


def _series(
    server: Server,
    path: Callable[[int], str],
    count: int,
    seconds: float,
    concurrency: int = 1,
) -> Series:
    return asyncio.run(
        run_series(server.url, path, count=count, seconds=seconds, concurrency=concurrency)
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000,100000,1000000")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--reuse", action="store_true", help="keep an already generated catalog")
    p.add_argument("--keep", action="store_true", help="do not drop the databases at the end")
    p.add_argument("--explain", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(6)
    result: dict[str, Any] = {"sizes": sizes, "catalogs": {}, "rounds": []}
    for size in sizes:
        result["catalogs"][size] = prepare(size, reuse=args.reuse)

    with tempfile.TemporaryDirectory(prefix="lorareg-scale-") as tmp:
        servers = {}
        for size in sizes:
            home = Path(tmp) / str(size)
            home.mkdir()
            servers[size] = Server(size, home)
        try:
            for s in servers.values():
                s.wait_ready()
            targets = {size: Targets(size, rng) for size in sizes}
            seen: dict[int, set[str]] = {size: set() for size in sizes}
            rounds: dict[int, list[dict[str, Series]]] = {size: [] for size in sizes}
            for r in range(args.rounds):
                for size in sizes:
                    load = os.getloadavg()[0]
                    got = measure(servers[size], targets[size], seen[size], args.seconds)
                    rounds[size].append(got)
                    print(
                        f"round {r + 1} [{size}] load {load:.1f}: "
                        + "; ".join(f"{k} p50 {v.p50:.1f} p99 {v.p99:.1f}" for k, v in got.items()),
                        flush=True,
                    )
                    result["rounds"].append(
                        {"round": r, "size": size, "loadavg": load}
                        | {k: v.to_json() for k, v in got.items()}
                    )
        finally:
            for s in servers.values():
                s.stop()
    table = summarise(sizes, rounds)
    result["summary"] = table
    if args.explain:
        result["explain"] = explain(sizes)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    if not args.keep:
        with _admin() as admin:
            for size in sizes:
                admin.execute(f'DROP DATABASE IF EXISTS "lorareg_scale_{size}" WITH (FORCE)')


def explain(sizes: list[int]) -> dict[int, dict[str, Any]]:
    """Database time per use-case at each size (EXPLAIN ANALYZE), and the plans of the
    statements over 1 ms on the largest catalog."""
    found = {size: explain_use_cases(db_urls(size)[0], threshold_ms=1.0) for size in sizes}
    small, large = min(sizes), max(sizes)
    print("\n" + f"{'use case (database time)':32}" + "".join(f"{f'{s:,} ms':>14}" for s in sizes))
    for name in found[small]:
        cells = "".join(
            f"{found[s][name]['db_ms']:>9.2f} ({found[s][name]['statements']:>2})" for s in sizes
        )
        print(f"{name:32}{cells}")
    for name, doc in found[large].items():
        for slow in doc["slow"]:
            print(
                f"\n--- {name} at {large:,}: {slow['ms']:.1f} ms\n{slow['sql']}\n{slow['params']}"
            )
            print(slow["plan"])
    return found


def summarise(sizes: list[int], rounds: dict[int, list[dict[str, Series]]]) -> dict[str, Any]:
    """Median over rounds of each series' p50 and p99; ratios of the largest size to the
    smallest (the goal) and to the one before it (at 1k a namespace or a keyset page holds
    fewer rows than at 100k and 1M, which the second ratio leaves out)."""
    ordered = sorted(sizes)
    small, large = ordered[0], ordered[-1]
    prev = ordered[-2] if len(ordered) > 2 else small
    names = list(rounds[small][0])
    table: dict[str, Any] = {}
    head = f"{'series':32}" + "".join(f"{f'{s:,} p50/p99 ms':>24}" for s in ordered)
    print("\n" + head + f"{'/smallest':>14}{'/previous':>14}  flat (<=1.5x)")
    for name in names:
        per_size = {
            size: {
                q: statistics.median(getattr(rd[name], q) for rd in rounds[size])
                for q in ("p50", "p99", "count", "rps")
            }
            for size in ordered
        }
        ratios = {
            base: (
                per_size[large]["p50"] / per_size[base]["p50"],
                per_size[large]["p99"] / per_size[base]["p99"],
            )
            for base in (small, prev)
        }
        flat = max(ratios[small]) <= 1.5
        table[name] = {
            **{str(size): v for size, v in per_size.items()},
            "ratio": {"p50": ratios[small][0], "p99": ratios[small][1]},
            "ratio_previous": {"p50": ratios[prev][0], "p99": ratios[prev][1]},
            "flat": flat,
        }
        cells = "".join(f"{per_size[s]['p50']:>12.1f}/{per_size[s]['p99']:<11.1f}" for s in ordered)
        rcells = "".join(f"{ratios[b][0]:>7.2f}/{ratios[b][1]:<6.2f}" for b in (small, prev))
        print(f"{name:32}{cells}{rcells}  {'yes' if flat else 'NO'}")
    return table


if __name__ == "__main__":
    main()

"""Scale: resolve, list and dashboard latencies on PostgreSQL catalogs of 1k, 100k and 1M
versions, in one run (goal: flat within 1.5x from the smallest to the largest).

    .venv/bin/python bench/scale/bench_scale.py [--sizes 1000,100000,1000000]
        [--rounds 3] [--seconds 8] [--requests 300] [--reuse] [--keep] [--explain]
        [--json out.json]

1. For each size, a fresh database ``lorareg_scale_<size>`` migrated with Alembic and filled
   by ``generate.py`` (``--reuse`` keeps one already generated); prints the time, the rows
   and the disk it takes, and checks the rows are consistent.
2. One ``lorareg serve`` per size (uvicorn, local blob folder: no request reads a blob).
3. ``--rounds`` rounds; in each the resolve series run on every size in turn, and the page
   series run on all sizes at once, request by request in turns (A B, B A, ...), so
   background load on a shared machine hits all sizes alike; each figure is a percentile
   of every round's latencies pooled (``summarise``) of:

   - resolve (hot): ``wrk`` for ``--seconds`` over 1000 references (latest, production,
     numbered; random adapters), after one pass that fills the server's cache: the steady
     state of a serving fleet;
   - resolve (cold): 300 references the server has not seen (its cache misses, so each
     one runs the catalog queries), 4 at a time, the sizes taking turns every 30 (at most
     8 rounds: the 1k catalog has 3000 such references);
   - list: ``GET /api/v1/adapters?namespace=NS``, first page and a keyset page (``after``
     = the middle adapter of NS), one at a time, and the first adapters of all namespaces;
   - dashboard: ``GET /ui/`` (first page and a keyset page after a random adapter) and
     ``/ui/{ns}/{name}`` of random adapters and of the one with the longest history.

   Like for like: every list page holds the same number of rows at every size (``Pages``:
   a namespace page as many as the smallest catalog's namespaces hold, 10 at 1k), and each
   answer is checked to hold them. The tables also give each page's median size in KB.

   Every series stops at its request count (``--requests`` per size for pages) or after
   ``--seconds`` (per size), whichever comes first.
4. ``--explain``: EXPLAIN (ANALYZE, BUFFERS) of every statement the list, dashboard and
   resolve use-cases issue, at every size: their database time (free of client and
   network noise), and on the largest catalog the plans of those over 1 ms.

Needs PostgreSQL (``LORAREG_TEST_PG_URL``, default postgres@127.0.0.1:5432, trust), its
driver (``pip install -e '.[postgres]'``) and ``wrk`` (Debian: ``apt-get install -y wrk``);
nothing from ``tests/`` or the dev extra, so it runs from a fresh clone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

try:
    import psycopg
except ImportError:  # the driver is an extra: say which, not a traceback
    sys.exit("the scale benchmark needs PostgreSQL's driver: pip install -e '.[postgres]'")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.scale.explain import explain_use_cases  # noqa: E402
from bench.scale.generate import check_consistent, generate, shape_for, table_rows  # noqa: E402
from bench.scale.load import (  # noqa: E402
    Series,
    Target,
    percentile,
    run_interleaved,
    run_series,
    run_wrk,
)
from registry.db.database import Database  # noqa: E402
from registry.db.migrate import upgrade  # noqa: E402

ADMIN_URL = os.environ.get(
    "LORAREG_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
LORAREG = Path(sys.executable).parent / "lorareg"


def free_port() -> int:
    """A loopback port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
            ordered = conn.execute(
                "SELECT n.name, a.name FROM adapters a JOIN namespaces n ON n.id = a.namespace_id"
                " ORDER BY n.name, a.name"
            ).fetchall()
        self.adapters: list[tuple[str, str, int, bool, str]] = [tuple(r) for r in rows]  # type: ignore[misc]
        self.keys = [f"{ns}/{name}" for ns, name in ordered]  # the order every list pages in
        self.names: dict[str, list[str]] = {}  # namespace -> its adapters, in list order
        for ns, name in ordered:
            self.names.setdefault(ns, []).append(name)
        self.hot = max(self.adapters, key=lambda a: a[2])
        self.rng = rng

    def namespace_rows(self) -> int:
        """Adapters in the smallest namespace: the most a namespace page can hold here."""
        return min(len(v) for v in self.names.values())

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
        return self.rng.choice(sorted(self.names))

    def middle(self, ns: str) -> str:
        """The key a keyset page of ``ns`` starts after: its middle adapter's, so at least
        half the namespace follows it."""
        names = self.names[ns]
        return f"{ns}/{names[len(names) // 2 - 1]}"

    def key_before(self, rows: int) -> str:
        """A random key with more than ``rows`` adapters after it (a full page and a next)."""
        return self.keys[self.rng.randrange(len(self.keys) - rows - 1)]

    def adapter_page(self) -> str:
        ns, name, *_ = self.rng.choice(self.adapters)
        return f"/ui/{ns}/{name}"


@dataclass(frozen=True)
class Pages:
    """Rows per page of the list series, the same at every size (like for like): a namespace
    page holds as many rows as the smallest catalog's namespaces do; keyset pages half that
    (the rows after a namespace's middle), and on the dashboard half its smallest catalog."""

    namespace: int
    namespace_keyset: int
    everything: int
    ui_keyset: int

    @staticmethod
    def fitting(targets: list[Targets]) -> Pages:
        ns_rows = min(100, *(t.namespace_rows() for t in targets))
        adapters = min(len(t.keys) for t in targets)
        return Pages(
            namespace=ns_rows,
            namespace_keyset=ns_rows // 2,
            everything=min(50, adapters),
            ui_keyset=min(50, (adapters - 1) // 2),
        )


def _json_rows(resp: httpx.Response) -> int:
    return len(resp.json())


def _ui_rows(resp: httpx.Response) -> int:
    return resp.text.count('class="adapter-link"')


def measure_resolve(server: Server, t: Targets, seconds: float) -> dict[str, Series]:
    """One round of hot resolves on one server (wrk, after a pass that fills its cache)."""
    hot = t.refs(1000)
    asyncio.run(run_series(server.url, lambda i: hot[i], count=len(hot), seconds=60, concurrency=8))
    return {"resolve hot (wrk)": run_wrk(server.url, hot, seconds=seconds, connections=16)}


def measure_cold(
    servers: dict[int, Server],
    targets: dict[int, Targets],
    seen: dict[int, set[str]],
    *,
    seconds: float,
    count: int = 300,
    chunks: int = 10,
) -> dict[int, Series]:
    """One round of cold resolves, 4 at a time: ``count`` per size in ``chunks`` slices, the
    sizes taking turns slice by slice (A B, B A, ...) as the page series do request by
    request, so a slow spell on the machine lands on every size alike."""
    cold = {size: targets[size].cold_refs(count, seen[size]) for size in servers}
    per = count // chunks
    samples: dict[int, list[float]] = {size: [] for size in servers}
    series: dict[int, list[Series]] = {size: [] for size in servers}
    for c in range(chunks):
        for size in list(servers) if c % 2 == 0 else list(servers)[::-1]:
            refs = cold[size][c * per : (c + 1) * per]
            got = asyncio.run(
                run_series(
                    servers[size].url,
                    refs.__getitem__,
                    count=len(refs),
                    seconds=seconds / chunks,
                    concurrency=4,
                )
            )
            samples[size] += got.samples
            series[size].append(got)
    return {
        size: Series(
            p50=percentile(samples[size], 50),
            p99=percentile(samples[size], 99),
            count=len(samples[size]),
            rps=statistics.median(g.rps for g in series[size]),
            statuses=sum((g.statuses for g in series[size]), Counter()),
            size=statistics.median(g.size for g in series[size]),
            samples=samples[size],
        )
        for size in servers
    }


def measure_pages(
    servers: dict[int, Server],
    targets: dict[int, Targets],
    *,
    count: int,
    seconds: float,
    pages: Pages,
) -> dict[int, dict[str, Series]]:
    """One round of the list and dashboard series, every size taking turns request by
    request (``run_interleaved``), each answer checked to hold the page's rows."""

    def series(
        of: Callable[[Targets], Callable[[int], str]],
        rows: Callable[[httpx.Response], int] | None = None,
        expect: int | None = None,
    ) -> dict[int, Series]:
        return run_interleaved(
            {size: Target(servers[size].url, of(targets[size]), rows, expect) for size in servers},
            count=count,
            seconds=seconds,
        )

    def first(t: Targets) -> Callable[[int], str]:
        return lambda i: f"/api/v1/adapters?namespace={t.namespace()}&limit={pages.namespace}"

    def after(t: Targets) -> Callable[[int], str]:
        def path(_: int) -> str:
            ns = t.namespace()
            return (
                f"/api/v1/adapters?namespace={ns}&limit={pages.namespace_keyset}"
                f"&after={t.middle(ns)}"
            )

        return path

    def everything(t: Targets) -> Callable[[int], str]:
        return lambda i: f"/api/v1/adapters?limit={pages.everything}"

    def index(t: Targets) -> Callable[[int], str]:
        return lambda i: "/ui/" if pages.everything == 50 else f"/ui/?limit={pages.everything}"

    def ui_after(t: Targets) -> Callable[[int], str]:
        return lambda i: f"/ui/?limit={pages.ui_keyset}&after={t.key_before(pages.ui_keyset)}"

    def adapter(t: Targets) -> Callable[[int], str]:
        return lambda i: t.adapter_page()

    def longest(t: Targets) -> Callable[[int], str]:
        return lambda i: f"/ui/{t.hot[0]}/{t.hot[1]}"

    got = {
        f"list first page ({pages.namespace} rows)": series(first, _json_rows, pages.namespace),
        f"list keyset page ({pages.namespace_keyset} rows)": series(
            after, _json_rows, pages.namespace_keyset
        ),
        # No namespace: the first adapters of all namespaces.
        f"list all namespaces ({pages.everything} rows)": series(
            everything, _json_rows, pages.everything
        ),
        f"ui index ({pages.everything} rows)": series(index, _ui_rows, pages.everything),
        f"ui index keyset ({pages.ui_keyset} rows)": series(ui_after, _ui_rows, pages.ui_keyset),
        "ui adapter": series(adapter),
        "ui adapter (longest history)": series(longest),
    }
    return {size: {name: by_size[size] for name, by_size in got.items()} for size in servers}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1000,100000,1000000")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--requests", type=int, default=300, help="per page series, size and round")
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
            pages = Pages.fitting(list(targets.values()))
            print(f"rows per page at every size: {pages}", flush=True)
            seen: dict[int, set[str]] = {size: set() for size in sizes}
            rounds: dict[int, list[dict[str, Series]]] = {size: [] for size in sizes}
            for r in range(args.rounds):
                # Every other round the other way round, so a slow spell on the machine
                # does not always land on the same size.
                order = sizes if r % 2 == 0 else sizes[::-1]
                got = {
                    size: measure_resolve(servers[size], targets[size], args.seconds)
                    for size in order
                }
                cold = measure_cold(servers, targets, seen, seconds=args.seconds)
                paged = measure_pages(
                    servers, targets, count=args.requests, seconds=args.seconds, pages=pages
                )
                for size in sizes:
                    got[size]["resolve cold"] = cold[size]
                    got[size].update(paged[size])
                    rounds[size].append(got[size])
                    print(
                        f"round {r + 1} [{size}]: "
                        + "; ".join(
                            f"{k} p50 {v.p50:.1f} p99 {v.p99:.1f}" for k, v in got[size].items()
                        ),
                        flush=True,
                    )
                    result["rounds"].append(
                        {"round": r, "size": size, "loadavg": os.getloadavg()[0]}
                        | {k: v.to_json() for k, v in got[size].items()}
                    )
        finally:
            for s in servers.values():
                s.stop()
    table = summarise(sizes, rounds)
    result["summary"] = table
    if args.explain:
        result["explain"] = explain(sizes, rows=pages.__dict__)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
    if not args.keep:
        with _admin() as admin:
            for size in sizes:
                admin.execute(f'DROP DATABASE IF EXISTS "lorareg_scale_{size}" WITH (FORCE)')


def explain(sizes: list[int], *, rows: dict[str, int]) -> dict[int, dict[str, Any]]:
    """Database time per use-case at each size (EXPLAIN ANALYZE), and the plans of the
    statements over 1 ms on the largest catalog."""
    found = {
        size: explain_use_cases(db_urls(size)[0], threshold_ms=1.0, rows=rows) for size in sizes
    }
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
    """Each series' p50 and p99 over the latencies of all rounds pooled (wrk gives only its
    percentiles: the median over rounds of those); ratios of the largest size to the
    smallest (the goal) and to the one before it. Pooled, a p99 rests on the 1% slowest
    of every round's requests, not on two or three of one round's."""
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
        for size in ordered:
            pooled = [ms for rd in rounds[size] for ms in rd[name].samples]
            if pooled:
                per_size[size].update(
                    p50=percentile(pooled, 50), p99=percentile(pooled, 99), count=len(pooled)
                )
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
    print("\n" + f"{'page size (median KB)':32}" + "".join(f"{f'{s:,}':>24}" for s in ordered))
    for name in names:
        kbs = [statistics.median(rd[name].size for rd in rounds[s]) / 1000 for s in ordered]
        if not any(math.isnan(kb) for kb in kbs):
            print(f"{name:32}" + "".join(f"{kb:>24.1f}" for kb in kbs))
            table[name]["kb"] = dict(zip(map(str, ordered), kbs, strict=True))
    return table


if __name__ == "__main__":
    main()

"""Resolve throughput and latency on a PostgreSQL catalog of 100k versions, against a bare
FastAPI endpoint returning a constant JSON under the same server settings, in one run.

    .venv/bin/python bench/resolve/bench_resolve.py [--sizes 1000,100000,1000000]
        [--duration 10] [--connections 16] [--json bench/out/resolve.json]

For each catalog size (default 100000 versions; 1k and 1M on request) it:

1. builds a fresh PostgreSQL database with Alembic, then generates rows in the server
   with ``INSERT ... SELECT generate_series`` (10 versions per adapter, 2 files each, the
   first version of each adapter in production, a ``champion`` alias on the newest);
2. measures the uncached lookup (catalog queries only, in process) and the uncached
   HTTP request, over 1000 distinct references of every kind (latest, vN, content id,
   production, champion);
3. starts ``lorareg serve`` and, with the same uvicorn settings, a bare FastAPI app that
   returns the resolve document of one version as a constant; after one pass over the
   1000 references (the steady state of a serving fleet), loads each with ``wrk`` (16
   connections, lorareg's requests spread over the 1000 references), alternating the
   two servers for ``--rounds`` rounds and keeping each one's median round.

Reports req/s, p50 and p99 for both, the ratio (goal >= 0.5) and the latencies per size
(goal: flat within 1.5x). Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from registry.catalog.refs import parse_repo  # noqa: E402
from registry.catalog.resolve import resolve  # noqa: E402
from registry.db.database import Database  # noqa: E402
from registry.db.migrate import upgrade  # noqa: E402
from tests.fixtures.s3 import free_port  # noqa: E402

PER_ADAPTER = 10
CONFIG = {
    "peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"],
    "base_model_name_or_path": "tiny-llama", "task_type": "CAUSAL_LM", "bias": "none",
}  # fmt: skip
GENERATE = [
    "INSERT INTO namespaces (id, name, created_at)"
    " SELECT g, 'ns' || g, now() FROM generate_series(1, :n_ns) g",
    "INSERT INTO adapters (id, namespace_id, name, next_number, created_at)"
    " SELECT g, 1 + (g - 1) % :n_ns, 'adapter-' || g, :per + 1, now()"
    " FROM generate_series(1, :n_ad) g",
    "INSERT INTO blobs (sha256, size, created_at)"
    " SELECT encode(sha256(('cfg' || g)::bytea), 'hex'), 1024, now() FROM generate_series(1, :n) g"
    " UNION ALL SELECT encode(sha256(('w' || g)::bytea), 'hex'), 4608, now()"
    " FROM generate_series(1, :n) g",
    "INSERT INTO versions (id, adapter_id, number, content_id, base_model, peft_type, r,"
    " lora_alpha, target_modules, config, size, file_count, author, stage, created_at)"
    " SELECT g, 1 + (g - 1) / :per, 1 + (g - 1) % :per,"
    " substr(encode(sha256(('v' || g)::bytea), 'hex'), 1, 40), 'tiny-llama', 'LORA', 8, 16,"
    " CAST('[\"q_proj\", \"v_proj\"]' AS json), CAST(:config AS json), 5632, 2, 'bench',"
    " CASE WHEN (g - 1) % :per = 0 THEN 'production' END, now()"
    " FROM generate_series(1, :n) g",
    "INSERT INTO version_files (id, version_id, path, sha256, size)"
    " SELECT 2 * g - 1, g, 'adapter_config.json', encode(sha256(('cfg' || g)::bytea), 'hex'),"
    " 1024 FROM generate_series(1, :n) g"
    " UNION ALL SELECT 2 * g, g, 'adapter_model.safetensors',"
    " encode(sha256(('w' || g)::bytea), 'hex'), 4608 FROM generate_series(1, :n) g",
    "INSERT INTO aliases (id, adapter_id, name, version_id, updated_by, updated_at)"
    " SELECT g, g, 'champion', g * :per, 'bench', now() FROM generate_series(1, :n_ad) g",
    "INSERT INTO events (id, kind, actor, payload, created_at)"
    " SELECT g, 'version.created', 'bench', CAST('{}' AS json), now()"
    " FROM generate_series(1, :n) g",
]
SEQUENCED = ["namespaces", "adapters", "versions", "version_files", "aliases", "events"]


def build_catalog(admin_url: str, n: int) -> str:
    """A migrated PostgreSQL database holding ``n`` generated versions; returns its URL."""
    name = f"lorareg_bench_{n}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url)
    upgrade(db)
    n_ad = max(1, n // PER_ADAPTER)
    params = {"n": n, "n_ad": n_ad, "n_ns": max(1, n_ad // 100), "per": PER_ADAPTER,
              "config": json.dumps(CONFIG)}  # fmt: skip
    with db.engine.begin() as conn:
        for sql in GENERATE:
            conn.execute(text(sql), params)
        for table in SEQUENCED:
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                              f" (SELECT max(id) FROM {table}))"))  # fmt: skip
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    db.dispose()
    return url


def references(n: int, count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` distinct (repo, ref) pairs over every kind of reference."""
    rng = random.Random(seed)
    n_ad = max(1, n // PER_ADAPTER)
    n_ns = max(1, n_ad // 100)
    out: set[tuple[str, str]] = set()
    while len(out) < min(count, n_ad * (3 + 2 * PER_ADAPTER)):  # every key there is
        a = rng.randint(1, n_ad)
        k = rng.randint(1, PER_ADAPTER)
        g = (a - 1) * PER_ADAPTER + k
        ref = rng.choice(["latest", f"v{k}", "production", "champion", "cid"])
        if ref == "cid":
            ref = hashlib.sha256(f"v{g}".encode()).hexdigest()[:40]
        out.add((f"ns{1 + (a - 1) % n_ns}/adapter-{a}", ref))
    return sorted(out)


def _percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50_ms": s[len(s) // 2] * 1e3, "p99_ms": s[int(len(s) * 0.99) - 1] * 1e3}


def lookup_latency(url: str, refs: list[tuple[str, str]]) -> dict[str, float]:
    """The catalog's lookup alone (what a cache miss costs), in process."""
    db = Database(url)
    for repo, ref in refs[:50]:  # connections and plans warm, rows still mostly cold
        resolve(db, parse_repo(repo), ref=ref)
    samples = []
    for repo, ref in refs:
        t = time.perf_counter()
        resolve(db, parse_repo(repo), ref=ref)
        samples.append(time.perf_counter() - t)
    db.dispose()
    return _percentiles(samples)


def http_latency(
    base: str, refs: list[tuple[str, str]], headers: dict[str, str]
) -> dict[str, float]:
    """One connection, one request at a time, each for a reference not requested before."""
    samples = []
    with httpx.Client(base_url=base, headers=headers) as http:
        for repo, ref in refs:
            t = time.perf_counter()
            r = http.get(f"/api/v1/resolve/{repo}", params={"ref": ref})
            samples.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
    return _percentiles(samples)


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_lorareg(
    db_url: str, home: Path, *, auth: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    """``lorareg serve`` itself, on the generated catalog (``auth``: tokens required)."""
    port = free_port()
    env = {**os.environ, "LORAREG_DATABASE_URL": db_url, "LORAREG_HOME": str(home),
           "LORAREG_STORAGE_URL": (home / "blobs").as_uri(),
           "LORAREG_AUTH": "required" if auth else "open"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
                            cwd=ROOT, env=env, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_up(f"{url}/healthz", proc)
    return proc, url


def start_bare(doc_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port), str(doc_path)])
    url = f"http://127.0.0.1:{port}"
    wait_up(f"{url}/resolve", proc)
    return proc, url


def serve_bare(port: int, doc_path: Path) -> None:
    """A bare FastAPI app returning a constant JSON, run the way ``lorareg serve`` runs."""
    import uvicorn
    from fastapi import FastAPI

    doc = json.loads(doc_path.read_text())
    app = FastAPI()

    @app.get("/resolve")
    async def constant() -> dict[str, Any]:
        return doc

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(
    url: str, paths: list[str], *, seconds: int, connections: int, token: str | None = None
) -> dict[str, float]:
    bearer = json.dumps(f"Bearer {token}")
    headers = "{}" if token is None else "{Authorization = " + bearer + "}"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("local paths = {" + ",".join(json.dumps(p) for p in paths) + "}\n")
        script.write(f"local headers = {headers}\n")
        script.write("local i = math.random(#paths)\nrequest = function()\n"
                     "  i = i % #paths + 1\n  return wrk.format('GET', paths[i], headers)\nend\n")  # fmt: skip
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    os.unlink(script.name)
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")

    def pct(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert m, out
        return float(m.group(1)) * _UNITS[m.group(2)]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99")}


def bench_size(admin_url: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    t = time.monotonic()
    url = build_catalog(admin_url, n)
    built = time.monotonic() - t
    load_refs = references(n, 1000, seed=1)
    cold_refs = [r for r in references(n, 2000, seed=2) if r not in set(load_refs)][:1000]
    result: dict[str, Any] = {"versions": n, "build_s": round(built, 1)}
    result["lookup"] = lookup_latency(url, cold_refs[:500])
    procs: list[subprocess.Popen[bytes]] = []
    token = None
    if args.token:  # a serving node's reader token, as production runs
        from registry.access import create_token

        db = Database(url)
        create_token(db, name="admin", role="admin", actor="bench")  # serve needs one
        token = create_token(db, name="bench-node", role="reader", actor="bench")[0]
        db.dispose()
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    result["token"] = bool(token)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc, base = start_lorareg(url, Path(tmp), auth=token is not None)
            procs.append(proc)
            result["http_miss"] = http_latency(base, cold_refs[500:], auth)
            paths = [f"/api/v1/resolve/{repo}?ref={ref}" for repo, ref in load_refs]
            with httpx.Client(base_url=base, headers=auth) as http:  # every key seen once
                doc = [http.get(p).json() for p in paths][0]
            doc_path = Path(tmp) / "doc.json"
            doc_path.write_text(json.dumps(doc))
            proc, bare = start_bare(doc_path)
            procs.append(proc)
            targets = {"lorareg": (base, paths), "bare": (bare, ["/resolve"])}
            for where, load in targets.values():  # warm-up
                run_wrk(where, load, seconds=2, connections=args.connections, token=token)
            # Alternate the two servers and keep each one's median round: this machine's
            # other load then weighs on both alike.
            rounds: dict[str, list[dict[str, float]]] = {k: [] for k in targets}
            for _ in range(args.rounds):
                for server, (where, load) in targets.items():
                    rounds[server].append(run_wrk(where, load, seconds=args.duration,
                                                  connections=args.connections, token=token))  # fmt: skip
            for server, runs in rounds.items():
                result[server] = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
                result[f"{server}_rounds"] = [round(r["rps"]) for r in runs]
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    result["ratio"] = round(result["lorareg"]["rps"] / result["bare"]["rps"], 3)
    if not args.keep:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "lorareg_bench_{n}" WITH (FORCE)'))
        admin.dispose()
    return result


def report(results: list[dict[str, Any]]) -> None:
    print(f"{'versions':>9} {'lorareg req/s':>13} {'p50':>7} {'p99':>7} {'bare req/s':>10}"
          f" {'p99':>7} {'ratio':>6} {'lookup p50/p99':>15} {'http miss p50/p99':>18}")  # fmt: skip
    for r in results:
        lo, ba, lk, hm = r["lorareg"], r["bare"], r["lookup"], r["http_miss"]
        print(f"{r['versions']:>9} {lo['rps']:>13.0f} {lo['p50_ms']:>6.2f}ms {lo['p99_ms']:>5.2f}ms"
              f" {ba['rps']:>10.0f} {ba['p99_ms']:>5.2f}ms {r['ratio']:>6.2f}"
              f" {lk['p50_ms']:>6.2f}/{lk['p99_ms']:.2f}ms"
              f" {hm['p50_ms']:>8.2f}/{hm['p99_ms']:.2f}ms")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="100000", help="comma-separated version counts")
    ap.add_argument("--duration", type=int, default=10, help="seconds of load per server")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds per server")
    ap.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the generated databases")
    ap.add_argument("--token", action="store_true",
                    help="require tokens: lorareg's requests carry a reader token (the bare"
                         " endpoint gets the same header and ignores it)")  # fmt: skip
    ap.add_argument("--serve-bare", nargs=2, metavar=("PORT", "DOC"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), Path(args.serve_bare[1]))
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        results.append(bench_size(args.pg_url, n, args))
        print(json.dumps(results[-1]), file=sys.stderr)
    report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

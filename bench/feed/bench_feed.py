"""The change feed under a fleet: resolve latency with and without thousands of followers
of one ``lorareg serve`` (PostgreSQL, loopback), and how fast a promotion reaches them all.

    bench/feed/run.sh [--followers 10000] [--before-rev 450ca2c] [--json out.json]
    bench/feed/run.sh --only-streams --compare-rev 5f1c769 --rounds 3   # stream fan-out

Each scenario builds a fresh PostgreSQL catalog (200 adapters, two versions each, v1 in
production) with its tree's own migrations, starts that tree's ``lorareg serve`` and:

1. resolves ``production`` of the 200 adapters one request at a time for ``--seconds``
   (a separate process: p50/p99 with no followers);
2. connects the followers (``followers.py``: raw sockets and ``selectors`` in ``--procs``
   processes) and waits until every one is connected and waiting;
3. resolves the same way again (p50/p99 with the followers; goal p99 <= 2x without);
4. promotes ``--promotions`` times, one a second, and takes for each follower the time
   from sending the promotion to receiving its first event (goal p99 <= 1 s);
5. stops the server with SIGINT and times how long it takes to exit with them connected.

Beside each figure: the CPU time the server and the followers' processes used during the
promotions (per promotion; heartbeats included), which a loaded machine stretches less
than wall-clock latency, and the load average.

Scenarios: the tree before this change (``--before-rev``) with 400 long polls, which
queried the catalog every 100 ms each (the finding: resolve 4-8 ms -> 0.4-1.3 s); this
tree with the same 400 long polls; this tree with ``--followers`` streams (SSE).
``--compare-rev REV`` runs the stream scenario on REV's server first, then on this tree's,
``--rounds`` times (same client, back to back), and prints the median of each.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get(
    "LORAREG_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ADAPTERS = 200
SEED = [
    "INSERT INTO namespaces (id, name, created_at) VALUES (1, 'acme', now())",
    "INSERT INTO adapters (id, namespace_id, name, next_number, created_at)"
    " SELECT g, 1, 'adapter-' || g, 3, now() FROM generate_series(1, :n) g",
    "INSERT INTO blobs (sha256, size, created_at)"
    " SELECT encode(sha256(('w' || g)::bytea), 'hex'), 4608, now()"
    " FROM generate_series(1, 2 * :n) g",
    "INSERT INTO versions (id, adapter_id, number, content_id, base_model, peft_type, r,"
    " lora_alpha, target_modules, config, size, file_count, author, stage, created_at)"
    " SELECT g, 1 + (g - 1) / 2, 1 + (g - 1) % 2,"
    " substr(encode(sha256(('v' || g)::bytea), 'hex'), 1, 40), 'tiny-llama', 'LORA', 8, 16,"
    " CAST('[\"q_proj\", \"v_proj\"]' AS json), CAST(:config AS json), 4608, 1, 'bench',"
    " CASE WHEN g % 2 = 1 THEN 'production' END, now() FROM generate_series(1, 2 * :n) g",
    "INSERT INTO version_files (id, version_id, path, sha256, size)"
    " SELECT g, g, 'adapter_model.safetensors', encode(sha256(('w' || g)::bytea), 'hex'), 4608"
    " FROM generate_series(1, 2 * :n) g",
]
CONFIG = {
    "peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"],
    "base_model_name_or_path": "tiny-llama", "task_type": "CAUSAL_LM", "bias": "none",
}  # fmt: skip


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def checkout(rev: str) -> Path:
    """The tree at ``rev``, extracted to a temporary folder (the 'before' server)."""
    out = Path(tempfile.mkdtemp(prefix=f"lorareg-{rev}-"))
    tar = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev], check=True, capture_output=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as t:
        t.extractall(out)
    return out


def catalog(tree: Path, name: str, env: dict[str, str]) -> str:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    run_env = {**env, "LORAREG_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "cli.main", "db", "upgrade"],
        cwd=tree,
        env=run_env,
        check=True,
        capture_output=True,
    )
    engine = create_engine(url)
    with engine.begin() as conn:
        for sql in SEED:
            conn.execute(text(sql), {"n": ADAPTERS, "config": json.dumps(CONFIG)})
        for table in ("namespaces", "adapters", "versions", "version_files"):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                )
            )
    engine.dispose()
    return url


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    if not s:
        return {"n": 0}
    return {
        "n": len(s),
        "p50_ms": round(s[len(s) // 2] * 1e3, 2),
        "p99_ms": round(s[max(0, int(len(s) * 0.99) - 1)] * 1e3, 2),
    }


def resolve_load(url: str, seconds: float) -> dict[str, float]:
    """Resolve in a separate process, one request at a time, for ``seconds``."""
    out = subprocess.run(
        [sys.executable, __file__, "--resolve-load", url, str(seconds)],
        capture_output=True,
        check=True,
        text=True,
    )
    return percentiles(json.loads(out.stdout))


def _resolve_load(url: str, seconds: float) -> None:
    lat: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(ADAPTERS):  # one pass first: the server's steady state
            c.get(f"/api/v1/resolve/acme/adapter-{i + 1}", params={"ref": "production"})
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            t = time.perf_counter()
            r = c.get(
                f"/api/v1/resolve/acme/adapter-{i % ADAPTERS + 1}", params={"ref": "production"}
            )
            lat.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
            i += 1
    print(json.dumps(lat))


def head(url: str) -> int:
    last = 0
    while page := httpx.get(
        f"{url}/api/v1/events", params={"since": last, "limit": 1000}, timeout=30
    ).json():
        last = page[-1]["id"]
    return last


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scenario(
    label: str, tree: Path, mode: str, followers: int, args: argparse.Namespace
) -> dict[str, Any]:
    print(f"== {label}: {followers} {mode} followers", flush=True)
    home = Path(tempfile.mkdtemp(prefix="lorareg-bench-feed-"))
    env = {**os.environ, "PYTHONPATH": str(tree), "LORAREG_HOME": str(home),
           "LORAREG_STORAGE_URL": (home / "blobs").as_uri(), "LORAREG_MAX_WAITS_PER_TOKEN": "10000"}  # fmt: skip
    env.pop("LORAREG_URL", None)
    env["LORAREG_DATABASE_URL"] = db_url = catalog(tree, f"lorareg_bench_feed_{label}", env)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--port", str(port)], cwd=tree, env=env, stderr=subprocess.DEVNULL)  # fmt: skip
    result: dict[str, Any] = {"label": label, "mode": mode, "followers": followers,
                              "load_before": os.getloadavg()[0]}  # fmt: skip
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/healthz", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        since = head(url)
        result["resolve_without"] = resolve_load(url, args.seconds)
        print("  resolve without followers", result["resolve_without"], flush=True)
        t = time.monotonic()
        crowd = subprocess.Popen([sys.executable, str(Path(__file__).with_name("followers.py")), url, str(followers), "--mode", mode, "--since", str(since), "--procs", str(args.procs)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert crowd.stdout is not None and crowd.stdin is not None
        ready = crowd.stdout.readline().split()
        result["connected"], result["connect_failed"] = int(ready[1]), int(ready[2])
        crowd_pids = [int(x) for x in ready[3:]]
        result["connect_s"] = round(time.monotonic() - t, 1)
        print(f"  {ready[1]} connected, {ready[2]} failed in {result['connect_s']} s", flush=True)
        time.sleep(1.0)
        result["resolve_with"] = resolve_load(url, args.seconds)
        print("  resolve with followers", result["resolve_with"], flush=True)
        sent: list[tuple[float, int, int]] = []  # (time sent, first event id, last event id)
        last = head(url)
        promote_s: list[float] = []
        cpu0 = cpu_s(server.pid), sum(map(cpu_s, crowd_pids))
        with httpx.Client(base_url=url, timeout=60) as c:
            for i in range(args.promotions):
                time.sleep(1.0)
                number = 2 if i % 2 == 0 else 1
                t0 = time.time()
                r = c.post(
                    f"/api/v1/adapters/acme/adapter-1/versions/{number}/promote",
                    json={"to": "production"},
                )
                assert r.status_code == 200, r.text
                promote_s.append(time.time() - t0)
                now = head(url)
                sent.append((t0, last + 1, now))
                last = now
        # Until every follower holds the last event (or a minute passes).
        crowd.stdin.write(f"WAIT {last} 60\n")
        crowd.stdin.flush()
        result["holding_last_event"] = int(crowd.stdout.readline())
        cpu1 = cpu_s(server.pid), sum(map(cpu_s, crowd_pids))
        result["server_cpu_ms_per_promotion"] = round((cpu1[0] - cpu0[0]) * 1e3 / args.promotions)
        result["followers_cpu_ms_per_promotion"] = round(
            (cpu1[1] - cpu0[1]) * 1e3 / args.promotions
        )
        result["load_after"] = os.getloadavg()[0]
        crowd.stdin.close()
        got = json.loads(crowd.stdout.read())
        crowd.wait(timeout=60)
        lags: list[float] = []
        missed = 0
        for t0, first, end in sent:
            per: list[float] = []
            for i in range(first, end + 1):
                per = per or got["received"].get(str(i), [])
            missed += followers - len(per)
            lags.extend(x - t0 for x in per)
        result["notified"] = percentiles(lags)
        result["promote_request"] = percentiles(promote_s)
        result["notifications_missed"] = missed
        result["followers_broken"] = got["broken"]
        print(
            "  promotion -> follower notified", result["notified"], f"missed {missed}", flush=True
        )
        print("  the promotion request itself", result["promote_request"], flush=True)
        print(
            f"  CPU per promotion: server {result['server_cpu_ms_per_promotion']} ms,"
            f" followers {result['followers_cpu_ms_per_promotion']} ms;"
            f" load {result['load_before']:.1f} -> {result['load_after']:.1f}",
            flush=True,
        )
        t = time.monotonic()
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
            result["shutdown_s"] = round(time.monotonic() - t, 2)
        except subprocess.TimeoutExpired:
            result["shutdown_s"] = None
        print(f"  server stopped in {result['shutdown_s']} s (None: hung, killed)", flush=True)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        admin.dispose()
    w, f = result["resolve_without"], result["resolve_with"]
    result["p99_ratio"] = round(f["p99_ms"] / w["p99_ms"], 2)
    return result


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--resolve-load":
        _resolve_load(sys.argv[2], float(sys.argv[3]))
        return
    p = argparse.ArgumentParser()
    p.add_argument("--followers", type=int, default=10_000)
    p.add_argument("--before-rev", default="450ca2c", help="the tree before this change")
    p.add_argument("--skip-before", action="store_true")
    p.add_argument("--only-streams", action="store_true", help="the SSE scenario alone")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--promotions", type=int, default=10)
    p.add_argument("--procs", type=int, default=2, help="follower processes")
    p.add_argument("--compare-rev", help="the stream scenario on this revision's server too")
    p.add_argument("--rounds", type=int, default=1, help="with --compare-rev: repeat, alternating")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    results = []
    if not (args.skip_before or args.only_streams):
        results.append(scenario("before", checkout(args.before_rev), "longpoll", 400, args))
    if not args.only_streams:
        results.append(scenario("after_longpoll", ROOT, "longpoll", 400, args))
    if args.compare_rev:
        old = checkout(args.compare_rev)
        for i in range(args.rounds):
            results.append(
                scenario(f"sse_{args.compare_rev}_{i}", old, "sse", args.followers, args)
            )
            results.append(scenario(f"sse_tree_{i}", ROOT, "sse", args.followers, args))
    else:
        results.append(scenario("after_sse", ROOT, "sse", args.followers, args))
    print(
        "\nscenario        followers  resolve p50/p99 without  with              p99 ratio  notified p50/p99   missed  stop    CPU/promotion server, followers  load"
    )
    for r in results:
        w, f, n = r["resolve_without"], r["resolve_with"], r["notified"]
        print(
            f"{r['label']:<15} {r['connected']:>5} {r['mode']:<8} {w['p50_ms']:>6.1f}/{w['p99_ms']:<7.1f} ms   {f['p50_ms']:>7.1f}/{f['p99_ms']:<8.1f} ms  {r['p99_ratio']:>6.2f}x   {n.get('p50_ms', 0):>6.0f}/{n.get('p99_ms', 0):<6.0f} ms  {r['notifications_missed']:>6}  {r['shutdown_s']} s  {r['server_cpu_ms_per_promotion']:>6} ms, {r['followers_cpu_ms_per_promotion']:>5} ms  {r['load_before']:.1f}-{r['load_after']:.1f}"
        )
    if args.compare_rev:
        print(
            "\nmedians over rounds    notified p50    p99   server CPU/promotion  followers CPU  load"
        )
        for label in (args.compare_rev, "tree"):
            rs = [r for r in results if r["label"].startswith(f"sse_{label}_")]
            print(
                f"sse @ {label:<16} {_median([r['notified']['p50_ms'] for r in rs]):>8.0f} ms {_median([r['notified']['p99_ms'] for r in rs]):>6.0f} ms"
                f"  {_median([r['server_cpu_ms_per_promotion'] for r in rs]):>14} ms  {_median([r['followers_cpu_ms_per_promotion'] for r in rs]):>10} ms"
                f"  {_median([r['load_after'] for r in rs]):.1f}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

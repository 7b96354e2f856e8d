"""A/B experiments: assignment fidelity, ramp stickiness, and resolve-with-experiment
throughput against plain resolve on the same server in the same run.

    .venv/bin/python bench/experiments/bench_experiments.py [--subjects 1000000]
        [--duration 5] [--rounds 3] [--connections 16] [--json out.json]

1. Fidelity: ``--subjects`` ids (``subject-0`` ...) bucketed over an 80/10/10 split with
   a fixed salt; goal: every share within +-0.3 percentage points of its target.
2. Stickiness: the same subjects through ramps 10 -> 25 -> 50 % of a treatment; goal:
   every subject whose variant's range still covers its bucket keeps its variant (all of
   the treatment's subjects, and the control's that were not handed over), and the share
   that moves equals the share the ramp hands over (within sampling noise).
3. Throughput: ``lorareg serve`` (embedded SQLite) with three versions and a running
   experiment; ``wrk`` alternates plain resolve (``?ref=N`` over the versions) with
   resolve ``?experiment=&subject=`` (1000 subjects), back to back in alternating order,
   for ``--rounds`` rounds; goal: the median per-round ratio experiment / plain >= 0.8. Start-up is not timed: both run
   against the same warm server. Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "resolve"))

from bench_resolve import run_wrk, start_lorareg  # noqa: E402

from registry.experiments.assignment import (  # noqa: E402
    BUCKETS,
    bucket_of,
    initial_ranges,
    parse_split,
    ramp_ranges,
    variant_for_bucket,
)

SALT = "bench-0123456789"
REPO = "acme/brand-voice"


def fidelity(n: int) -> dict[str, Any]:
    variants = ["control", "warm", "formal"]
    ranges = initial_ranges(parse_split("80,10,10", variants))
    owner = [variant_for_bucket(b, ranges) for b in range(BUCKETS)]
    counts = dict.fromkeys(variants, 0)
    started = time.perf_counter()
    for i in range(n):
        counts[owner[bucket_of(SALT, f"subject-{i}")]] += 1
    elapsed = time.perf_counter() - started
    shares = {v: 100 * c / n for v, c in counts.items()}
    target = {"control": 80.0, "warm": 10.0, "formal": 10.0}
    worst = max(abs(shares[v] - target[v]) for v in variants)
    return {
        "subjects": n,
        "shares_pct": shares,
        "max_deviation_pts": worst,
        "ok": worst <= 0.3,
        "assignments_per_s": n / elapsed,
    }


def stickiness(n: int) -> dict[str, Any]:
    variants = ["control", "treatment"]
    buckets = [bucket_of(SALT, f"subject-{i}") for i in range(n)]
    ranges = initial_ranges(parse_split("90,10", variants))
    before = [variant_for_bucket(b, ranges) for b in range(BUCKETS)]
    steps = []
    for pct in (25, 50):
        new = ramp_ranges(ranges, parse_split(f"{100 - pct},{pct}", variants))
        after = [variant_for_bucket(b, new) for b in range(BUCKETS)]
        kept_treatment = lost_treatment = moved = 0
        for b in buckets:
            if before[b] == "treatment":
                if after[b] == "treatment":
                    kept_treatment += 1
                else:
                    lost_treatment += 1
            moved += before[b] != after[b]
        handed = sum(o != a for o, a in zip(before, after, strict=True)) / BUCKETS
        steps.append(
            {
                "to_pct": pct,
                "treatment_kept": kept_treatment,
                "treatment_lost": lost_treatment,
                "moved_pct": 100 * moved / n,
                "handed_over_pct": 100 * handed,
                # Only the control's handed-over buckets move, and nobody else.
                "ok": lost_treatment == 0 and abs(moved / n - handed) < 4 / n**0.5,
            }
        )
        ranges, before = new, after
    return {"subjects": n, "steps": steps, "ok": all(s["ok"] for s in steps)}


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    from registry.client.local import LocalClient
    from registry.config import load_settings
    from registry.db.database import Database
    from registry.db.migrate import upgrade
    from registry.runtime import open_runtime
    from tests.factories import make_adapter

    home = Path(tempfile.mkdtemp(prefix="lorareg-bench-exp-"))
    url = f"sqlite:///{home}/catalog.db"
    upgrade(Database(url))
    settings = load_settings(
        home=home, database_url=url, storage_url=(home / "blobs").as_uri(), author="bench"
    )
    rt = open_runtime(settings)
    client = LocalClient(rt)
    for seed in (1, 2, 3):
        client.push(make_adapter(home / f"a{seed}", seed=seed), REPO, base="tiny-llama")
    client.promote(f"{REPO}:1", to="production")
    client.experiment_create(
        REPO,
        "tone-test",
        variants=[("control", "@production"), ("warm", "2"), ("formal", "3")],
        split="80,10,10",
        metric="conversion",
    )
    rt.close()
    proc, base = start_lorareg(url, home)
    try:
        plain = [f"/api/v1/resolve/{REPO}?ref={n}" for n in (1, 2, 3)]
        exp = [
            f"/api/v1/resolve/{REPO}?experiment=tone-test&subject=client-{i}" for i in range(1000)
        ]
        import httpx

        with httpx.Client(base_url=base) as http:  # one pass: the serving steady state
            for p in plain + exp:
                http.get(p).raise_for_status()
        rounds: dict[str, list[dict[str, float]]] = {"plain": [], "experiment": []}
        ratios = []
        for i in range(args.rounds):
            # Back to back, in alternating order: a shared machine's load drifts.
            pair = [("plain", plain), ("experiment", exp)]
            for kind, paths in pair if i % 2 == 0 else pair[::-1]:
                rounds[kind].append(
                    run_wrk(base, paths, seconds=args.duration, connections=args.connections)
                )
            ratios.append(rounds["experiment"][-1]["rps"] / rounds["plain"][-1]["rps"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    med = {k: statistics.median(r["rps"] for r in v) for k, v in rounds.items()}
    ratio = statistics.median(ratios)
    return {
        "plain_rps": med["plain"],
        "experiment_rps": med["experiment"],
        "ratio": ratio,  # the median of the per-round ratios
        "ratios": ratios,
        "rounds": rounds,
        "ok": ratio >= 0.8,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=1_000_000)
    ap.add_argument("--duration", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out: dict[str, Any] = {"fidelity": fidelity(args.subjects)}
    f = out["fidelity"]
    print(
        f"fidelity: {f['subjects']:,} subjects -> "
        + ", ".join(f"{v} {s:.3f}%" for v, s in f["shares_pct"].items())
        + f"; max deviation {f['max_deviation_pts']:.3f} pts (goal <= 0.3): "
        + ("ok" if f["ok"] else "FAIL")
        + f"; {f['assignments_per_s']:,.0f} assignments/s"
    )
    out["stickiness"] = stickiness(args.subjects)
    for s in out["stickiness"]["steps"]:
        print(
            f"ramp -> {s['to_pct']}%: treatment kept {s['treatment_kept']:,}, lost"
            f" {s['treatment_lost']}; moved {s['moved_pct']:.3f}% of subjects, handed over"
            f" {s['handed_over_pct']:.2f}% of buckets: " + ("ok" if s["ok"] else "FAIL")
        )
    if not args.skip_http:
        out["throughput"] = t = throughput(args)
        print(
            f"resolve: plain {t['plain_rps']:,.0f} req/s, with experiment"
            f" {t['experiment_rps']:,.0f} req/s (medians); median ratio of {len(t['ratios'])}"
            f" back-to-back rounds {t['ratio']:.2f} (goal >= 0.8): " + ("ok" if t["ok"] else "FAIL")
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

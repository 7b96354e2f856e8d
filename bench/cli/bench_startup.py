"""Wall time of read-only CLI commands as a user sees them (a fresh process, start-up
included), embedded and remote, against bare interpreters importing what any such
command needs, in the same run.

    .venv/bin/python bench/cli/bench_startup.py [--runs 9] [--json out.json]

Builds an embedded catalog of three adapters (SQLite + local folder), then times each of
``--help``, ``list``, ``show``, ``history`` and ``jobs``: in embedded mode, and in remote
mode against a ``lorareg serve`` on the same catalog. Each command runs ``--runs`` times,
interleaved with the baselines (``python -c "import click, sqlalchemy"`` for embedded,
``python -c "import click, httpx"`` for remote), so the machine's other load weighs on
all alike; medians are reported, with each command's ratio to its baseline. Goal: every
command <= 0.3 s on an idle machine.

Each read command also runs with ``LORAREG_FAST_READS=0`` (the ``slow:`` rows: the click
commands, as before the read fast path), interleaved too, so before and after are measured
in the same conditions; and the floors: a bare ``python -c pass`` and ``import click``.
The load average is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.transfer.bench_transfer import make_adapter  # noqa: E402
from tests.fixtures.s3 import free_port  # noqa: E402

LORAREG = [sys.executable, "-m", "cli.main"]
COMMANDS = {
    "--help": ["--help"],
    "list": ["list"],
    "show": ["show", "bench/a0"],
    "history": ["history", "bench/a0"],
    "jobs": ["jobs"],
}
READS = ("list", "show", "history", "jobs")
FLOORS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import click": [sys.executable, "-c", "import click"],
}
BASELINES = {
    "embedded": [sys.executable, "-c", "import click, sqlalchemy"],
    "remote": [sys.executable, "-c", "import click, httpx"],
}


def wall(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True)
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {proc.stderr.decode()[-2000:]}")
    return took


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    import httpx

    for _ in range(300):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def measure(env: dict[str, str], baseline: list[str], runs: int) -> dict[str, list[float]]:
    slow_env = {**env, "LORAREG_FAST_READS": "0"}
    runs_of: dict[str, tuple[list[str], dict[str, str]]] = {"baseline": (baseline, env)}
    runs_of.update({k: (cmd, env) for k, cmd in FLOORS.items()})
    for name, cmd_args in COMMANDS.items():
        runs_of[name] = ([*LORAREG, *cmd_args], env)
        if name in READS:
            runs_of[f"slow: {name}"] = ([*LORAREG, *cmd_args], slow_env)
    for cmd, cmd_env in runs_of.values():
        wall(cmd, cmd_env)  # warm the page cache and .pyc files
    times: dict[str, list[float]] = {name: [] for name in runs_of}
    for _ in range(runs):
        for name, (cmd, cmd_env) in runs_of.items():
            times[name].append(wall(cmd, cmd_env))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--json", type=Path, help="also write the medians here")
    args = ap.parse_args()
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="lorareg-cli-bench-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "LORAREG_HOME": str(work / "home"),
               "LORAREG_CACHE_DIR": str(work / "cache"), "LORAREG_AUTHOR": "bench"}  # fmt: skip
        env.pop("LORAREG_URL", None)
        for i in range(3):
            folder = make_adapter(work / f"a{i}", 0.5, i)
            subprocess.run([*LORAREG, "push", str(folder), f"bench/a{i}"], cwd=ROOT, env=env,
                           check=True, capture_output=True)  # fmt: skip
        results = {"embedded": measure(env, BASELINES["embedded"], args.runs)}
        port = free_port()
        server = subprocess.Popen([*LORAREG, "serve", "--port", str(port)], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            wait_up(f"http://127.0.0.1:{port}/healthz", server)
            remote_env = {**env, "LORAREG_URL": f"http://127.0.0.1:{port}"}
            results["remote"] = measure(remote_env, BASELINES["remote"], args.runs)
        finally:
            server.terminate()
            server.wait(10)

    load = os.getloadavg()
    medians = {mode: {k: statistics.median(v) for k, v in t.items()} for mode, t in results.items()}
    print(f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f};"
          f" after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")  # fmt: skip
    print(f"{'mode':9} {'command':15} {'median s':>9} {'min s':>7} {'x baseline':>11}")
    for mode, times in results.items():
        base = medians[mode]["baseline"]
        for name, samples in times.items():
            label = " ".join(BASELINES[mode][2:]) if name == "baseline" else name
            print(f"{mode:9} {label[:28]:15} {medians[mode][name]:9.3f} {min(samples):7.3f}"
                  f" {medians[mode][name] / base:11.2f}")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(medians, indent=2))


if __name__ == "__main__":
    main()

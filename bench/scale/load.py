"""HTTP load for the scale benchmark: ``wrk`` for throughput, an asyncio httpx client for
series that need each request chosen (cold references, pages), both reduced to a Series."""

from __future__ import annotations

import asyncio
import math
import re
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

WRK_SCRIPT = Path(__file__).with_name("paths.lua")
K = TypeVar("K")


@dataclass
class Series:
    """Latencies of one kind of request, in milliseconds."""

    p50: float
    p99: float
    count: int
    rps: float
    statuses: Counter[int] = field(default_factory=Counter)
    size: float = math.nan  # median response body, bytes (not measured by wrk)
    samples: list[float] = field(default_factory=list, repr=False)  # each latency, ms

    def to_json(self) -> dict[str, object]:
        return {
            "p50_ms": self.p50,
            "p99_ms": self.p99,
            "count": self.count,
            "rps": self.rps,
            "statuses": dict(self.statuses),
            "bytes": self.size,
        }


def percentile(ms: list[float], q: float) -> float:
    if not ms:
        return math.nan
    ordered = sorted(ms)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


async def run_series(
    base_url: str,
    path: Callable[[int], str],
    *,
    count: int,
    seconds: float,
    concurrency: int = 1,
    rows: Callable[[httpx.Response], int] | None = None,
    expect_rows: int | None = None,
) -> Series:
    """``count`` GETs of ``path(i)`` (``concurrency`` at a time), stopping early after
    ``seconds``; raises on any answer other than 200, or (with ``rows``) one that does not
    hold ``expect_rows`` rows: either would make the figure a lie."""
    latencies: list[float] = []
    sizes: list[float] = []
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    next_i = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:

        async def worker() -> None:
            nonlocal next_i
            while next_i < count and time.monotonic() < deadline:
                i, next_i = next_i, next_i + 1
                url = path(i)
                t0 = time.perf_counter()
                resp = await http.get(url)
                latencies.append((time.perf_counter() - t0) * 1000)
                sizes.append(len(resp.content))
                statuses[resp.status_code] += 1
                if resp.status_code != 200:
                    raise RuntimeError(f"GET {url}: {resp.status_code} {resp.text[:300]}")
                if rows is not None and (got := rows(resp)) != expect_rows:
                    raise RuntimeError(f"GET {url}: {got} rows, not {expect_rows}")

        t0 = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.monotonic() - t0
    return Series(
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        count=len(latencies),
        rps=len(latencies) / wall if wall else 0.0,
        statuses=statuses,
        size=percentile(sizes, 50),
        samples=latencies,
    )


@dataclass(frozen=True)
class Target:
    """One server's side of an interleaved series: where, what, and how many rows."""

    base_url: str
    path: Callable[[int], str]
    rows: Callable[[httpx.Response], int] | None = None
    expect_rows: int | None = None


def run_interleaved(targets: dict[K, Target], *, count: int, seconds: float) -> dict[K, Series]:
    """``count`` GETs per target, one at a time, taking turns (A B, B A, A B, ...), so
    whatever else runs on the machine lands on every target alike: on a shared box that
    matters more than anything the catalogs differ in. Same checks as ``run_series``."""
    keys = list(targets)
    took: dict[K, list[float]] = {k: [] for k in keys}
    sizes: dict[K, list[float]] = {k: [] for k in keys}
    clients = {k: httpx.Client(base_url=t.base_url, timeout=120) for k, t in targets.items()}
    deadline = time.monotonic() + seconds * len(keys)
    t0 = time.monotonic()
    try:
        for i in range(count):
            if time.monotonic() >= deadline:
                break
            for k in keys if i % 2 == 0 else reversed(keys):
                t = targets[k]
                url = t.path(i)
                start = time.perf_counter()
                resp = clients[k].get(url)
                took[k].append((time.perf_counter() - start) * 1000)
                sizes[k].append(len(resp.content))
                if resp.status_code != 200:
                    raise RuntimeError(f"GET {url}: {resp.status_code} {resp.text[:300]}")
                if t.rows is not None and (got := t.rows(resp)) != t.expect_rows:
                    raise RuntimeError(f"GET {url}: {got} rows, not {t.expect_rows}")
    finally:
        for c in clients.values():
            c.close()
    wall = time.monotonic() - t0
    return {
        k: Series(
            p50=percentile(took[k], 50),
            p99=percentile(took[k], 99),
            count=len(took[k]),
            rps=len(took[k]) / wall if wall else 0.0,
            statuses=Counter({200: len(took[k])}),
            size=percentile(sizes[k], 50),
            samples=took[k],
        )
        for k in keys
    }


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(base_url: str, paths: list[str], *, seconds: float, connections: int) -> Series:
    """``wrk`` with ``paths.lua`` picking a random path of ``paths`` per request."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as listing:
        listing.write("\n".join(paths) + "\n")
        listing.flush()
        cmd = [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(WRK_SCRIPT),
            base_url,
            "--",
            listing.name,
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    pct = {
        m.group(1): float(m.group(2)) * _UNITS[m.group(3)]
        for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    total = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not (total and rps and len(pct) == 2):
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    n = int(total.group(1))
    return Series(
        p50=pct["50"], p99=pct["99"], count=n, rps=float(rps.group(1)), statuses=Counter({200: n})
    )

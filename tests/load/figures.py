"""Latency figures for the load suite, and the summary file CI keeps.

pytest shows a passing test's prints only with ``-s`` (and never under xdist), so every
figure is also appended to ``test-artifacts/load-summary.txt``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SUMMARY = Path(__file__).resolve().parents[2] / "test-artifacts" / "load-summary.txt"


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``values``; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Calls:
    """Every request of one kind: its status (0: no response) and latency in seconds."""

    name: str
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    # Requests that got no response, by exception name (ReadTimeout, ConnectError, ...).
    failures: Counter[str] = field(default_factory=Counter)

    def add(self, status: int, seconds: float) -> None:
        self.statuses[status] += 1
        self.latencies.append(seconds)

    def fail(self, reason: str, seconds: float) -> None:
        self.add(0, seconds)
        self.failures[reason] += 1

    def merge(self, other: Calls) -> None:
        self.statuses.update(other.statuses)
        self.latencies.extend(other.latencies)
        self.failures.update(other.failures)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def errors(self) -> int:
        """Requests that got no answer or a 5xx."""
        return sum(n for s, n in self.statuses.items() if s == 0 or s >= 500)

    def line(self) -> str:
        ms = [x * 1000 for x in self.latencies]
        return (
            f"{self.name}: {self.count} requests, {self.errors} errors,"
            f" statuses {dict(sorted(self.statuses.items()))},"
            f" p50 {percentile(ms, 50):.1f} ms, p99 {percentile(ms, 99):.1f} ms,"
            f" max {max(ms, default=math.nan):.1f} ms"
            + (f", no response: {dict(self.failures)}" if self.failures else "")
        )


def report(title: str, lines: list[str]) -> None:
    """Print a section and append it to the summary file."""
    text = "\n".join([f"== {title}", *(f"  {line}" for line in lines)]) + "\n"
    print(text, end="")
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    with open(SUMMARY, "a", encoding="utf-8") as fh:
        fh.write(text)

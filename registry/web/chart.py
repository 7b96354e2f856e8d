"""Eval scores across versions as inline SVG geometry, computed on the server.

One small chart per metric (small multiples): metrics live on unrelated scales
(accuracy in [0, 1], perplexity in the tens), so a shared y-axis would flatten most lines.
The template draws the shapes; this module only does the arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from registry.domain import VersionInfo
from registry.web.format import number
from registry.web.views import latest_scores

WIDTH, HEIGHT = 320, 150
LEFT, RIGHT, TOP, BOTTOM = 48, 14, 12, 28
MAX_X_TICKS = 8


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    version: int
    value: float


@dataclass(frozen=True)
class Tick:
    pos: float
    text: str


@dataclass(frozen=True)
class Chart:
    label: str
    higher_is_better: bool
    points: list[Point]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def _scale(lo: float, hi: float, a: float, b: float) -> tuple[float, float]:
    """Slope and offset mapping [lo, hi] onto [a, b]."""
    k = (b - a) / (hi - lo)
    return k, a - k * lo


def _y_range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if lo == hi:  # a flat series still needs a visible band around it
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def eval_charts(versions: Sequence[VersionInfo], labels: Sequence[str]) -> list[Chart]:
    """A chart per label over the given versions, x by version number, oldest on the left."""
    ordered = sorted(versions, key=lambda v: v.number)
    if not ordered:
        return []
    first, last = ordered[0].number, ordered[-1].number
    x_lo, x_hi = (first - 1, last + 1) if first == last else (first, last)
    kx, bx = _scale(x_lo, x_hi, LEFT + 6, WIDTH - RIGHT - 6)
    step = max(1, -(-len(ordered) // MAX_X_TICKS))
    x_ticks = [Tick(kx * v.number + bx, f"v{v.number}") for v in ordered[::step]]
    charts = []
    for label in labels:
        series = [
            (v.number, rec) for v in ordered if (rec := latest_scores(v).get(label)) is not None
        ]
        if not series:
            continue
        values = [rec.value for _, rec in series]
        ky, by = _scale(*_y_range(values), HEIGHT - BOTTOM, TOP)
        points = [Point(kx * n + bx, ky * rec.value + by, n, rec.value) for n, rec in series]
        # Label the observed extremes, not the padded frame: readers want real scores.
        y_ticks = [Tick(ky * val + by, number(val)) for val in sorted({min(values), max(values)})]
        charts.append(
            Chart(
                label=label,
                higher_is_better=series[-1][1].higher_is_better,
                points=points,
                x_ticks=x_ticks,
                y_ticks=y_ticks,
            )
        )
    return charts

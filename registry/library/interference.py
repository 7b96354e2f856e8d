"""How the adapters of a library overlap, module by module, exactly and without dense deltas.

For two adapters x, y changing one module, with ``delta = s B A``::

    <delta_x, delta_y> = s_x s_y sum((B_x.T B_y) * (A_x A_y.T))      O(r_x r_y (d_in + d_out))

From the inner products and the squared norms come the cosine (direction: near 0 independent,
near +1 pushing the same way, near -1 undoing each other) and each adapter's overlap,
``<x, y> / ||x||^2``: how much of x's change y repeats (1 when y contains all of x).

The work runs module by module: one module's factors of every adapter are read at a time,
so memory is bounded by the largest module, not by the library.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from registry.library.factors import FactorSource, check_shapes

PairKey = tuple[int, int]


@dataclass(frozen=True)
class ModuleOverlap:
    """The raw numbers of one module of one pair; everything else derives from them."""

    inner: float
    norm_sq_x: float
    norm_sq_y: float

    @property
    def cosine(self) -> float:
        denom = math.sqrt(self.norm_sq_x * self.norm_sq_y)
        return self.inner / denom if denom > 0 else 0.0

    @property
    def overlap_x(self) -> float:
        return self.inner / self.norm_sq_x if self.norm_sq_x > 0 else 0.0

    @property
    def overlap_y(self) -> float:
        return self.inner / self.norm_sq_y if self.norm_sq_y > 0 else 0.0

    def swapped(self) -> ModuleOverlap:
        return ModuleOverlap(self.inner, self.norm_sq_y, self.norm_sq_x)

    def to_list(self) -> list[float]:
        return [self.inner, self.norm_sq_x, self.norm_sq_y]


PairModules = dict[str, ModuleOverlap]


@dataclass(frozen=True)
class PairSummary:
    """One pair over its shared modules: the whole-adapter cosine (the deltas of all shared
    modules as one vector) and the worst module by |cosine|."""

    modules: int
    cosine: float
    mean_abs_cosine: float
    max_abs_cosine: float
    worst_module: str | None
    worst_cosine: float
    overlap_x: float
    overlap_y: float

    @classmethod
    def of(cls, modules: PairModules) -> PairSummary:
        if not modules:
            return cls(0, 0.0, 0.0, 0.0, None, 0.0, 0.0, 0.0)
        inner = sum(m.inner for m in modules.values())
        nx = sum(m.norm_sq_x for m in modules.values())
        ny = sum(m.norm_sq_y for m in modules.values())
        whole = ModuleOverlap(inner, nx, ny)
        worst = max(modules, key=lambda k: abs(modules[k].cosine))
        cosines = [abs(m.cosine) for m in modules.values()]
        return cls(
            modules=len(modules),
            cosine=whole.cosine,
            mean_abs_cosine=sum(cosines) / len(cosines),
            max_abs_cosine=max(cosines),
            worst_module=worst,
            worst_cosine=modules[worst].cosine,
            overlap_x=whole.overlap_x,
            overlap_y=whole.overlap_y,
        )


def all_pairs(n: int) -> list[PairKey]:
    return list(itertools.combinations(range(n), 2))


def pairwise(
    sources: Sequence[FactorSource],
    pairs: Iterable[PairKey] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
) -> dict[PairKey, PairModules]:
    """Per pair ``(i, j)`` (i < j), per module both change: the inner product and norms.

    ``pairs`` defaults to every pair; the library cache asks only for the pairs it lacks.
    Raises ShapeMismatch when a shared module has different shapes.
    """
    check_shapes(sources)
    wanted = sorted({(min(i, j), max(i, j)) for i, j in (pairs or all_pairs(len(sources)))})
    out: dict[PairKey, PairModules] = {p: {} for p in wanted}
    partners: dict[int, list[int]] = {}
    for i, j in wanted:
        partners.setdefault(i, []).append(j)
    involved = sorted({k for p in wanted for k in p})
    modules = sorted({m for k in involved for m in sources[k].shapes})
    for module in modules:
        holders = [k for k in involved if module in sources[k].shapes]
        if len(holders) < 2:
            continue
        a: dict[int, torch.Tensor] = {}
        b: dict[int, torch.Tensor] = {}
        for k in holders:
            f = sources[k].factors(module, dtype=dtype)
            a[k], b[k] = f.a, f.b * f.scale  # the scale rides on B
        norms = {k: _gram_sum(b[k], b[k], a[k], a[k]) for k in holders}
        for i in holders:
            js = [j for j in partners.get(i, []) if j in a]
            if not js:
                continue
            # One matmul against every partner at once; the block sums are the inner products.
            big = (b[i].T @ torch.cat([b[j] for j in js], 1)) * (
                a[i] @ torch.cat([a[j] for j in js], 0).T
            )
            sums = big.sum(0, dtype=torch.float64)
            start = 0
            for j in js:
                r = a[j].shape[0]
                ip = float(sums[start : start + r].sum())
                start += r
                out[(i, j)][module] = ModuleOverlap(ip, norms[i], norms[j])
        del a, b
    return out


def _gram_sum(bx: torch.Tensor, by: torch.Tensor, ax: torch.Tensor, ay: torch.Tensor) -> float:
    return max(float(((bx.T @ by) * (ax @ ay.T)).sum(dtype=torch.float64)), 0.0)

"""How the adapters of a library overlap, module by module, exactly and without dense deltas.

For two adapters x, y changing one module, with ``delta = s B A``::

    <delta_x, delta_y> = s_x s_y sum((B_x.T B_y) * (A_x A_y.T))      O(r_x r_y (d_in + d_out))

From the inner products and the squared norms come the cosine (direction: near 0 independent,
near +1 pushing the same way, near -1 undoing each other) and each adapter's overlap,
``<x, y> / ||x||^2``: how much of x's change y repeats (1 when y contains all of x).

The work runs module by module: one module's factors of every adapter are read at a time,
so memory is bounded by the largest module, not by the library. The algebra is
``registry.formats.lowrank`` (numpy), shared with the promotion gate: all pairs of a module
are two Gram products, a new version's pairs one block row.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from registry.formats import lowrank
from registry.formats.lowrank import Array
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


Strategy = Literal["auto", "gram", "rows"]

# A module's pairs go through the Gram of every adapter holding it (``lowrank.gram_inner``)
# when they are at least this share of all its pairs; fewer (a new version against the
# library: one block row) go through ``lowrank.cross_inner`` of the adapters they need.
GRAM_SHARE = 0.25


def pairwise(
    sources: Sequence[FactorSource],
    pairs: Iterable[PairKey] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    strategy: Strategy = "auto",
) -> dict[PairKey, PairModules]:
    """Per pair ``(i, j)`` (i < j), per module both change: the inner product and norms.

    ``pairs`` defaults to every pair; the library cache asks only for the pairs it lacks.
    One module's factors are read at a time (of the adapters its pairs need), so memory is
    bounded by one module of the library. ``strategy`` forces a path (tests compare them).
    Raises ShapeMismatch when a shared module has different shapes.
    """
    check_shapes(sources)
    wanted = sorted({(min(i, j), max(i, j)) for i, j in (pairs or all_pairs(len(sources)))})
    out: dict[PairKey, PairModules] = {p: {} for p in wanted}
    involved = sorted({k for p in wanted for k in p})
    modules = sorted({m for k in involved for m in sources[k].shapes})
    for module in modules:
        held = {k for k in involved if module in sources[k].shapes}
        mod_pairs = [(i, j) for i, j in wanted if i in held and j in held]
        if not mod_pairs:
            continue
        needed = sorted({k for p in mod_pairs for k in p})
        bs: dict[int, Array] = {}
        as_: dict[int, Array] = {}
        for k in needed:
            f = sources[k].factors(module, dtype=dtype)
            as_[k] = f.a.contiguous().numpy()
            bs[k] = (f.b * f.scale).contiguous().numpy()  # the scale rides on B
        inner, norms = module_inner(bs, as_, mod_pairs, strategy=strategy)
        del bs, as_
        for i, j in mod_pairs:
            out[(i, j)][module] = ModuleOverlap(inner[(i, j)], norms[i], norms[j])
    return out


def module_inner(
    bs: dict[int, Array],
    as_: dict[int, Array],
    pairs: Sequence[PairKey],
    *,
    strategy: Strategy = "auto",
) -> tuple[dict[PairKey, float], dict[int, float]]:
    """One module's inner products of ``pairs`` and the squared norms of their adapters."""
    keys = sorted(bs)
    k = len(keys)
    if strategy == "gram" or (strategy == "auto" and len(pairs) >= GRAM_SHARE * k * (k - 1) / 2):
        full = _blocked_gram(bs, as_, keys)
        pos = {key: n for n, key in enumerate(keys)}
        norms = {key: max(float(full[pos[key], pos[key]]), 0.0) for key in keys}
        return {(i, j): float(full[pos[i], pos[j]]) for i, j in pairs}, norms
    rows = _row_cover(pairs)
    cols = sorted({j if i in rows else i for i, j in pairs})
    block = _blocked_cross(bs, as_, sorted(rows), cols)
    rpos = {key: n for n, key in enumerate(sorted(rows))}
    cpos = {key: n for n, key in enumerate(cols)}
    inner = {}
    for i, j in pairs:
        r, c = (i, j) if i in rows and j in cpos else (j, i)
        inner[(i, j)] = float(block[rpos[r], cpos[c]])
    norms = {key: lowrank.norm_sq(bs[key], as_[key]) for key in keys}
    return inner, norms


def _row_cover(pairs: Sequence[PairKey]) -> set[int]:
    """Adapters that touch every pair (greedy vertex cover: the busiest adapter first), so
    the pairs are rows x columns of one cross product: a new version is the one row."""
    left = set(pairs)
    rows: set[int] = set()
    while left:
        degree: dict[int, int] = {}
        for i, j in left:
            degree[i] = degree.get(i, 0) + 1
            degree[j] = degree.get(j, 0) + 1
        top = max(sorted(degree), key=lambda key: degree[key])
        rows.add(top)
        left = {p for p in left if top not in p}
    return rows


def _chunks(keys: Sequence[int], as_: dict[int, Array]) -> list[list[int]]:
    """Consecutive groups whose stacked rank stays within ``lowrank.MAX_STACKED_RANK``."""
    groups: list[list[int]] = [[]]
    total = 0
    for key in keys:
        r = int(as_[key].shape[0])
        if groups[-1] and total + r > lowrank.MAX_STACKED_RANK:
            groups.append([])
            total = 0
        groups[-1].append(key)
        total += r
    return groups


def _blocked_gram(bs: dict[int, Array], as_: dict[int, Array], keys: list[int]) -> Array:
    groups = _chunks(keys, as_)
    full = np.zeros((len(keys), len(keys)))
    starts = np.cumsum([0] + [len(g) for g in groups])
    for gi, g in enumerate(groups):
        si = slice(starts[gi], starts[gi + 1])
        full[si, si] = lowrank.gram_inner([bs[k] for k in g], [as_[k] for k in g])
        for gj in range(gi + 1, len(groups)):
            h = groups[gj]
            sj = slice(starts[gj], starts[gj + 1])
            full[si, sj] = lowrank.cross_inner(
                [bs[k] for k in g], [as_[k] for k in g], [bs[k] for k in h], [as_[k] for k in h]
            )
            full[sj, si] = full[si, sj].T
    return full


def _blocked_cross(
    bs: dict[int, Array], as_: dict[int, Array], rows: list[int], cols: list[int]
) -> Array:
    out = np.zeros((len(rows), len(cols)))
    r0 = 0
    for g in _chunks(rows, as_):
        c0 = 0
        for h in _chunks(cols, as_):
            out[r0 : r0 + len(g), c0 : c0 + len(h)] = lowrank.cross_inner(
                [bs[k] for k in g], [as_[k] for k in g], [bs[k] for k in h], [as_[k] for k in h]
            )
            c0 += len(h)
        r0 += len(g)
    return out

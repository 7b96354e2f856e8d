"""Composing several adapters into one *adapter* (PEFT's ``add_weighted_adapter``), not a base.

Per module, over the adapters that change it (weights ``w_i``, PEFT scales ``s_i``):

- ``cat``: ``A = [w_1 s_1 A_1; w_2 s_2 A_2; ...]``, ``B = [B_1, B_2, ...]``, rank ``sum r_i``:
  exactly the weighted sum of the deltas, and PEFT's factors to the bit (it scales A too).
- ``linear``: PEFT's ``combination_type="linear"``: ``A = sum sign_i c_i A_i``,
  ``B = sum c_i B_i`` with ``c_i = sqrt(|w_i s_i|)``. Not the weighted sum (it has cross terms
  ``B_i A_j``); defined only for adapters of one rank, refused otherwise as PEFT refuses it.
- ``svd``: the optimal rank-R approximation of the weighted sum (Eckart-Young), from QR factors
  of the ``cat`` factors (an r_total x r_total SVD, never d x d). R defaults to the largest input
  rank, as in PEFT; the relative Frobenius error of each module is reported.

The output has scale 1 on every module (``lora_alpha == r``, ``alpha_pattern`` matching
``rank_pattern``, no rsLoRA), so the stored factors *are* the delta. PEFT copies the first
adapter's config instead, so its result under rsLoRA applies an extra ``sqrt(r)``; lorareg's
does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from registry.library.errors import (
    InvalidRank,
    LinearUndefined,
    UnsupportedAdapter,
    WeightCountMismatch,
)
from registry.library.factors import FactorSource, ModuleFactors, check_shapes, core_svd

METHODS = ("cat", "linear", "svd")


@dataclass
class ComposedAdapter:
    """Factors with scale 1 per module, and what the composition lost (svd only)."""

    method: str
    modules: dict[str, ModuleFactors]
    errors: dict[str, float] = field(default_factory=dict)

    @property
    def ranks(self) -> dict[str, int]:
        return {name: f.rank for name, f in self.modules.items()}

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)


def check_compose(
    sources: Sequence[FactorSource],
    weights: Sequence[float] | None,
    *,
    method: str,
    rank: int | None,
    input_ranks: Sequence[int],
) -> list[float]:
    """Refuse a composition before any tensor is read; returns one weight per adapter.

    ``input_ranks``: each input's largest rank (``r`` or a rank_pattern value), as PEFT counts.
    """
    if method not in METHODS:
        raise UnsupportedAdapter(f"compose method {method!r} is unknown; use cat, linear or svd")
    if len(sources) < 1:
        raise WeightCountMismatch("name at least one adapter to compose")
    w = [1.0] * len(sources) if weights is None else [float(x) for x in weights]
    if len(w) != len(sources):
        raise WeightCountMismatch(
            f"{len(w)} weight(s) for {len(sources)} adapter(s); give one weight per adapter"
        )
    if not all(math.isfinite(x) for x in w):
        raise WeightCountMismatch(f"weights must be finite numbers, got {w}")
    if rank is not None and method != "svd":
        raise InvalidRank(
            f"--rank applies to method svd only (cat's rank is the sum, {method}'s the inputs')"
        )
    if rank is not None:
        total = sum(input_ranks)
        if rank <= 0 or rank > total:
            raise InvalidRank(
                f"rank {rank} is outside 1..{total} (the sum of the inputs' ranks, where the"
                " svd of their sum is already exact)"
            )
    if method == "linear" and len(set(input_ranks)) > 1:
        listed = ", ".join(f"{s.label} r={r}" for s, r in zip(sources, input_ranks, strict=True))
        raise LinearUndefined(
            f"method 'linear' (PEFT's: the A's and the B's summed separately) needs adapters of"
            f" one rank ({listed}); use 'cat' (exact) or 'svd' (exact up to its reported error)"
        )
    check_shapes(sources)
    if method == "linear":
        _check_linear_modules(sources)
    return w


def _check_linear_modules(sources: Sequence[FactorSource]) -> None:
    ranks: dict[str, set[int]] = {}
    for src in sources:
        for module, shape in src.shapes.items():
            ranks.setdefault(module, set()).add(shape.rank)
    for module, found in sorted(ranks.items()):
        if len(found) > 1:
            raise LinearUndefined(
                f"method 'linear' sums the A's of {module}, but its ranks differ ({sorted(found)},"
                " through rank_pattern); use 'cat' or 'svd'"
            )


def compose(
    sources: Sequence[FactorSource],
    weights: Sequence[float],
    *,
    method: str,
    rank: int | None = None,
    default_rank: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> ComposedAdapter:
    """Compose checked sources (see ``check_compose``) module by module."""
    modules = sorted({m for s in sources for m in s.shapes})
    out = ComposedAdapter(method=method, modules={})
    target = rank or default_rank or max(sh.rank for s in sources for sh in s.shapes.values())
    for module in modules:
        parts = [
            (s.factors(module, dtype=torch.float64), w)
            for s, w in zip(sources, weights, strict=True)
            if module in s.shapes
        ]
        embedding = parts[0][0].embedding
        if method == "linear":
            a, b = _linear(parts)
        else:
            a = torch.cat([f.a * (w * f.scale) for f, w in parts], dim=0)
            b = torch.cat([f.b for f, _ in parts], dim=1)
            if method == "svd":
                core = core_svd(a, b)
                out.errors[module] = core.relative_error(target)
                a, b = core.truncate(target)
        out.modules[module] = ModuleFactors(
            module, a.to(dtype).contiguous(), b.to(dtype).contiguous(), 1.0, embedding
        )
    return out


def _linear(parts: list[tuple[ModuleFactors, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    a_sum = torch.zeros_like(parts[0][0].a)
    b_sum = torch.zeros_like(parts[0][0].b)
    for f, w in parts:
        scaled = w * f.scale
        c = math.sqrt(abs(scaled))
        a_sum += f.a * (c if scaled >= 0 else -c)
        b_sum += f.b * c
    return a_sum, b_sum

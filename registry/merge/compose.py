"""Composing several adapters into one change per tensor, and how much they interfere.

Methods (every one of them is exact for what it promises):

- ``sum`` (the default): the weighted sum of the adapters' deltas,
  ``W + sum_i w_i * s_i * B_i @ A_i`` (DoRA and replacements contribute ``w_i * (out_i - W)``,
  see ``delta.py``). Until issue 13 this was called ``linear``.
- ``linear``: PEFT's ``add_weighted_adapter(combination_type="linear")``: A and B are scaled
  *separately* by ``c_i = sqrt(|w_i * s_i|)`` (the sign on A) and summed, so the delta is
  ``(sum_i c_i B_i)(sum_j sign_j c_j A_j)``, with cross terms ``B_i A_j``: *not* the
  weighted sum of the deltas. Refused, as PEFT refuses it, for adapters of different ranks.
- ``cat``: concatenate the A's and the weighted, scaled B's into one factor pair of rank
  ``sum r_i``. ``[w_1 s_1 B_1, w_2 s_2 B_2] @ [A_1; A_2]`` *is* the weighted sum of the
  deltas, so the merged weights equal ``sum``'s up to fp32 rounding (PEFT's ``cat`` too); it
  exists because it is one matmul per chunk instead of one per adapter.
- ``svd``: the weighted sum of the deltas truncated to ``svd_rank`` singular values per
  module (default: the largest rank among the adapters on that module). Computed from the
  factors (QR of the stacked B's and A's, then an SVD of the small core), so it never forms
  a full delta; at full rank it equals ``sum``. PEFT's ``svd`` takes a full SVD of the dense
  sum and defaults the rank to the largest ``r`` / ``rank_pattern`` of the configs.

PEFT builds a new *adapter*; lorareg merges the composition straight into the base. DoRA
under ``linear`` / ``cat`` / ``svd`` is refused: DoRA's row rescaling is not a low-rank delta.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from registry.merge.adapters import AdapterInput, LoadedAdapter, load_adapters
from registry.merge.delta import LowRank, PreparedTensor, Term
from registry.merge.plan import TensorPlan
from registry.merge.tensor_io import TensorFile

Factors = dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]
"""Per contribution index: (A, B, DoRA magnitude) as fp32 tensors on the merge device."""


def prepare_tensor(
    plan: TensorPlan, factors: Factors, *, method: str, svd_rank: int | None
) -> PreparedTensor:
    """Turn a tensor's contributions into the terms ``delta.merge_rows`` applies.

    Plain LoRA under ``sum`` becomes one term with one low-rank pair per adapter, so the
    merge adds each delta in place; DoRA and replacements keep a term per adapter.
    """
    contribs = plan.contributions
    if not contribs:
        return PreparedTensor(plan, [])
    loras = [i for i, c in enumerate(contribs) if c.lora is not None]
    if method == "linear" and len(loras) > 1:
        # plan.py has refused DoRA, replacements and unequal ranks for this method.
        a_sum: torch.Tensor | None = None
        b_sum: torch.Tensor | None = None
        for i in loras:
            c = contribs[i]
            assert c.lora is not None
            a, b, _ = factors[i]
            scaled = c.weight * c.lora.scale
            coef = math.sqrt(abs(scaled))
            a_i, b_i = a * (coef if scaled >= 0 else -coef), b * coef
            a_sum = a_i if a_sum is None else a_sum + a_i
            b_sum = b_i if b_sum is None else b_sum + b_i
        assert a_sum is not None and b_sum is not None
        return PreparedTensor(plan, [Term(weight=1.0, low_rank=[LowRank(a_sum, b_sum, 1.0)])])
    if method in ("sum", "linear"):
        # A lone adapter: PEFT's linear is its delta times its weight, as the sum is.
        plain = all(c.replacement is None and c.lora and not c.lora.magnitude_key for c in contribs)
        if plain:
            pairs = []
            for i, c in enumerate(contribs):
                assert c.lora is not None
                a, b, _ = factors[i]
                pairs.append(LowRank(a, b, c.lora.scale * c.weight))
            return PreparedTensor(plan, [Term(weight=1.0, low_rank=pairs)])
        terms = []
        for i, c in enumerate(contribs):
            term = Term(weight=c.weight, replacement=i if c.replacement is not None else None)
            if c.lora is not None:
                a, b, magnitude = factors[i]
                term.low_rank = [LowRank(a, b, c.lora.scale)]
                term.magnitude = magnitude
            terms.append(term)
        return PreparedTensor(plan, terms)
    # cat / svd: plan.py has refused DoRA, and allows a replacement only for a lone adapter.
    a_parts, b_parts, ranks = [], [], []
    for i, c in enumerate(contribs):
        if c.lora is not None:
            a, b, _ = factors[i]
            a_parts.append(a)
            b_parts.append(b * (c.lora.scale * c.weight))
            ranks.append(c.lora.rank)
    low_rank: list[LowRank] = []
    if a_parts:
        a_cat, b_cat = torch.cat(a_parts, dim=0), torch.cat(b_parts, dim=1)
        if method == "svd":
            a_cat, b_cat = truncated_svd(a_cat, b_cat, svd_rank or max(ranks))
        low_rank = [LowRank(a_cat, b_cat, 1.0)]
    replaced = next((i for i, c in enumerate(contribs) if c.replacement is not None), None)
    return PreparedTensor(plan, [Term(weight=1.0, low_rank=low_rank, replacement=replaced)])


def truncated_svd(a: torch.Tensor, b: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors (A', B') of the best rank-``rank`` approximation of ``B @ A``.

    ``B = Qb Rb`` and ``A.T = Qa Ra`` give ``B @ A = Qb (Rb Ra.T) Qa.T``, so only the small
    core needs an SVD; done in fp64 because the core's conditioning is the delta's.
    """
    dtype = a.dtype
    qb, rb = torch.linalg.qr(b.double())
    qa, ra = torch.linalg.qr(a.double().T)
    u, s, vh = torch.linalg.svd(rb @ ra.T, full_matrices=False)
    t = min(rank, s.numel())
    new_b = qb @ (u[:, :t] * s[:t])
    new_a = vh[:t] @ qa.T
    return new_a.to(dtype).contiguous(), new_b.to(dtype).contiguous()


@dataclass(frozen=True)
class ModuleOverlap:
    """Two adapters changing one module, and the cosine similarity of their deltas."""

    module: str
    adapters: tuple[str, str]
    cosine: float


@dataclass(frozen=True)
class PairSummary:
    adapters: tuple[str, str]
    modules: int
    mean_cosine: float
    mean_abs_cosine: float
    max_abs_cosine: float


@dataclass(frozen=True)
class InterferenceReport:
    """Summary of how the adapters' deltas overlap on modules they both change.

    A cosine near 0 means independent directions (they compose well); near +1 they push the
    same way (their weights add up); near -1 they undo each other.
    """

    pairs: list[PairSummary]
    top: list[ModuleOverlap]
    modules_shared: int

    @property
    def max_abs_cosine(self) -> float:
        return max((p.max_abs_cosine for p in self.pairs), default=0.0)

    def to_dict(self) -> dict[str, object]:
        return {
            "modules_shared": self.modules_shared,
            "max_abs_cosine": self.max_abs_cosine,
            "pairs": [p.__dict__ | {"adapters": list(p.adapters)} for p in self.pairs],
            "top": [m.__dict__ | {"adapters": list(m.adapters)} for m in self.top],
        }

    def lines(self) -> list[str]:
        """Human-readable lines for the CLI."""
        if not self.pairs:
            return ["interference: no module is changed by more than one adapter"]
        out = [f"interference: {self.modules_shared} modules changed by more than one adapter"]
        for p in self.pairs:
            out.append(
                f"  {p.adapters[0]} x {p.adapters[1]}: {p.modules} modules, cosine mean"
                f" {p.mean_cosine:+.3f}, mean |cos| {p.mean_abs_cosine:.3f},"
                f" max |cos| {p.max_abs_cosine:.3f}"
            )
        if self.top:
            out.append("  most aligned modules:")
            out.extend(
                f"    {m.cosine:+.3f}  {m.module}  ({m.adapters[0]} x {m.adapters[1]})"
                for m in self.top
            )
        return out


def interference_report(adapters: Sequence[AdapterInput], *, top: int = 10) -> InterferenceReport:
    """Cosine similarity of the deltas of every module two adapters both change.

    Works from the factors alone (``<B1 A1, B2 A2> = sum((B1.T B2) * (A1 A2.T))``), so it
    reads only the adapters, never the base. DoRA adapters are compared by their LoRA deltas.
    Raises InvalidAdapter like ``merge_adapters`` for adapters it cannot read.
    """
    return adapter_interference(load_adapters(adapters), top=top)


def adapter_interference(items: Sequence[LoadedAdapter], *, top: int = 10) -> InterferenceReport:
    files = [TensorFile(a.weights_path) for a in items]
    try:
        overlaps: list[ModuleOverlap] = []
        pairs: list[PairSummary] = []
        shared: set[str] = set()
        for i, j in itertools.combinations(range(len(items)), 2):
            common = sorted(set(items[i].loras) & set(items[j].loras))
            cosines = []
            for module in common:
                cos = _cosine(items[i], files[i], items[j], files[j], module)
                cosines.append(cos)
                overlaps.append(ModuleOverlap(module, (items[i].label, items[j].label), cos))
            shared.update(common)
            if cosines:
                c = torch.tensor(cosines, dtype=torch.float64)
                pairs.append(
                    PairSummary(
                        adapters=(items[i].label, items[j].label),
                        modules=len(cosines),
                        mean_cosine=float(c.mean()),
                        mean_abs_cosine=float(c.abs().mean()),
                        max_abs_cosine=float(c.abs().max()),
                    )
                )
        overlaps.sort(key=lambda m: -abs(m.cosine))
        return InterferenceReport(pairs=pairs, top=overlaps[:top], modules_shared=len(shared))
    finally:
        for f in files:
            f.close()


def _cosine(
    x: LoadedAdapter, fx: TensorFile, y: LoadedAdapter, fy: TensorFile, module: str
) -> float:
    lx, ly = x.loras[module], y.loras[module]
    ax, bx = fx.read(lx.a_key).double(), fx.read(lx.b_key).double()
    ay, by = fy.read(ly.a_key).double(), fy.read(ly.b_key).double()
    if ax.shape[1] != ay.shape[1] or bx.shape[0] != by.shape[0]:
        return 0.0
    dot = ((bx.T @ by) * (ax @ ay.T)).sum() * lx.scale * ly.scale
    nx = ((bx.T @ bx) * (ax @ ax.T)).sum().clamp_min(0).sqrt() * abs(lx.scale)
    ny = ((by.T @ by) * (ay @ ay.T)).sum().clamp_min(0).sqrt() * abs(ly.scale)
    denom = float(nx * ny)
    return float(dot) / denom if denom > 0 else 0.0

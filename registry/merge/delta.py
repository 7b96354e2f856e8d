"""Per-tensor merge math, one chunk of rows at a time, in fp32 on the merge device.

The formulas are PEFT's (``peft/tuners/lora/layer.py`` and ``variants.py``):

- LoRA: ``W + scale * B @ A``; for layers stored (in, out) (Conv1D with fan_in_fan_out,
  and embeddings, whose A is (r, vocab) and B (dim, r)) the delta is ``(B @ A).T``.
- DoRA: ``m / ||W + dW|| * (W + dW)``, the norm taken per output feature over the input
  features, in fp32, of the base weight plus the delta (PEFT's ``get_weight_norm``). For
  (in, out) layouts the norm runs down the stored columns, so it needs one pass over the
  whole tensor first (``dora_column_factor``); otherwise each chunk of rows is independent.
- A replacement (modules_to_save, or the base_layer copy PEFT saves with embedding targets)
  becomes the base that the adapter's own delta, if any, is applied to.

Several adapters on one tensor combine as ``W + sum_i w_i (out_i - W)``, where ``out_i`` is
what adapter i alone would produce; for plain LoRA that is ``W + sum_i w_i s_i B_i A_i``.
A single adapter with weight 1 yields ``out_1`` itself, bit for bit PEFT's formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from registry.merge.plan import TensorPlan


@dataclass
class LowRank:
    """``scale * B @ A`` in the layer's (out, in) orientation; A is (r, in), B is (out, r)."""

    a: torch.Tensor
    b: torch.Tensor
    scale: float

    def factors(self, start: int, stop: int, transposed: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The two matrices whose product is rows ``[start, stop)`` of the stored delta."""
        if transposed:
            return self.a[:, start:stop].T, self.b.T
        return self.b[start:stop], self.a

    def rows(self, start: int, stop: int, transposed: bool) -> torch.Tensor:
        """Rows ``[start, stop)`` of the delta as the tensor is stored."""
        left, right = self.factors(start, stop, transposed)
        # PEFT multiplies after the product; doing the same keeps results bit-identical.
        return (left @ right).mul_(self.scale)

    def add_to(
        self, w: torch.Tensor, start: int, stop: int, transposed: bool, scratch: Scratch
    ) -> None:
        """``w += rows of the delta``, rounding exactly as PEFT's ``W += (B @ A) * scale``."""
        left, right = self.factors(start, stop, transposed)
        if math.frexp(self.scale)[0] == 0.5:
            # A power of two scales exactly, so the fused kernel rounds as PEFT does.
            w.addmm_(left, right, alpha=self.scale)
            return
        d = scratch.get("delta", (left.shape[0], right.shape[1]))
        torch.mm(left, right, out=d)
        w.add_(d.mul_(self.scale))


class Scratch:
    """Reusable fp32 buffers on the merge device: chunks reuse memory instead of faulting in
    fresh pages each time (a third of the CPU time otherwise)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._bufs: dict[str, torch.Tensor] = {}

    def get(
        self, key: str, shape: tuple[int, ...], dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        n = math.prod(shape)
        buf = self._bufs.get(key)
        if buf is None or buf.numel() < n or buf.dtype != dtype:
            buf = self._bufs[key] = torch.empty(n, dtype=dtype, device=self.device)
        return buf[:n].view(shape)


@dataclass
class Term:
    """One adapter's prepared change to a tensor (or, for simple sums, all adapters' at once)."""

    weight: float
    low_rank: list[LowRank] = field(default_factory=list)
    # Index into the replacement chunks the reader supplies; None uses the base tensor.
    replacement: int | None = None
    magnitude: torch.Tensor | None = None
    column_factor: torch.Tensor | None = None


@dataclass
class PreparedTensor:
    plan: TensorPlan
    terms: list[Term]

    @property
    def simple(self) -> bool:
        """Plain LoRA sums: no DoRA and no replacement, so ``W + sum of deltas`` in place."""
        return all(t.magnitude is None and t.replacement is None for t in self.terms)


def merge_rows(
    prep: PreparedTensor,
    stored: torch.Tensor,
    start: int,
    stop: int,
    replacements: dict[int, torch.Tensor],
    scratch: Scratch,
) -> torch.Tensor:
    """The merged rows ``[start, stop)`` of a tensor in fp32 (possibly a scratch buffer).

    ``stored`` holds those rows of the base in their stored dtype, on the merge device.
    """
    transposed = prep.plan.transposed
    w = scratch.get("w", tuple(stored.shape))
    w.copy_(stored)
    if prep.simple:
        for term in prep.terms:
            for lr in term.low_rank:
                if term.weight == 1.0:
                    lr.add_to(w, start, stop, transposed, scratch)
                else:
                    w.add_(lr.rows(start, stop, transposed), alpha=term.weight)
        return w
    replacements = {i: r.to(torch.float32) for i, r in replacements.items()}
    total: torch.Tensor | None = None
    for term in prep.terms:
        base = replacements[term.replacement] if term.replacement is not None else w
        out = base
        for lr in term.low_rank:
            out = out + lr.rows(start, stop, transposed)
        if term.magnitude is not None:
            if transposed:
                assert term.column_factor is not None
                out = out * term.column_factor.view(1, -1)
            else:
                norm = torch.linalg.norm(out, dim=1)
                out = out * (term.magnitude[start:stop] / norm).view(-1, 1)
        if len(prep.terms) == 1 and term.weight == 1.0:
            return out
        change = (out - w).mul_(term.weight)
        total = change if total is None else total.add_(change)
    assert total is not None
    return w.add_(total)


def dora_column_factor(
    read_rows: Callable[[int, int], torch.Tensor],
    low_rank: list[LowRank],
    magnitude: torch.Tensor,
    n_rows: int,
    chunk_rows: int,
) -> torch.Tensor:
    """``m / ||W + dW||`` for a tensor stored (in, out): the norms run over all stored rows."""
    sumsq = torch.zeros_like(magnitude)
    for start in range(0, n_rows, chunk_rows):
        stop = min(n_rows, start + chunk_rows)
        out = read_rows(start, stop)
        for lr in low_rank:
            out = out + lr.rows(start, stop, True)
        sumsq += out.square().sum(dim=0)
    return magnitude / sumsq.sqrt()

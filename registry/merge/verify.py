"""Checking a finished merge against the adapters with random probes.

For a sample of merged modules, and up to 256 random output features of each, ``(W' - W) x``
is computed from the bytes written and the base as the base's layer computes its forward
pass (``x @ W.T`` for an nn.Linear, ``x @ W`` for a Conv1D, a row lookup for an embedding:
the layer type, never the merge's own orientation flag, so a transposed merge fails here),
and compared with what the adapters say it must be, ``sum w * s * B (A x)`` (for DoRA,
``f * (W x + s B (A x)) - W x`` with ``f = m / ||W + dW||`` recomputed here). Everything runs
in fp64 on the CPU, independently of the merge's fp32 arithmetic and device, so the only
error left is the output dtype's rounding. The error is reported against the bound that
rounding allows (``2 u |W'| |x|`` per output, u the dtype's unit roundoff): a ratio above 1
is a wrong merge, not an imprecise one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from registry.merge.delta import LowRank, PreparedTensor, Term
from registry.merge.plan import TensorPlan
from registry.merge.tensor_io import UNIT_ROUNDOFF, TensorFile

PROBES = 4
SAMPLED_OUTPUTS = 256
# Slack for the merge's own fp32 arithmetic (sums over a few thousand terms, DoRA norms).
_FP32_SLACK = 64 * UNIT_ROUNDOFF["F32"]
# fp64 elements per block of sampled weights (1 MiB): the check's memory, whatever the layer.
_BLOCK_ELEMS = 2**17


@dataclass(frozen=True)
class Verification:
    """How well the written weights match the adapters on random probes."""

    modules_checked: int
    probes: int
    max_abs_error: float
    max_rel_error: float
    max_error_ratio: float
    worst_module: str | None

    @property
    def passed(self) -> bool:
        """True when every error is within what the output dtype's rounding explains."""
        return self.max_error_ratio <= 1.0

    def to_dict(self) -> dict[str, object]:
        return self.__dict__ | {"passed": self.passed}


def choose_sample(plans: Iterable[TensorPlan], n: int) -> list[str]:
    """Up to ``n`` merged tensors spread over the model, with one of each layout and DoRA."""
    candidates = sorted(
        (p for p in plans if p.contributions and not p.has_replacement and len(p.info.shape) == 2),
        key=lambda p: p.name,
    )
    if n <= 0 or not candidates:
        return []
    step = max(1, len(candidates) // n)
    chosen = {p.name for p in candidates[::step][:n]}
    for pick in (lambda p: p.kind == "conv1d", lambda p: p.has_dora):
        if not any(pick(p) for p in candidates if p.name in chosen):
            extra = next((p for p in candidates if pick(p)), None)
            if extra is not None:
                chosen.add(extra.name)
    return sorted(chosen)


def to_cpu64(prep: PreparedTensor) -> PreparedTensor:
    """A copy of a prepared tensor's factors in fp64 on the CPU, kept for verification."""

    def conv(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.detach().to("cpu", torch.float64)

    terms = [
        Term(
            weight=t.weight,
            low_rank=[LowRank(conv(lr.a), conv(lr.b), lr.scale) for lr in t.low_rank],  # type: ignore[arg-type]
            replacement=t.replacement,
            magnitude=conv(t.magnitude),
        )
        for t in prep.terms
    ]
    return PreparedTensor(prep.plan, terms)


@dataclass(frozen=True)
class TensorCheck:
    name: str
    max_abs_error: float
    max_rel_error: float
    max_error_ratio: float


def check_tensor(
    prep: PreparedTensor,
    base: TensorFile,
    out: TensorFile,
    *,
    chunk_rows: int,
    seed: int = 0,
    kind: str | None = None,
) -> TensorCheck:
    """Probe one merged tensor (see the module docstring) on up to ``SAMPLED_OUTPUTS`` of its
    output features, chosen at random: each output feature is checked over all its inputs.

    ``kind`` is the layer's type as transformers builds it, when known (``layer_types.py``);
    it wins over the plan's, which came from lorareg's own table."""
    plan = prep.plan
    name, source, transposed = plan.name, plan.read_name, stores_in_out(prep, kind)
    n_rows, n_cols = plan.info.shape
    n_in, n_out = (n_rows, n_cols) if transposed else (n_cols, n_rows)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_in, PROBES, generator=gen, dtype=torch.float64)
    outs = torch.randperm(n_out, generator=gen)[:SAMPLED_OUTPUTS].sort().values

    def blocks() -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
        # (inputs start, stop, base, merged): the sampled outputs' weights, (k, stop - start).
        if not transposed:
            # The sampled rows in their stored dtype, then fp64 a block of inputs at a time:
            # whole rows in fp64 took four times the memory (tens of MB for a wide layer).
            rows = _runs(outs.tolist())
            w16 = torch.cat([base.read_rows(source, a, b) for a, b in rows])
            new16 = torch.cat([out.read_rows(name, a, b) for a, b in rows])
            step = max(1, _BLOCK_ELEMS // max(1, len(outs)))
            for start in range(0, n_in, step):
                stop = min(n_in, start + step)
                w = w16[:, start:stop].to(torch.float64)
                yield start, stop, w, new16[:, start:stop].to(torch.float64)
            return
        for start in range(0, n_rows, chunk_rows):
            stop = min(n_rows, start + chunk_rows)
            w = base.read_rows(source, start, stop)[:, outs].T.to(torch.float64)
            new = out.read_rows(name, start, stop)[:, outs].T.to(torch.float64)
            yield start, stop, w, new

    k = len(outs)
    actual = torch.zeros(k, PROBES, dtype=torch.float64)
    wx = torch.zeros(k, PROBES, dtype=torch.float64)
    abs_out = torch.zeros(k, PROBES, dtype=torch.float64)
    sumsq = {
        i: torch.zeros(k, dtype=torch.float64)
        for i, t in enumerate(prep.terms)
        if t.magnitude is not None
    }
    for start, stop, w, new in blocks():
        xs = x[start:stop]
        actual += (new - w) @ xs
        wx += w @ xs
        abs_out += new.abs() @ xs.abs()
        for i in sumsq:
            merged = w.clone()
            for lr in prep.terms[i].low_rank:
                merged += lr.scale * (lr.b[outs] @ lr.a[:, start:stop])
            sumsq[i] += merged.square().sum(dim=1)

    expected = torch.zeros(k, PROBES, dtype=torch.float64)
    for i, term in enumerate(prep.terms):
        lora_x = torch.zeros(k, PROBES, dtype=torch.float64)
        for lr in term.low_rank:
            lora_x += lr.scale * (lr.b[outs] @ (lr.a @ x))
        if term.magnitude is not None:
            f = term.magnitude[outs] / sumsq[i].sqrt()
            expected += term.weight * (f.view(-1, 1) * (wx + lora_x) - wx)
        else:
            expected += term.weight * lora_x

    err = (actual - expected).abs()
    u = UNIT_ROUNDOFF.get(plan.out_dtype, UNIT_ROUNDOFF["F32"])
    bound = (2 * u + _FP32_SLACK) * abs_out + 1e-30
    scale = float(abs_out.max()) or 1.0
    return TensorCheck(
        name=name,
        max_abs_error=float(err.max()),
        max_rel_error=float(err.max()) / scale,
        max_error_ratio=float((err / bound).max()),
    )


def stores_in_out(prep: PreparedTensor, kind: str | None = None) -> bool:
    """Whether the base layer's forward reads its weight as (in, out): a Conv1D or an
    embedding (a lookup of rows is ``onehot @ W``). Without a known layer type, the shape
    decides where it can (the plan refuses square layers of unknown type)."""
    kind = kind or prep.plan.kind
    if kind is not None:
        return kind in ("conv1d", "embedding")
    lr = next(lr for t in prep.terms for lr in t.low_rank)
    n_in, n_out = lr.a.shape[1], lr.b.shape[0]
    return n_in != n_out and tuple(prep.plan.info.shape) == (n_in, n_out)


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Sorted indices as ``[start, stop)`` runs, so neighbours are read together."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def summarise(checks: list[TensorCheck]) -> Verification:
    if not checks:
        return Verification(0, PROBES, 0.0, 0.0, 0.0, None)
    worst = max(checks, key=lambda c: c.max_error_ratio)
    return Verification(
        modules_checked=len(checks),
        probes=PROBES,
        max_abs_error=max(c.max_abs_error for c in checks),
        max_rel_error=max(c.max_rel_error for c in checks),
        max_error_ratio=worst.max_error_ratio,
        worst_module=worst.name,
    )

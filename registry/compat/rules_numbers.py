"""Numbers rules: dtypes (from the header) and, with tensor data, finiteness, untrained
adapters and per-module norms.

The data rules share one pass over the tensors (``scan``): each tensor is loaded once,
A and B of a pair together, so memory stays at two tensors however large the adapter.
The delta norm ||scale * B @ A||_F is computed as sqrt(trace((B^T B)(A A^T))) from two
r x r Gram matrices, never materialising the out x in product.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from registry.compat.adapter_layout import strip_prefix
from registry.compat.findings import Finding, Severity
from registry.compat.rules import CheckContext, rule
from registry.compat.tensors import DECODABLE, FLOAT_DTYPES

ALLOWED_DTYPES = frozenset({"F16", "BF16", "F32"})


@dataclass
class TensorStats:
    non_finite: int
    all_zero: bool
    norm: float


@dataclass
class Scan:
    tensors: dict[str, TensorStats] = field(default_factory=dict)  # by tensor key
    norms: dict[str, dict[str, float]] = field(default_factory=dict)  # by module


def _stats(arr: Any) -> TensorStats:
    import numpy as np

    finite = np.isfinite(arr)
    bad = int(arr.size - np.count_nonzero(finite))
    values = np.where(finite, arr, 0).astype(np.float64)
    return TensorStats(bad, not np.any(arr), float(np.linalg.norm(values.ravel())))


def scan(ctx: CheckContext) -> Scan:
    """Load every float tensor once; cached on the context for the other data rules."""
    cached = ctx.cache.get("numbers.scan")
    if isinstance(cached, Scan):
        return cached
    import numpy as np

    assert ctx.load_tensor is not None
    result = Scan()
    decodable = {k for k, t in ctx.header.tensors.items() if t.dtype in DECODABLE & FLOAT_DTYPES}
    done: set[str] = set()
    for module, pair in sorted(ctx.layout.pairs.items()):
        if pair.a is None or pair.b is None or not {pair.a.name, pair.b.name} <= decodable:
            continue
        a, b = ctx.load_tensor(pair.a.name), ctx.load_tensor(pair.b.name)
        sa, sb = _stats(a), _stats(b)
        result.tensors[pair.a.name], result.tensors[pair.b.name] = sa, sb
        done |= {pair.a.name, pair.b.name}
        norms = {"a": sa.norm, "b": sb.norm}
        if (
            a.ndim == 2
            and b.ndim == 2
            and a.shape[0] == b.shape[1]
            and not sa.non_finite + sb.non_finite
        ):
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            gram = float(np.sum((b64.T @ b64) * (a64 @ a64.T)))
            norms["delta"] = abs(ctx.config.scaling(strip_prefix(module))) * math.sqrt(
                max(gram, 0.0)
            )
        result.norms[module] = norms
    for key in sorted(decodable - done):
        result.tensors[key] = _stats(ctx.load_tensor(key))
    ctx.cache["numbers.scan"] = result
    ctx.norms.update(result.norms)
    return result


@rule("numbers.dtype", "tensor dtypes are ones engines load")
def dtype(ctx: CheckContext) -> Iterator[Finding]:
    by_dtype: dict[str, list[str]] = {}
    for key, info in sorted(ctx.header.tensors.items()):
        by_dtype.setdefault(info.dtype, []).append(key)
    for dt, keys in sorted(by_dtype.items()):
        if dt in ALLOWED_DTYPES:
            continue
        example = strip_prefix(keys[0])
        if dt == "F64":
            yield ctx.finding(
                "numbers.dtype",
                Severity.WARN,
                f"{len(keys)} tensors are F64 (e.g. {example}); engines cast them down, and"
                " the file is twice the size it needs to be",
                "save the adapter in float32 or bfloat16",
            )
        else:
            yield ctx.finding(
                "numbers.dtype",
                Severity.FAIL,
                f"{len(keys)} tensors are {dt} (e.g. {example}); engines load LoRA weights as"
                " F16, BF16 or F32",
                "save the adapter's weights in float32, float16 or bfloat16",
            )


@rule("numbers.non_finite", "all weights are finite", needs={"data"})
def non_finite(ctx: CheckContext) -> Iterator[Finding]:
    for key, stats in sorted(scan(ctx).tensors.items()):
        if stats.non_finite:
            name = strip_prefix(key)
            yield ctx.finding(
                "numbers.non_finite",
                Severity.FAIL,
                f"{name} holds {stats.non_finite} NaN/Inf values; every output through this"
                " module would be NaN",
                "the training run diverged: retrain (lower the learning rate) or use an"
                " earlier checkpoint",
                module=ctx.layout.owner(key),
            )


@rule("numbers.zero_b", "lora_B is trained (not all zeros)", needs={"data"})
def zero_b(ctx: CheckContext) -> Iterator[Finding]:
    stats = scan(ctx).tensors
    # PEFT zero-initialises lora_B, or lora_embedding_A for an embedding: that matrix
    # staying all zeros means the module never trained and changes nothing.
    keys = {}
    for module, pair in ctx.layout.pairs.items():
        start = pair.a if pair.embedding else pair.b
        if start is not None and start.name in stats:
            keys[module] = start.name
    zero = sorted(m for m, k in keys.items() if stats[k].all_zero)
    if not zero:
        return
    if len(zero) == len(keys):
        yield ctx.finding(
            "numbers.zero_b",
            Severity.WARN,
            "every lora_B is all zeros: PEFT initialises B to zero, so this adapter was never"
            " trained and changes nothing",
            "push the checkpoint saved after training",
        )
    else:
        yield ctx.finding(
            "numbers.zero_b",
            Severity.WARN,
            f"{len(zero)} of {len(keys)} modules have an all-zero lora_B (lora_embedding_A"
            f" for embeddings; e.g. {zero[0]}): they were not trained",
            "check that those modules received gradients during training",
            module=zero[0],
        )


@rule("numbers.norms", "per-module norms recorded", needs={"data"})
def norms(ctx: CheckContext) -> Iterator[Finding]:
    recorded = scan(ctx).norms
    deltas = {m: n["delta"] for m, n in recorded.items() if "delta" in n}
    if deltas:
        top = max(deltas, key=lambda m: deltas[m])
        yield ctx.finding(
            "numbers.norms",
            Severity.INFO,
            f"norms recorded for {len(recorded)} modules; largest update ||scale*B@A|| ="
            f" {deltas[top]:.4g} at {top}",
        )

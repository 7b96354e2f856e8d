"""Compose and compress local PEFT folders (no catalog): for scripts, tests and benches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from registry.library.compose import ComposedAdapter, check_compose, compose
from registry.library.compress import Compression, compress
from registry.library.factors import AdapterFactors, open_factors
from registry.library.output import write_adapter
from registry.merge.tensor_io import TORCH_DTYPES


def output_dtype(sources: Sequence[AdapterFactors]) -> torch.dtype:
    """The inputs' stored dtype when they share one, else fp32."""
    stored = {s.stored_dtype() for s in sources}
    return TORCH_DTYPES[stored.pop()] if len(stored) == 1 else torch.float32


def input_ranks(sources: Sequence[AdapterFactors]) -> list[int]:
    """Each input's largest rank (``r`` or a rank_pattern value), as PEFT counts it."""
    return [max([s.config.r, *s.config.rank_pattern.values()]) for s in sources]


def compose_folders(
    folders: Sequence[Path],
    out: Path,
    *,
    weights: Sequence[float] | None = None,
    method: str = "cat",
    rank: int | None = None,
) -> ComposedAdapter:
    with open_factors([(Path(f), None) for f in folders]) as sources:
        ranks = input_ranks(sources)
        w = check_compose(sources, weights, method=method, rank=rank, input_ranks=ranks)
        result = compose(sources, w, method=method, rank=rank, default_rank=max(ranks))
        write_adapter(
            out,
            result.modules,
            template=sources[0].config,
            configs=[s.config for s in sources],
            report={"operation": "compose", "method": method, "relative_errors": result.errors},
            dtype=output_dtype(sources),
        )
    return result


def compress_folder(
    folder: Path, out: Path, *, rank: int | None = None, energy: float | None = None
) -> Compression:
    with open_factors([(Path(folder), None)]) as (source,):
        result = compress(source, rank=rank, energy=energy)
        write_adapter(
            out,
            result.modules,
            template=source.config,
            configs=[source.config],
            report={"operation": "compress", "relative_errors": result.errors},
            dtype=output_dtype([source]),
        )
    return result

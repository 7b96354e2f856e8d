"""Truncating an adapter optimally per module: to a rank, or to an energy level.

Each module keeps its top singular directions (Eckart-Young: no rank-k factors come closer
to the delta in Frobenius norm); the relative error ``||delta - delta_k|| / ||delta||`` per
module is reported. Under ``--energy`` the ranks differ by module and become a rank_pattern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from registry.library.errors import InvalidEnergy, InvalidRank
from registry.library.factors import FactorSource, ModuleFactors, core_svd, effective_rank


@dataclass
class Compression:
    modules: dict[str, ModuleFactors]
    ranks_before: dict[str, int]
    errors: dict[str, float]

    @property
    def ranks(self) -> dict[str, int]:
        return {name: f.rank for name, f in self.modules.items()}

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)


def check_compress(source: FactorSource, *, rank: int | None, energy: float | None) -> None:
    """Exactly one of rank (1..the adapter's largest rank) and energy (in (0, 1])."""
    if (rank is None) == (energy is None):
        raise InvalidRank("give either --rank R or --energy E (not both, not neither)")
    if rank is not None:
        top = max(s.rank for s in source.shapes.values())
        if isinstance(rank, bool) or rank <= 0 or rank > top:
            raise InvalidRank(
                f"rank {rank} is outside 1..{top} ({source.label}'s largest rank); compressing"
                " can only lower a rank"
            )
    if energy is not None and not (math.isfinite(energy) and 0 < energy <= 1):
        raise InvalidEnergy(
            f"energy {energy} is outside (0, 1]: it is the share of each module's squared"
            " Frobenius norm to keep (0.999 keeps 99.9%)"
        )


def compress(
    source: FactorSource,
    *,
    rank: int | None = None,
    energy: float | None = None,
    dtype: torch.dtype = torch.float32,
) -> Compression:
    check_compress(source, rank=rank, energy=energy)
    out = Compression(modules={}, ranks_before={}, errors={})
    for module in sorted(source.shapes):
        f = source.factors(module, dtype=torch.float64)
        core = core_svd(f.a, f.b, f.scale)
        keep = min(rank, f.rank) if rank is not None else effective_rank(core.s, energy or 1.0)
        a, b = core.truncate(keep)
        out.ranks_before[module] = f.rank
        out.errors[module] = core.relative_error(keep)
        out.modules[module] = ModuleFactors(
            module, a.to(dtype).contiguous(), b.to(dtype).contiguous(), 1.0, f.embedding
        )
    return out

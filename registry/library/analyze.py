"""Right-sizing an adapter: the spectrum of each module's change and what it costs to serve.

Per module, the singular values of ``scale * B @ A`` come from QR factors of ``A.T`` and ``B``
(an r x r SVD, exact). The effective rank at an energy level is the fewest singular values
holding that share of ``||delta||_F^2``; where it is far below r, the rank is paid for at
serving time (vLLM reserves ``--max-lora-rank`` per slot, and multi-LoRA kernels slow with
rank) without being used. The relative update ``||delta|| / ||W0||`` needs the base weights;
a large one is a forgetting-risk signal.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from registry.library.factors import FactorSource, core_svd, effective_rank

# vLLM's accepted --max-lora-rank values (vllm/config/lora.py MaxLoRARanks) and its default.
VLLM_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_DEFAULT_RANK = 16
ENERGIES = (0.99, 0.999)
# Above this ||delta|| / ||W0|| on some module the analysis warns (fine-tunes that move a
# weight by more than a few percent of its norm are the ones that forget).
RELATIVE_UPDATE_WARN = 0.1


@dataclass(frozen=True)
class ModuleSpectrum:
    module: str
    rank: int
    in_features: int
    out_features: int
    singular_values: list[float]
    norm: float
    rank_99: int
    rank_999: int
    relative_update: float | None = None


@dataclass
class Analysis:
    modules: list[ModuleSpectrum]
    stored_bytes: int
    warnings: list[str] = field(default_factory=list)

    @property
    def max_rank(self) -> int:
        return max((m.rank for m in self.modules), default=0)

    def rank_at(self, energy: float) -> int:
        pick = (lambda m: m.rank_99) if energy == 0.99 else (lambda m: m.rank_999)
        return max((pick(m) for m in self.modules), default=0)

    @property
    def max_lora_rank(self) -> int | None:
        """The smallest vLLM ``--max-lora-rank`` that serves this adapter (None: none does)."""
        return next((r for r in VLLM_RANKS if r >= self.max_rank), None)

    def slot_bytes(self, rank: int, dtype_bytes: int = 2) -> int:
        """What one engine slot holds for this adapter's modules at ``rank`` (fp16 default)."""
        return sum((m.in_features + m.out_features) * rank * dtype_bytes for m in self.modules)


def analyze(
    source: FactorSource, *, stored_bytes: int, base_norms: Mapping[str, float] | None = None
) -> Analysis:
    """Exact spectrum of every module; ``base_norms`` (module -> ||W0||_F) adds the relative
    update and its warning."""
    out = Analysis(modules=[], stored_bytes=stored_bytes)
    for module in sorted(source.shapes):
        f = source.factors(module)
        s = core_svd(f.a, f.b, f.scale).s
        norm = math.sqrt(float(s.pow(2).sum()))
        rel = None
        if base_norms is not None and base_norms.get(module):
            rel = norm / base_norms[module]
            if rel > RELATIVE_UPDATE_WARN:
                out.warnings.append(
                    f"{module}: the update is {rel:.1%} of the base weight's norm (above"
                    f" {RELATIVE_UPDATE_WARN:.0%}): a forgetting risk; evaluate on general tasks"
                )
        out.modules.append(
            ModuleSpectrum(
                module=module,
                rank=f.rank,
                in_features=f.shape.in_features,
                out_features=f.shape.out_features,
                singular_values=[float(x) for x in s],
                norm=norm,
                rank_99=effective_rank(s, ENERGIES[0]),
                rank_999=effective_rank(s, ENERGIES[1]),
                relative_update=rel,
            )
        )
    return out

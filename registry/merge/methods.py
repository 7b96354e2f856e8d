"""The composition methods a merge accepts, and what each can and cannot combine exactly.

The arithmetic of each method lives in ``compose.py``; here is only what is refused, from
headers, before any output is written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from registry.domain import MergeMethod
from registry.errors import InvalidInput

if TYPE_CHECKING:
    from registry.merge.adapters import LoadedAdapter
    from registry.merge.plan import TensorPlan

Method = Literal["sum", "linear", "cat", "svd"]
METHODS: tuple[str, ...] = tuple(MergeMethod)


def check_options(
    n_adapters: int, method: str, weights: Sequence[float] | None, svd_rank: int | None
) -> list[float]:
    """Validate the composition options; return one weight per adapter."""
    if method not in METHODS:
        raise InvalidInput(f"merge method {method!r} is unknown; use one of {', '.join(METHODS)}")
    if weights is None:
        weights = [1.0] * n_adapters
    if len(weights) != n_adapters:
        raise InvalidInput(
            f"{len(weights)} weights for {n_adapters} adapters; give one weight per adapter"
        )
    if not all(isinstance(w, int | float) and math.isfinite(w) for w in weights):
        raise InvalidInput(f"merge weights must be finite numbers, got {list(weights)}")
    if svd_rank is not None and method != "svd":
        raise InvalidInput("svd_rank only applies to method 'svd'")
    if svd_rank is not None and (not isinstance(svd_rank, int) or svd_rank <= 0):
        raise InvalidInput(f"svd_rank must be a positive integer, got {svd_rank!r}")
    return [float(w) for w in weights]


def check_composition(plan: TensorPlan, adapters: Sequence[LoadedAdapter], method: str) -> None:
    contribs = plan.contributions
    labels = [adapters[c.adapter].label for c in contribs]
    saved = [c for c in contribs if c.replacement and c.replacement.kind == "modules_to_save"]
    if len(saved) > 1:
        raise InvalidInput(
            f"adapters {', '.join(labels)} each replace {plan.name} (modules_to_save); a weighted"
            " combination of full replacements is not defined (PEFT refuses it too)"
        )
    if method == "sum":
        return
    dora = [adapters[c.adapter].label for c in contribs if c.lora and c.lora.magnitude_key]
    if dora:
        raise InvalidInput(
            f"method {method!r} cannot merge DoRA adapter {dora[0]} exactly ({plan.name}): DoRA"
            " rescales each row by a norm of the merged weight, which is not a low-rank delta;"
            " use method 'sum'"
        )
    replaced = [c for c in contribs if c.replacement is not None]
    if replaced and (len(contribs) > 1 or contribs[0].weight != 1.0):
        raise InvalidInput(
            f"method {method!r} cannot combine the saved copy of {plan.name} from adapter"
            f" {adapters[replaced[0].adapter].label} with other adapters or a weight; use"
            " method 'sum'"
        )
    ranks = {c.lora.rank for c in contribs if c.lora is not None}
    if method == "linear" and len(ranks) > 1:
        raise InvalidInput(
            f"method 'linear' (PEFT's: the A's and the B's summed separately) needs one rank"
            f" per module, but {plan.name} has ranks {sorted(ranks)}; use 'sum' (the exact"
            " weighted sum of the deltas) or 'cat'"
        )


def check_linear_ranks(adapters: Sequence[LoadedAdapter]) -> None:
    """PEFT's ``add_weighted_adapter(combination_type="linear")`` refuses adapters whose r
    (or largest rank_pattern value) differ; so does lorareg's ``linear``."""
    ranks = {a.label: max([a.config.r, *a.config.rank_pattern.values()]) for a in adapters}
    if len(set(ranks.values())) > 1:
        listed = ", ".join(f"{label} r={r}" for label, r in ranks.items())
        raise InvalidInput(
            f"method 'linear' (PEFT's) needs adapters of one rank ({listed}); use 'sum' (the"
            " exact weighted sum of the deltas) or 'cat'"
        )

"""Refusals of the adapter library, each with its own stable code (all InvalidInput: 422, exit 1).

    InvalidInput
    ├── DifferentBases          different_bases         adapters trained on different bases
    ├── WeightCountMismatch     weight_count_mismatch   --weights does not match the refs
    ├── InvalidRank             invalid_rank            rank <= 0 or above the input's
    ├── InvalidEnergy           invalid_energy          energy outside (0, 1]
    ├── UnsupportedAdapter      unsupported_adapter     not a plain LoRA (merged model, DoRA,
    │                                                   modules_to_save, trained biases)
    ├── ShapeMismatch           shape_mismatch          one module, different shapes
    └── LinearUndefined         linear_undefined        PEFT's linear needs equal ranks

Each is raised before any tensor is read or anything is written.
"""

from __future__ import annotations

from registry.errors import InvalidInput


class DifferentBases(InvalidInput):
    code = "different_bases"


class WeightCountMismatch(InvalidInput):
    code = "weight_count_mismatch"


class InvalidRank(InvalidInput):
    code = "invalid_rank"


class InvalidEnergy(InvalidInput):
    code = "invalid_energy"


class UnsupportedAdapter(InvalidInput):
    code = "unsupported_adapter"


class ShapeMismatch(InvalidInput):
    code = "shape_mismatch"


class LinearUndefined(InvalidInput):
    code = "linear_undefined"

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

from registry.errors import (  # noqa: F401  (defined with every other code, re-exported here)
    DifferentBases,
    InvalidEnergy,
    InvalidRank,
    LinearUndefined,
    ShapeMismatch,
    UnsupportedAdapter,
    WeightCountMismatch,
)

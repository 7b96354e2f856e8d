"""The verification's second opinion on layer types, asked of a child process: the same
answer as asking transformers in-process, and the merge process never imports it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from registry.merge import layer_types as lt
from tests.factories import make_gpt2, make_llama

ROOT = Path(__file__).resolve().parents[2]


def _architecture(model: Any) -> dict[str, Any]:
    return json.loads(model.config.to_json_string())


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            make_gpt2,
            {
                "transformer.h.0.attn.c_attn.weight": "conv1d",
                "transformer.h.1.mlp.c_proj.weight": "conv1d",
                "transformer.wte.weight": "embedding",
                "lm_head.weight": "linear",
            },
        ),
        (
            make_llama,
            {
                "model.layers.0.self_attn.q_proj.weight": "linear",
                "model.layers.1.mlp.down_proj.weight": "linear",
                "model.embed_tokens.weight": "embedding",
            },
        ),
    ],
)
def test_the_child_answers_as_transformers_in_process(make: Any, expected: dict[str, str]) -> None:
    arch = _architecture(make())
    names = [*expected, "no.such.module.weight"]
    assert lt.layer_types(arch, names) == lt._in_process(arch, names) == expected


def test_no_second_opinion_when_the_child_cannot_say() -> None:
    assert lt.layer_types({"model_type": "no-such-architecture"}, ["a.weight"]) == {}
    assert lt.layer_types({}, ["a.weight"]) == {}


def test_the_asking_process_does_not_import_transformers() -> None:
    arch = _architecture(make_gpt2())
    code = (
        "import json, sys\n"
        "from registry.merge.layer_types import layer_types\n"
        f"found = layer_types(json.loads({json.dumps(json.dumps(arch))}),"
        " ['transformer.h.0.attn.c_attn.weight'])\n"
        "assert found == {'transformer.h.0.attn.c_attn.weight': 'conv1d'}, found\n"
        "assert 'transformers' not in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

"""The verification's second opinion on layer types: the table of known architectures is
what transformers builds (every module of every listed architecture, both ways); any other
architecture is asked of a child process, with the same answer as asking transformers
in-process, and the merge process never imports it."""

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
    assert lt._ask_transformers(arch, names) == lt._in_process(arch, names) == expected
    assert lt.layer_types(arch, names) == expected


@pytest.mark.parametrize("model_type", sorted(lt.KNOWN))
def test_the_table_is_what_transformers_builds(model_type: str) -> None:
    """Every Linear / Conv1D / Embedding module transformers builds for the architecture
    (its default config, two layers, on the meta device) is in the table with its type,
    and the table names no module the architecture lacks."""
    import warnings

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.pytorch_utils import Conv1D

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            config = AutoConfig.for_model(model_type)
        except ValueError:  # an older transformers (the dev extra allows >= 4.45)
            pytest.skip(f"this transformers does not know {model_type}")
        for layers in ("num_hidden_layers", "n_layer"):
            if hasattr(config, layers):
                setattr(config, layers, 2)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
    built: dict[str, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, Conv1D):
            built[f"{name}.weight"] = "conv1d"
        elif isinstance(module, torch.nn.Embedding):
            built[f"{name}.weight"] = "embedding"
        elif isinstance(module, torch.nn.Linear):
            built[f"{name}.weight"] = "linear"
    assert lt.from_table(model_type, built) == built
    assert {n.rsplit(".", 2)[-2] for n in built} == set(lt.KNOWN[model_type])


def test_a_known_architecture_starts_no_child(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_child(*args: object, **kw: object) -> None:
        raise AssertionError("a child process was started")

    monkeypatch.setattr(lt.subprocess, "run", no_child)
    arch = {"model_type": "gpt2"}
    names = ["transformer.h.0.attn.c_attn.weight", "h.3.mlp.c_fc.weight", "lm_head.weight"]
    assert lt.layer_types(arch, names) == {
        "transformer.h.0.attn.c_attn.weight": "conv1d",
        "h.3.mlp.c_fc.weight": "conv1d",
        "lm_head.weight": "linear",
    }
    # GPT-2's names in GPTBigCode are nn.Linear: the table goes by architecture, not name.
    assert lt.layer_types({"model_type": "gpt_bigcode"}, names[:1]) == {names[0]: "linear"}


def test_names_the_table_lacks_are_asked_of_transformers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[list[str]] = []

    def ask(arch: dict[str, Any], names: list[str]) -> dict[str, str]:
        asked.append(names)
        return {}

    monkeypatch.setattr(lt, "_ask_transformers", ask)
    found = lt.layer_types(
        {"model_type": "llama"}, ["model.layers.0.self_attn.q_proj.weight", "model.odd.weight"]
    )
    assert found == {"model.layers.0.self_attn.q_proj.weight": "linear"}
    assert asked == [["model.odd.weight"]]
    lt.layer_types({"model_type": "some-new-arch"}, ["x.q_proj.weight"])
    assert asked[-1] == ["x.q_proj.weight"]


def test_no_second_opinion_when_the_child_cannot_say() -> None:
    assert lt.layer_types({"model_type": "no-such-architecture"}, ["a.weight"]) == {}
    assert lt.layer_types({}, ["a.weight"]) == {}


def test_the_asking_process_does_not_import_transformers() -> None:
    arch = _architecture(make_gpt2())
    code = (
        "import json, sys\n"
        "from registry.merge import layer_types as lt\n"
        "del lt.KNOWN['gpt2']  # as for an architecture the table does not know\n"
        f"found = lt.layer_types(json.loads({json.dumps(json.dumps(arch))}),"
        " ['transformer.h.0.attn.c_attn.weight'])\n"
        "assert found == {'transformer.h.0.attn.c_attn.weight': 'conv1d'}, found\n"
        "assert 'transformers' not in sys.modules\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

"""Module regexes from a pushed adapter_config.json are bounded: a pattern that does not
compile or is too long is refused when the config is parsed, and a catastrophic one is
refused when it takes too long on a module name (Python's ``re`` would hang on it)."""

from __future__ import annotations

import json
import re

import pytest

from registry.compat import run_checks
from registry.compat.tensors import local_tensor_loader
from registry.errors import InvalidAdapter
from registry.formats import patterns
from registry.formats.peft import parse_config, pattern_key
from tests.compat.corpus import Library

# Backtracks exponentially on a dotted module name that ends in a letter: with ``re``
# the check below would run for hours; the bounded matcher refuses it.
CATASTROPHIC = r"(.|\w)+\d"
MODULE = "base_model.model.model.layers.0.self_attn.q_proj"


def _config(**fields: object) -> bytes:
    doc = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}
    doc.update(fields)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "fields",
    [
        {"target_modules": "model.(q_proj"},
        {"exclude_modules": "[unclosed"},
        {"rank_pattern": {"q_(proj": 8}},
        {"alpha_pattern": {"*": 8.0}},
        {"target_modules": "a" * (patterns.MAX_PATTERN_CHARS + 1)},
    ],
)
def test_a_bad_module_pattern_is_refused_when_the_config_is_parsed(
    fields: dict[str, object],
) -> None:
    with pytest.raises(InvalidAdapter, match="module pattern"):
        parse_config(_config(**fields))


def test_a_catastrophic_pattern_is_refused_not_waited_for() -> None:
    with pytest.raises(InvalidAdapter, match="catastrophic backtracking"):
        patterns.fullmatch(CATASTROPHIC, MODULE)
    with pytest.raises(InvalidAdapter, match="catastrophic backtracking"):
        patterns.suffix_key_matches(CATASTROPHIC, MODULE)


@pytest.mark.parametrize(
    "keys",
    [
        ["q_proj"],
        ["self_attn.q_proj", "q_proj"],
        ["layers.0.self_attn.q_proj"],
        ["proj"],
        [r"layers\.[0-9]+\.self_attn\.(q|v)_proj"],
        ["model.layers.1.self_attn.q_proj", "v_proj"],
    ],
)
def test_pattern_keys_match_as_peft_matches_them(keys: list[str]) -> None:
    # PEFT's own rule (peft.utils.other.get_pattern_key) with Python's re.
    from peft.utils.other import get_pattern_key

    expected = get_pattern_key(keys, MODULE)
    ours = pattern_key(dict.fromkeys(keys, 8), MODULE)
    assert (ours if ours is not None else MODULE) == expected


@pytest.mark.parametrize("regex", [r".*\.(q_proj|v_proj)", r"model\..*_proj", "q_proj", ".*"])
def test_full_matches_equal_pythons(regex: str) -> None:
    for name in (MODULE, "q_proj", "model.layers.0.mlp.up_proj"):
        assert patterns.fullmatch(regex, name) == (re.fullmatch(regex, name) is not None)


def test_the_checks_refuse_a_catastrophic_target_regex_in_a_real_adapter(library: Library) -> None:
    folder = library.adapter("llama")
    doc = json.loads((folder / "adapter_config.json").read_text())
    doc["target_modules"] = CATASTROPHIC
    header, load = local_tensor_loader(folder / "adapter_model.safetensors")

    with pytest.raises(InvalidAdapter, match="catastrophic backtracking"):
        run_checks(parse_config(json.dumps(doc).encode()), header, load_tensor=load)

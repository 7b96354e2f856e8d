"""adapter_config.json parsing: typed fields, PEFT's scaling rules, unknown keys kept."""

from __future__ import annotations

import json
import math

import pytest

from registry.errors import InvalidAdapter
from registry.formats.peft import parse_config


def _cfg(**kw: object) -> bytes:
    base: dict[str, object] = {
        "peft_type": "LORA",
        "r": 8,
        "lora_alpha": 16,
        "target_modules": ["q_proj"],
    }
    base.update(kw)
    return json.dumps(base).encode()


def test_unknown_keys_survive_a_round_trip() -> None:
    cfg = parse_config(_cfg(lora_bias=False, corda_config=None, some_future_key={"x": 1}))
    out = cfg.to_json_dict()
    assert (
        out["some_future_key"] == {"x": 1} and out["lora_bias"] is False and "corda_config" in out
    )


def test_scaling_follows_peft() -> None:
    cfg = parse_config(_cfg(rank_pattern={"v_proj": 4}, alpha_pattern={"layers.1.q_proj": 32}))
    assert cfg.scaling("model.layers.0.self_attn.q_proj") == 2.0
    assert cfg.effective_rank("model.layers.0.self_attn.v_proj") == 4
    assert cfg.scaling("model.layers.0.self_attn.v_proj") == 4.0
    assert cfg.scaling("model.layers.1.q_proj") == 4.0
    rs = parse_config(_cfg(use_rslora=True))
    assert math.isclose(rs.scaling("x.q_proj"), 16 / math.sqrt(8))


def test_pattern_keys_match_whole_components_only() -> None:
    cfg = parse_config(_cfg(rank_pattern={"q_proj": 2}))
    assert cfg.effective_rank("model.layers.0.self_attn.q_proj") == 2
    assert cfg.effective_rank("model.layers.0.self_attn.xq_proj") == 8


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"\xff", "UTF-8"),
        (b"[1]", "JSON object"),
        (_cfg(r=0), "r"),
        (_cfg(r=True), "r must be a number"),
        (_cfg(r=2.5), "r"),
        (_cfg(lora_alpha="16"), "lora_alpha"),
        (_cfg(target_modules=[1, 2]), "target_modules"),
        (_cfg(rank_pattern=[1]), "rank_pattern"),
    ],
)
def test_invalid_configs(raw: bytes, words: str) -> None:
    with pytest.raises(InvalidAdapter, match=words):
        parse_config(raw)

"""Serving-engine profiles: who can serve an adapter, and with which settings."""

from __future__ import annotations

import pytest

from registry.compat import ENGINES, Severity, get_engine
from registry.errors import UnknownEngine
from tests.compat.corpus import Library


@pytest.mark.parametrize(
    ("adapter", "flag"),
    [("llama", None), ("rank_pattern", None), ("rank_20", 32), ("rank_64", 64)],
)
def test_vllm_verdict_names_the_max_lora_rank_to_start_with(
    library: Library, adapter: str, flag: int | None
) -> None:
    report = library.check(adapter, "llama", engines=["vllm"])

    vllm = report.engines["vllm"]
    assert vllm.verdict == Severity.PASS
    assert vllm.settings.get("--max-lora-rank") == flag
    if flag:
        assert vllm.summary == f"vLLM: start with --enable-lora --max-lora-rank {flag}"
    else:
        assert "default --max-lora-rank 16 fits" in vllm.summary


def test_rank_above_every_vllm_choice_fails_only_vllm(library: Library) -> None:
    report = library.check("rank_640", "llama", engines=["vllm", "sglang"])

    assert report.engines["vllm"].verdict == Severity.FAIL
    assert "rank 640 is above the largest --max-lora-rank (512)" in report.engines["vllm"].summary
    assert report.engines["sglang"].settings["--max-lora-rank"] == 640
    assert report.engines["lorax"].verdict == Severity.PASS  # slower kernels: info only
    assert "engine.rank" in report.codes(Severity.INFO) | report.codes()


def test_dora_is_served_by_peft_only(library: Library) -> None:
    report = library.check("dora", "llama")

    verdicts = {name: v.verdict for name, v in report.engines.items()}
    assert verdicts == {
        "vllm": Severity.FAIL,
        "sglang": Severity.FAIL,
        "lorax": Severity.FAIL,
        "peft": Severity.PASS,
    }
    # Not asked for any engine: the adapter itself is fine.
    assert report.verdict == Severity.PASS
    assert "schema.dora" in report.codes(Severity.INFO)


def test_embedding_lora_is_refused_by_lorax_only(library: Library) -> None:
    report = library.check("embedding", "llama", engines=["lorax"])

    assert report.codes() == {"engine.embedding"}
    assert report.engines["vllm"].verdict == Severity.PASS
    assert report.engines["sglang"].settings["--lora-target-modules"] == "embed_tokens q_proj"


def test_gpt2_modules_are_outside_sglang_targets(library: Library) -> None:
    report = library.check("gpt2", "gpt2", engines=["sglang", "lorax", "peft"])

    assert report.codes() == {"engine.target_modules"}
    assert report.engines["sglang"].verdict == Severity.FAIL
    assert report.engines["lorax"].verdict == Severity.PASS


def test_a_broken_adapter_is_served_by_no_engine(library: Library) -> None:
    report = library.check("nan", "llama")

    for verdict in report.engines.values():
        assert verdict.verdict == Severity.FAIL
        assert verdict.settings == {}
        assert "until the failures above are fixed" in verdict.summary


@pytest.mark.parametrize("name", ["vllm", "vLLM", " SGLang ", "lorax", "PEFT"])
def test_engine_names_are_case_insensitive(name: str) -> None:
    assert get_engine(name).name in ENGINES


def test_an_unknown_engine_is_a_clear_error(library: Library) -> None:
    with pytest.raises(UnknownEngine) as exc:
        library.check("llama", "llama", engines=["vllm", "tgi"])

    assert exc.value.code == "unknown_engine"
    assert exc.value.message == "unknown engine 'tgi'; known engines: vllm, sglang, lorax, peft"

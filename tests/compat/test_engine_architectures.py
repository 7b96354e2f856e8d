"""vLLM verdicts know, per architecture, which modules vLLM takes LoRA on (issue 13, case 5).

The lists come from vLLM's own model classes (``vllm_lora.json`` says which version)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import registry.compat.engine_support as engine_support
from registry.compat import Severity
from tests.compat.corpus import Library


def test_gpt2_has_no_lora_in_vllm(library: Library) -> None:
    report = library.check("gpt2", "gpt2", engines=["vllm"])

    vllm = report.engines["vllm"]
    assert vllm.verdict == Severity.FAIL
    assert report.codes() == {"engine.architecture"}
    assert "no LoRA support for GPT2LMHeadModel (vLLM 0.32.0" in vllm.summary
    assert report.engines["peft"].verdict == Severity.PASS


@pytest.mark.parametrize(
    ("adapter", "base", "architecture"),
    [
        ("qwen2_embedding", "qwen2", "Qwen2ForCausalLM"),
        ("mistral_embedding", "mistral", "MistralForCausalLM"),
    ],
)
def test_embedding_lora_is_refused_where_vllm_has_no_embedding_modules(
    library: Library, adapter: str, base: str, architecture: str
) -> None:
    report = library.check(adapter, base, engines=["vllm"])

    assert report.codes() == {"engine.target_modules"}
    [finding] = report.problems()
    assert f"refuses LoRA on embed_tokens for {architecture}" in finding.message
    assert "q_proj" not in finding.message.split(" for ")[0]


def test_the_same_modules_pass_on_llama_and_plain_qwen2(library: Library) -> None:
    assert library.check("embedding", "llama", engines=["vllm"]).codes() == set()
    assert library.check("lm_head", "llama", engines=["vllm"]).codes() == set()
    assert library.check("qwen2", "qwen2", engines=["vllm"]).codes() == set()


def test_an_architecture_missing_from_the_data_is_judged_as_before(
    library: Library, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = json.loads(Path(engine_support.__file__).with_name("vllm_lora.json").read_text())
    del data["architectures"]["Qwen2ForCausalLM"]
    path = tmp_path / "vllm_lora.json"
    path.write_text(json.dumps(data))
    monkeypatch.setattr(engine_support, "_DATA", path)
    engine_support.vllm_support.cache_clear()
    try:
        report = library.check("qwen2_embedding", "qwen2", engines=["vllm"])
    finally:
        engine_support.vllm_support.cache_clear()

    assert report.engines["vllm"].verdict == Severity.PASS


def test_the_data_file_records_the_vllm_version_it_was_read_from() -> None:
    support = engine_support.vllm_support()

    assert support.engine == "vllm" and support.version.count(".") == 2
    assert {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"} <= {
        name for name, arch in support.architectures.items() if arch.lora
    }
    assert not support.architectures["GPT2LMHeadModel"].lora

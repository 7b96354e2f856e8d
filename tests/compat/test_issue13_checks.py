"""Checks that said something false about valid PEFT adapters (issue 13, cases 7, 8, 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from registry.compat import Severity
from registry.errors import InvalidAdapter
from registry.formats.adapter import inspect_adapter, local_files
from tests.compat.corpus import Library
from tests.factories import make_llama


def test_lora_only_bias_is_reported_as_a_bias_not_as_another_model_size(
    library: Library,
) -> None:
    report = library.check("qwen2_bias", "qwen2", engines=["vllm", "peft"])

    assert "shapes.extras" not in report.codes()
    [note] = [f for f in report.findings if f.code == "schema.bias"]
    assert note.severity == Severity.INFO
    assert "bias='lora_only', 4 bias tensors" in note.message and "vLLM refuses" in note.message
    assert report.engines["peft"].verdict == Severity.PASS
    assert report.engines["vllm"].verdict == Severity.FAIL
    assert report.codes() == {"engine.bias"}


def test_a_bias_of_the_wrong_size_is_still_caught(library: Library) -> None:
    report = library.check("qwen2_bias", "llama")  # LLaMA's q_proj has no bias at all

    assert "shapes.extras" in report.codes()


@pytest.mark.parametrize("adapter", ["excluded", "excluded_regex"])
def test_exclude_modules_are_not_missing_targets(library: Library, adapter: str) -> None:
    config = json.loads((library.adapter(adapter) / "adapter_config.json").read_text())
    # PEFT saves all-linear expanded, down_proj included, and excludes it when it loads.
    assert any(t.endswith("down_proj") for t in config["target_modules"])

    report = library.check(adapter, "llama")

    assert report.codes() == set()


def test_a_declared_target_outside_the_exclusions_is_still_missing(library: Library) -> None:
    report = library.check("excluded_more", "llama")

    assert report.codes() == {"tensors.target_missing"}
    assert "'qq_proj'" in report.problems()[0].message


@pytest.mark.parametrize("method", ["vera", "loha"])
def test_other_peft_methods_are_named_first(method: str, tmp_path: Path) -> None:
    from peft import LoHaConfig, VeraConfig, get_peft_model

    config = (
        VeraConfig(r=4, target_modules=["q_proj"])
        if method == "vera"
        else LoHaConfig(r=4, target_modules=["q_proj"])
    )
    torch.manual_seed(0)
    get_peft_model(make_llama(), config).save_pretrained(str(tmp_path / method))

    with pytest.raises(InvalidAdapter) as exc:
        inspect_adapter(local_files(tmp_path / method))

    assert f"peft_type is '{method.upper()}'" in exc.value.message
    assert "lora_alpha" not in exc.value.message

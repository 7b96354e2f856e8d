"""Compatibility checks on real PEFT adapters: valid ones pass, each broken one yields
exactly the finding of its failure class."""

from __future__ import annotations

import json

import pytest

from registry.compat import CheckReport, Severity, run_checks
from registry.errors import InvalidAdapter
from registry.formats.adapter import inspect_adapter, local_files
from tests.compat.corpus import Library

# "lm_head": PEFT saves lm_head.base_layer.weight beside its LoRA (issue 13, case 4).
VALID = ["llama", "rslora", "rank_pattern", "dora", "embedding", "lm_head"]


@pytest.mark.parametrize("adapter", VALID)
def test_valid_llama_adapters_pass_against_their_base(library: Library, adapter: str) -> None:
    report = library.check(adapter, "llama", trained_on="llama")

    assert report.codes() == set()
    assert report.verdict == Severity.PASS
    assert report.engines["peft"].verdict == Severity.PASS
    # Numbers ran: a norm for every adapted module, all of them non-zero updates.
    assert set(report.norms) == set(_modules(report))
    assert all(n["delta"] > 0 for n in report.norms.values())


def test_gpt2_conv1d_adapter_passes_against_gpt2(library: Library) -> None:
    report = library.check("gpt2", "gpt2", trained_on="gpt2")

    assert report.codes() == set()
    # c_attn's base weight is (in=32, out=96): the check used the transposed layout.
    assert library.base("gpt2").tensors["transformer.h.0.attn.c_attn.weight"][1] == (32, 96)
    assert {f.code for f in report.findings if f.severity == Severity.PASS} >= {
        "shapes.in_features",
        "shapes.out_features",
    }


def _modules(report: CheckReport) -> list[str]:
    return [m for m in report.norms]


BROKEN = [
    # (adapter, base, trained_on, engines, expected warn/fail codes)
    ("rank_640", "llama", None, ["vllm"], {"engine.rank"}),
    ("dora", "llama", None, ["vllm"], {"engine.dora"}),
    ("modules_to_save", "llama", None, ["vllm"], {"engine.modules_to_save"}),
    ("gpt2", "llama", None, None, {"names.no_match"}),
    ("renamed", "llama", None, None, {"names.unmatched"}),
    ("big", "llama", None, None, {"shapes.in_features", "shapes.out_features"}),
    ("nan", "llama", None, None, {"numbers.non_finite"}),
    ("zero_b", "llama", None, None, {"numbers.zero_b"}),
    ("embedding_untrained", "llama", None, None, {"numbers.zero_b"}),
    ("wide", "llama", "llama_wide", None, {"base.structure_mismatch"}),
    ("seed1", "llama", "llama_seed1", None, {"base.content_mismatch"}),
    ("deep", "llama", None, None, {"names.layer_out_of_range"}),
    ("orphan", "llama", None, None, {"tensors.orphan"}),
    ("vocab160", "llama", None, None, {"shapes.embedding_vocab"}),
    ("unpaired", "llama", None, None, {"tensors.unpaired"}),
    ("rank_mismatch", "llama", None, None, {"tensors.rank"}),
    ("target_missing", "llama", None, None, {"tensors.target_missing"}),
    ("f64", "llama", None, None, {"numbers.dtype"}),
    ("embedding_tied", "llama_tied", None, None, {"base.tied_embedding"}),
    ("lm_head_tied", "llama_tied", None, None, {"base.tied_embedding"}),
    ("gpt2_mixed", "gpt2", None, None, {"base.tied_embedding"}),
]


@pytest.mark.parametrize(
    ("adapter", "base", "trained_on", "engines", "expected"),
    BROKEN,
    ids=[case[0] for case in BROKEN],
)
def test_each_broken_adapter_yields_exactly_its_finding(
    library: Library,
    adapter: str,
    base: str,
    trained_on: str | None,
    engines: list[str] | None,
    expected: set[str],
) -> None:
    report = library.check(adapter, base, trained_on=trained_on, engines=engines)

    assert report.codes() == expected
    worst = max((f.severity.rank for f in report.findings if f.code in expected), default=0)
    assert report.verdict.rank == worst
    for finding in report.problems():
        assert finding.message and finding.hint, finding


def test_the_checks_run_on_adapters_inspect_adapter_refuses(library: Library) -> None:
    with pytest.raises(InvalidAdapter):
        inspect_adapter(local_files(library.adapter("unpaired")))

    report = library.check("unpaired", "llama")
    [finding] = [f for f in report.findings if f.code == "tensors.unpaired"]
    assert finding.module == "model.layers.0.self_attn.q_proj"
    assert "no lora_B" in finding.message


def test_findings_name_the_module_and_say_what_to_do(library: Library) -> None:
    report = library.check("deep", "llama")

    bad = report.problems()
    assert {f.module for f in bad} == {
        "model.layers.2.self_attn.q_proj",
        "model.layers.2.self_attn.v_proj",
    }
    assert "layer index 2 is out of range: the base has indices 0..1" in bad[0].message
    assert any("FAIL names.layer_out_of_range model.layers.2" in line for line in report.lines())


def test_without_base_or_data_the_rules_that_need_them_are_skipped(library: Library) -> None:
    folder = library.adapter("llama")
    contents = inspect_adapter(local_files(folder))

    report = run_checks(contents.config, contents.header)

    assert report.verdict == Severity.PASS
    assert report.codes(Severity.INFO) >= {
        "checks.base_skipped",
        "checks.identity_skipped",
        "checks.numbers_skipped",
    }
    assert not report.norms


def test_a_report_survives_json(library: Library) -> None:
    report = library.check("rank_pattern", "llama", trained_on="llama", engines=["vllm"])

    doc = json.loads(json.dumps(report.to_json()))

    assert CheckReport.from_json(doc) == report
    assert doc["verdict"] == "pass"
    assert doc["base_fingerprint"]["structure_hash"] == library.base("llama").structure_hash


def test_bf16_adapters_are_read_for_the_numbers_checks(library: Library) -> None:
    fp32 = library.check("llama", "llama")
    bf16 = library.check("bf16", "llama")

    assert bf16.codes() == set()
    for module, norms in fp32.norms.items():
        assert bf16.norms[module]["delta"] == pytest.approx(norms["delta"], rel=2e-2)


def test_module_names_under_another_prefix_still_resolve(library: Library) -> None:
    report = library.check("no_prefix", "llama", trained_on="llama")

    assert report.codes() == set()
    [note] = [f for f in report.findings if f.code == "names.prefix"]
    assert note.severity == Severity.INFO
    assert "layers.0.self_attn.q_proj -> model.layers.0.self_attn.q_proj.weight" in note.message


def test_a_tied_embedding_finding_names_the_module_and_the_shared_weight(
    library: Library,
) -> None:
    report = library.check("embedding_tied", "llama_tied")

    [finding] = report.problems()
    assert finding.module == "model.embed_tokens"
    assert "ties lm_head to the input embedding (model.embed_tokens.weight)" in finding.message
    assert "to the input embedding only" in finding.message
    # The same adapter on an untied base of the same shape is fine.
    assert library.check("embedding", "llama").codes() == set()


def test_mixed_conv1d_and_linear_targets_fit_gpt2_whatever_fan_in_fan_out_says(
    library: Library,
) -> None:
    report = library.check("gpt2_mixed", "gpt2")

    assert not report.codes() & {"shapes.in_features", "shapes.out_features"}
    assert not report.codes() & {"shapes.fan_in_fan_out", "tensors.orphan"}

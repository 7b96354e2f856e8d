"""Several adapters: sum, linear (PEFT's), cat and svd, and the interference report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from registry.errors import InvalidInput
from registry.merge import AdapterInput, interference_report
from tests.factories import make_adapter, make_llama
from tests.merge.conftest import load_output, merge, peft_merged


@pytest.fixture(scope="module")
def two_adapters(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("adapters")
    a = make_adapter(root / "a", base=make_llama(), seed=1, target_modules=["q_proj", "v_proj"])
    b = make_adapter(
        root / "b", base=make_llama(), seed=2, r=4, target_modules=["v_proj", "up_proj"]
    )
    return a, b


def _base_state(base: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for f in sorted(base.glob("*.safetensors")):
        state.update(load_file(f))
    return state


def test_sum_is_the_weighted_sum_of_deltas(
    llama_base: Path, two_adapters: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = two_adapters
    w = _base_state(llama_base)
    only_a = load_output(merge(llama_base, [a], tmp_path / "a"))
    only_b = load_output(merge(llama_base, [b], tmp_path / "b"))
    both = merge(llama_base, [a, b], tmp_path / "ab", weights=[0.7, -0.3], method="sum")
    merged = load_output(both)
    assert both.verification.passed
    for name, base in w.items():
        expected = base + 0.7 * (only_a[name] - base) - 0.3 * (only_b[name] - base)
        torch.testing.assert_close(merged[name], expected, atol=1e-6, rtol=0)


def test_cat_equals_sum_and_peft_cat(
    llama_base: Path, two_adapters: tuple[Path, Path], tmp_path: Path
) -> None:
    from peft import PeftModel

    a, b = two_adapters
    linear = load_output(merge(llama_base, [a, b], tmp_path / "lin", weights=[0.5, 2.0]))
    cat = load_output(merge(llama_base, [a, b], tmp_path / "cat", weights=[0.5, 2.0], method="cat"))
    model = PeftModel.from_pretrained(make_llama(), a, adapter_name="a")
    model.load_adapter(b, adapter_name="b")
    model.add_weighted_adapter(["a", "b"], [0.5, 2.0], "ab", combination_type="cat")
    model.set_adapter("ab")
    peft_cat = model.merge_and_unload(adapter_names=["ab"]).state_dict()
    for name, tensor in linear.items():
        torch.testing.assert_close(cat[name], tensor, atol=1e-6, rtol=0)
        torch.testing.assert_close(peft_cat[name], tensor, atol=1e-6, rtol=0)


def test_svd_at_full_rank_equals_sum_and_truncates_otherwise(
    llama_base: Path, two_adapters: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = two_adapters
    w = _base_state(llama_base)
    linear = load_output(merge(llama_base, [a, b], tmp_path / "lin", weights=[1.0, 0.5]))
    full = load_output(
        merge(llama_base, [a, b], tmp_path / "full", weights=[1.0, 0.5], method="svd", svd_rank=8)
    )
    low = merge(llama_base, [a, b], tmp_path / "low", weights=[1.0, 0.5], method="svd", svd_rank=2)
    truncated = load_output(low)
    assert low.verification.passed
    for name in w:
        torch.testing.assert_close(full[name], linear[name], atol=1e-5, rtol=0)
    name = "model.layers.0.self_attn.v_proj.weight"  # changed by both adapters
    delta = (linear[name] - w[name]).double()
    u, s, vh = torch.linalg.svd(delta)
    best = (u[:, :2] * s[:2]) @ vh[:2]
    got = (truncated[name] - w[name]).double()
    assert torch.linalg.matrix_rank(got, atol=1e-4) == 2
    torch.testing.assert_close(got, best, atol=1e-5, rtol=0)


def test_embedding_adapters_compose_with_cat(llama_base: Path, tmp_path: Path) -> None:
    # PEFT saves a copy of the embedding with embedding targets; equal to the base, it is dropped.
    a = make_adapter(tmp_path / "a", base=make_llama(), target_modules=["embed_tokens"], seed=3)
    b = make_adapter(tmp_path / "b", base=make_llama(), target_modules=["embed_tokens"], seed=4)
    cat = load_output(merge(llama_base, [a, b], tmp_path / "cat", method="cat"))
    linear = load_output(merge(llama_base, [a, b], tmp_path / "lin"))
    torch.testing.assert_close(
        cat["model.embed_tokens.weight"], linear["model.embed_tokens.weight"]
    )


def test_single_adapter_weight_scales_its_delta(llama_base: Path, tmp_path: Path) -> None:
    a = make_adapter(tmp_path / "a", base=make_llama(), use_dora=True)
    w = _base_state(llama_base)
    full = load_output(merge(llama_base, [a], tmp_path / "full"))
    half = load_output(merge(llama_base, [a], tmp_path / "half", weights=[0.5]))
    assert torch.equal(
        full["model.layers.0.self_attn.q_proj.weight"],
        peft_merged(make_llama(), a)["model.layers.0.self_attn.q_proj.weight"],
    )
    for name in w:
        torch.testing.assert_close(
            half[name] - w[name], 0.5 * (full[name] - w[name]), atol=1e-6, rtol=0
        )


def test_interference_report(two_adapters: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two_adapters
    negated = tmp_path / "neg"
    negated.mkdir()
    (negated / "adapter_config.json").write_text((a / "adapter_config.json").read_text())
    tensors = load_file(a / "adapter_model.safetensors")
    save_file(
        {k: -v if "lora_B" in k else v for k, v in tensors.items()},
        negated / "adapter_model.safetensors",
    )
    report = interference_report(
        [AdapterInput(a, "a"), AdapterInput(b, "b"), AdapterInput(negated, "neg")], top=3
    )
    pairs = {p.adapters: p for p in report.pairs}
    assert pairs[("a", "neg")].modules == 4
    assert pairs[("a", "neg")].mean_cosine == pytest.approx(-1.0)
    assert pairs[("a", "b")].modules == 2  # both change v_proj in two layers
    assert pairs[("a", "b")].max_abs_cosine < 0.5  # independent random adapters
    assert report.top[0].cosine == pytest.approx(-1.0) and len(report.top) == 3
    assert report.modules_shared == 4
    assert any("a x neg" in line for line in report.lines())
    assert report.to_dict()["max_abs_cosine"] == pytest.approx(1.0)


def _peft_combined(adapters: dict[str, Path], weights: list[float], how: str) -> Any:
    from peft import PeftModel

    names = list(adapters)
    model = PeftModel.from_pretrained(make_llama(), adapters[names[0]], adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(adapters[name], adapter_name=name)
    model.add_weighted_adapter(names, weights, "combined", combination_type=how)
    model.set_adapter("combined")
    return model.merge_and_unload(adapter_names=["combined"]).state_dict()


@pytest.mark.parametrize("weights", [[0.5, 0.5], [0.7, -0.3]])
def test_linear_is_peft_linear(
    weights: list[float], llama_base: Path, two_adapters: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = two_adapters
    result = merge(llama_base, [a, b], tmp_path / "lin", weights=weights, method="linear")
    ours = load_output(result)
    reference = _peft_combined({"a": a, "b": b}, weights, "linear")

    assert result.method == "linear" and result.verification.passed
    for name, tensor in ours.items():
        torch.testing.assert_close(tensor, reference[name], atol=1e-6, rtol=0)
    # Cross terms B_a A_b: not the weighted sum of the deltas (that is `sum`).
    summed = load_output(merge(llama_base, [a, b], tmp_path / "sum", weights=weights))
    name = "model.layers.0.self_attn.v_proj.weight"  # changed by both adapters
    assert (summed[name] - ours[name]).abs().max() > 1e-4


def test_linear_refuses_unequal_ranks_as_peft_does(
    llama_base: Path, two_adapters: tuple[Path, Path], tmp_path: Path
) -> None:
    a, _ = two_adapters
    r8 = make_adapter(tmp_path / "r8", base=make_llama(), r=8, target_modules=["v_proj"])
    with pytest.raises(ValueError, match="same r value"):
        _peft_combined({"a": a, "r8": r8}, [0.5, 0.5], "linear")

    with pytest.raises(InvalidInput, match=r"one rank \(a r=4, r8 r=8\)"):
        merge(llama_base, [a, r8], tmp_path / "out", method="linear")
    assert not (tmp_path / "out").exists()
    assert merge(llama_base, [a, r8], tmp_path / "sum", method="sum").verification.passed


def test_merge_help_says_what_each_method_is() -> None:
    from click.testing import CliRunner

    from cli.main import cli

    text = " ".join(CliRunner().invoke(cli, ["merge", "--help"]).output.split())
    assert "[sum|linear|cat|svd]" in text and "[default: sum]" in text
    assert "sum: the exact weighted sum of their deltas" in text
    assert "linear: PEFT's add_weighted_adapter linear" in text

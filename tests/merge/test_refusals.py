"""What the engine refuses, with messages a user can act on; nothing is left on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from registry.errors import AlreadyExists, InvalidAdapter, InvalidInput, UnsafeFormat
from registry.merge import MergeCancelled
from tests.factories import make_adapter, make_gpt2, make_llama
from tests.merge.conftest import merge


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tmp_path_factory.mktemp("adapter") / "a", base=make_llama())


def _patched(adapter: Path, folder: Path, **fields: Any) -> Path:
    """A copy of ``adapter`` with config fields overridden."""
    folder.mkdir()
    doc = json.loads((adapter / "adapter_config.json").read_text()) | fields
    (folder / "adapter_config.json").write_text(json.dumps(doc))
    (folder / "adapter_model.safetensors").write_bytes(
        (adapter / "adapter_model.safetensors").read_bytes()
    )
    return folder


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"bias": "some"}, "bias='some'"),
        ({"lora_bias": True}, "lora_bias"),
        ({"init_lora_weights": "pissa_niter_4"}, "rewrites the base weights"),
        ({"init_lora_weights": "olora"}, "rewrites the base weights"),
        ({"layer_replication": [[0, 2]]}, "layer_replication"),
        ({"alora_invocation_tokens": [1, 2]}, "activated LoRA"),
        ({"use_dora": True}, "has no lora_magnitude_vector"),
    ],
)
def test_refuses_configs_it_cannot_merge_exactly(
    fields: dict[str, Any], message: str, adapter: Path, llama_base: Path, tmp_path: Path
) -> None:
    bad = _patched(adapter, tmp_path / "bad", **fields)
    with pytest.raises(InvalidAdapter, match=message):
        merge(llama_base, [bad], tmp_path / "out")
    assert list(tmp_path.iterdir()) == [bad]


def test_refuses_an_adapter_for_another_model(llama_base: Path, tmp_path: Path) -> None:
    gpt2_adapter = make_adapter(tmp_path / "g", base=make_gpt2(), target_modules=["c_attn"])
    with pytest.raises(InvalidAdapter, match="not a tensor of the base model"):
        merge(llama_base, [gpt2_adapter], tmp_path / "out")
    wider = make_adapter(tmp_path / "w", base=make_llama(hidden_size=64))
    with pytest.raises(InvalidAdapter, match="does not fit base tensor"):
        merge(llama_base, [wider], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_refuses_unknown_tensors(adapter: Path, llama_base: Path, tmp_path: Path) -> None:
    bad = _patched(adapter, tmp_path / "bad")
    tensors = load_file(bad / "adapter_model.safetensors")
    tensors["base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias"] = torch.zeros(32)
    save_file(tensors, bad / "adapter_model.safetensors")
    with pytest.raises(InvalidAdapter, match="lora_B.bias is neither"):
        merge(llama_base, [bad], tmp_path / "out")


def test_refuses_dora_under_cat_and_svd(llama_base: Path, tmp_path: Path) -> None:
    dora = make_adapter(tmp_path / "d", base=make_llama(), use_dora=True)
    for method in ("cat", "svd"):
        with pytest.raises(InvalidInput, match=f"method '{method}' cannot merge DoRA"):
            merge(llama_base, [dora], tmp_path / "out", method=method)


def test_refuses_two_replacements_of_one_tensor(llama_base: Path, tmp_path: Path) -> None:
    kw: dict[str, Any] = {"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]}
    a = make_adapter(tmp_path / "a", base=make_llama(), **kw)
    b = make_adapter(tmp_path / "b", base=make_llama(), seed=5, **kw)
    with pytest.raises(InvalidInput, match="each replace lm_head.weight"):
        merge(llama_base, [a, b], tmp_path / "out")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"weights": [1.0, 2.0]}, "2 weights for 1 adapters"),
        ({"weights": [float("nan")]}, "finite"),
        ({"method": "ties"}, "method 'ties' is unknown"),
        ({"svd_rank": 4}, "svd_rank only applies"),
        ({"method": "svd", "svd_rank": 0}, "positive integer"),
        ({"dtype": "int8"}, "output dtype"),
        ({"device": "tpu"}, "not supported"),
    ],
)
def test_refuses_bad_options(
    kw: dict[str, Any], message: str, adapter: Path, llama_base: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match=message):
        merge(llama_base, [adapter], tmp_path / "out", **kw)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_refuses_cuda_when_absent(adapter: Path, llama_base: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no CUDA device"):
        merge(llama_base, [adapter], tmp_path / "out", device="cuda")


def test_refuses_missing_or_pickled_base_and_existing_output(
    adapter: Path, llama_base: Path, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        merge(tmp_path / "nowhere", [adapter], tmp_path / "out")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(UnsafeFormat, match="pickle"):
        merge(pickled, [adapter], tmp_path / "out")
    (tmp_path / "out").mkdir()
    with pytest.raises(AlreadyExists):
        merge(llama_base, [adapter], tmp_path / "out")


def test_cancellation_leaves_no_output(adapter: Path, llama_base: Path, tmp_path: Path) -> None:
    calls = []

    def should_cancel() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(MergeCancelled):
        merge(llama_base, [adapter], tmp_path / "out", should_cancel=should_cancel, chunk_bytes=64)
    assert len(calls) > 3
    assert sorted(p.name for p in tmp_path.iterdir()) == []

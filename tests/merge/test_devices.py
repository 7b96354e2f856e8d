"""The buffered read path CUDA merges use, and CUDA against the CPU where a GPU is present."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from registry.merge import stream
from tests.factories import make_adapter, make_gpt2, make_llama
from tests.merge.conftest import load_output, max_abs_diff, merge, peft_merged

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _adapters(root: Path) -> dict[str, tuple[str, Path]]:
    """A spread of adapters: plain, DoRA, (in, out) layouts, embeddings, a saved module."""
    return {
        "llama-dora": (
            "llama",
            make_adapter(
                root / "dora",
                base=make_llama(),
                target_modules=["q_proj", "down_proj", "embed_tokens"],
                use_dora=True,
            ),
        ),
        "llama-rslora-lm-head": (
            "llama",
            make_adapter(
                root / "rs",
                base=make_llama(),
                target_modules=["q_proj", "v_proj"],
                use_rslora=True,
                lora_alpha=3,
                modules_to_save=["lm_head"],
            ),
        ),
        "gpt2-dora": (
            "gpt2",
            make_adapter(
                root / "g",
                base=make_gpt2(),
                target_modules=["c_attn", "c_proj", "wte"],
                fan_in_fan_out=True,
                use_dora=True,
            ),
        ),
    }


def test_buffered_reads_match_mapped_reads(
    llama_base: Path, gpt2_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bases = {"llama": llama_base, "gpt2": gpt2_base}
    for name, (model, adapter) in _adapters(tmp_path / "adapters").items():
        mapped = load_output(merge(bases[model], [adapter], tmp_path / f"{name}-mapped"))
        with monkeypatch.context() as m:
            m.setattr(stream, "MAP_READS", False)
            buffered = merge(
                bases[model], [adapter], tmp_path / f"{name}-buffered", chunk_bytes=256
            )
        assert max_abs_diff(mapped, load_output(buffered)) <= 1e-6


@needs_cuda
@pytest.mark.parametrize("method", ["sum", "linear", "svd"])
def test_cuda_matches_cpu_and_peft(
    method: str, llama_base: Path, gpt2_base: Path, tmp_path: Path
) -> None:
    bases = {"llama": llama_base, "gpt2": gpt2_base}
    factories: dict[str, Any] = {"llama": make_llama, "gpt2": make_gpt2}
    for name, (model, adapter) in _adapters(tmp_path / "adapters").items():
        if method == "svd" and "dora" in name:
            continue
        kw: dict[str, Any] = {"method": method}
        cpu = merge(bases[model], [adapter], tmp_path / f"{name}-cpu", **kw)
        gpu = merge(bases[model], [adapter], tmp_path / f"{name}-gpu", device="cuda", **kw)
        assert gpu.device.startswith("cuda") and gpu.verification.passed
        assert max_abs_diff(load_output(cpu), load_output(gpu)) <= 1e-5
        if method in ("sum", "linear"):
            reference = peft_merged(factories[model](), adapter)
            assert max_abs_diff(reference, load_output(gpu)) <= 1e-5


@needs_cuda
def test_cuda_bf16_base_and_composition(llama_base: Path, tmp_path: Path) -> None:
    a = make_adapter(tmp_path / "a", base=make_llama(), target_modules=["q_proj", "v_proj"])
    b = make_adapter(tmp_path / "b", base=make_llama(), seed=7, target_modules=["v_proj"])
    for method in ("sum", "linear", "cat", "svd"):
        kw: dict[str, Any] = {"method": method, "weights": [0.6, 0.4], "dtype": "bfloat16"}
        cpu = merge(llama_base, [a, b], tmp_path / f"{method}-cpu", **kw)
        gpu = merge(llama_base, [a, b], tmp_path / f"{method}-gpu", device="cuda", **kw)
        ours, theirs = load_output(gpu), load_output(cpu)
        eps = torch.finfo(torch.bfloat16).eps
        for key, tensor in ours.items():
            diff = (tensor.float() - theirs[key].float()).abs()
            assert (diff <= eps * theirs[key].float().abs() + 1e-30).all(), (method, key)


@needs_cuda
def test_cuda_streams_with_small_chunks_write_what_they_hash(
    llama_base: Path, tmp_path: Path
) -> None:
    # Chunks of a few rows: the page-locked read and write buffers come round again many
    # times while copies on the other stream may still be in flight, so a buffer reused
    # too early shows up as wrong bytes (against the CPU) or as a hash that is not the file's.
    import hashlib

    adapters = _adapters(tmp_path / "adapters")
    for name in ("llama-dora", "llama-rslora-lm-head"):
        _, adapter = adapters[name]
        cpu = merge(llama_base, [adapter], tmp_path / f"{name}-cpu")
        gpu = merge(
            llama_base,
            [adapter],
            tmp_path / f"{name}-gpu",
            device="cuda",
            chunk_bytes=1024,
            durable=True,
        )
        assert gpu.verification.passed
        assert max_abs_diff(load_output(cpu), load_output(gpu)) <= 1e-5
        for shard in gpu.shards:
            written = hashlib.sha256((gpu.out_dir / shard).read_bytes()).hexdigest()
            assert gpu.shard_sha256[shard] == written, (name, shard)

"""Tiny base models and real PEFT adapters for the compatibility tests, built on demand.

``Library`` builds each base or adapter the first time a test asks for it and keeps it
for the session. Broken adapters are real PEFT adapters edited the way they break in the
wild: a NaN from a diverged run, a renamed module, a stray tensor, an edited config.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from registry.compat import BaseModelInfo, CheckReport, inspect_base, run_checks
from registry.compat.fingerprint import BaseFingerprint
from registry.compat.tensors import local_tensor_loader
from registry.formats.peft import parse_config
from tests.factories import (
    make_adapter,
    make_gpt2,
    make_llama,
    make_mistral,
    make_qwen2,
    save_base,
)

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"

BASES: dict[str, Callable[[], Any]] = {
    "llama": lambda: make_llama(seed=0),
    "llama_seed1": lambda: make_llama(seed=1),  # same structure, other weights
    "llama_wide": lambda: make_llama(intermediate_size=96),  # other structure, same q/v
    "llama_deep": lambda: make_llama(num_hidden_layers=3),
    "llama_big": lambda: make_llama(hidden_size=64),
    "llama_vocab160": lambda: make_llama(vocab_size=160),
    "gpt2": make_gpt2,
    "llama_tied": lambda: make_llama(tie_word_embeddings=True),
    "qwen2": make_qwen2,
    "mistral": make_mistral,
}


def rewrite(
    src: Path,
    dst: Path,
    *,
    tensors: Callable[[dict[str, torch.Tensor]], None] | None = None,
    config: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Copy an adapter folder, editing its tensors and/or its config in place."""
    shutil.copytree(src, dst)
    if tensors:
        state = load_file(dst / WEIGHTS)
        tensors(state)
        save_file(state, dst / WEIGHTS, metadata={"format": "pt"})
    if config:
        doc = json.loads((dst / CONFIG).read_text())
        config(doc)
        (dst / CONFIG).write_text(json.dumps(doc))
    return dst


Q0 = "base_model.model.model.layers.0.self_attn.q_proj"


def _nan(state: dict[str, torch.Tensor]) -> None:
    state[f"{Q0}.lora_A.weight"][0, 0] = float("nan")


def _rename(state: dict[str, torch.Tensor]) -> None:
    for kind in ("lora_A", "lora_B"):
        state[f"{Q0.replace('q_proj', 'qq_proj')}.{kind}.weight"] = state.pop(f"{Q0}.{kind}.weight")


def _orphan(state: dict[str, torch.Tensor]) -> None:
    state[f"{Q0}.lora_C.weight"] = torch.zeros(4, 32)


def _unpair(state: dict[str, torch.Tensor]) -> None:
    del state[f"{Q0}.lora_B.weight"]


def _train_embedding(state: dict[str, torch.Tensor]) -> None:
    # PEFT zero-initialises lora_embedding_A (make_adapter randomises only B).
    gen = torch.Generator().manual_seed(7)
    for key, value in state.items():
        if key.endswith("lora_embedding_A"):
            state[key] = torch.randn(value.shape, generator=gen) * 0.02


def _drop_model_prefix(state: dict[str, torch.Tensor]) -> None:
    # As saved by an adapter trained on LlamaModel rather than LlamaForCausalLM.
    for key in list(state):
        state[key.replace("base_model.model.model.", "base_model.model.")] = state.pop(key)


def _f64(state: dict[str, torch.Tensor]) -> None:
    for key in state:
        state[key] = state[key].to(torch.float64)


def _bf16(state: dict[str, torch.Tensor]) -> None:
    for key in state:
        state[key] = state[key].to(torch.bfloat16)


# The base each adapter is judged against when no test says otherwise (the engine oracles).
ADAPTER_BASES: dict[str, str] = {
    "gpt2": "gpt2", "gpt2_mixed": "gpt2",
    "embedding_tied": "llama_tied", "lm_head_tied": "llama_tied",
    "qwen2": "qwen2", "qwen2_bias": "qwen2", "qwen2_embedding": "qwen2",
    "mistral_embedding": "mistral", "mistral": "mistral",
}  # fmt: skip


def base_for(adapter: str) -> str:
    return ADAPTER_BASES.get(adapter, "llama")


class Library:
    """Bases and adapters under ``root``, each built once per session."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._bases: dict[str, BaseModelInfo] = {}
        self._adapters: dict[str, Path] = {}

    def base_dir(self, name: str) -> Path:
        folder = self.root / "bases" / name
        if not folder.exists():
            save_base(BASES[name](), folder)
        return folder

    def base(self, name: str) -> BaseModelInfo:
        if name not in self._bases:
            self._bases[name] = inspect_base(str(self.base_dir(name)))
        return self._bases[name]

    def fingerprint(self, name: str) -> BaseFingerprint:
        return self.base(name).fingerprint()

    def adapter(self, name: str) -> Path:
        if name not in self._adapters:
            self._adapters[name] = self._build(name, self.root / "adapters" / name)
        return self._adapters[name]

    def names(self) -> list[str]:
        """Every adapter the library can build."""
        return sorted(self._recipes(self.root / "unused"))

    def _build(self, name: str, out: Path) -> Path:
        return self._recipes(out)[name]()

    def _recipes(self, out: Path) -> dict[str, Callable[[], Path]]:
        recipes: dict[str, Callable[[], Path]] = {
            "llama": lambda: make_adapter(out, base=make_llama()),
            "gpt2": lambda: make_adapter(
                out, base=make_gpt2(), target_modules=["c_attn", "c_fc"], fan_in_fan_out=True
            ),
            "rslora": lambda: make_adapter(
                out, base=make_llama(), r=8, lora_alpha=16, use_rslora=True
            ),
            "rank_pattern": lambda: make_adapter(
                out, base=make_llama(), rank_pattern={"v_proj": 8}, alpha_pattern={"v_proj": 16}
            ),
            "dora": lambda: make_adapter(out, base=make_llama(), use_dora=True),
            "embedding": lambda: rewrite(
                self.adapter("embedding_untrained"), out, tensors=_train_embedding
            ),
            "embedding_untrained": lambda: make_adapter(
                out, base=make_llama(), target_modules=["embed_tokens", "q_proj"]
            ),
            "modules_to_save": lambda: make_adapter(
                out, base=make_llama(), modules_to_save=["lm_head"]
            ),
            "rank_640": lambda: make_adapter(out, base=make_llama(), r=640, lora_alpha=640),
            "rank_20": lambda: make_adapter(out, base=make_llama(), r=20, lora_alpha=20),
            "rank_64": lambda: make_adapter(out, base=make_llama(), r=64, lora_alpha=64),
            "zero_b": lambda: make_adapter(out, base=make_llama(), init_b_random=False),
            "big": lambda: make_adapter(out, base=BASES["llama_big"]()),
            "wide": lambda: make_adapter(out, base=BASES["llama_wide"]()),
            "seed1": lambda: make_adapter(out, base=BASES["llama_seed1"]()),
            "deep": lambda: make_adapter(out, base=BASES["llama_deep"]()),
            "vocab160": lambda: rewrite(
                make_adapter(
                    out.with_name("vocab160-raw"),
                    base=BASES["llama_vocab160"](),
                    target_modules=["embed_tokens"],
                ),
                out,
                tensors=_train_embedding,
            ),
            "embedding_tied": lambda: rewrite(
                make_adapter(
                    out.with_name("embedding_tied-raw"),
                    base=BASES["llama_tied"](),
                    target_modules=["embed_tokens", "q_proj"],
                ),
                out,
                tensors=_train_embedding,
            ),
            "lm_head_tied": lambda: make_adapter(
                out, base=BASES["llama_tied"](), target_modules=["q_proj", "lm_head"]
            ),
            "qwen2_embedding": lambda: rewrite(
                make_adapter(
                    out.with_name("qwen2_embedding-raw"),
                    base=make_qwen2(),
                    target_modules=["embed_tokens", "q_proj"],
                ),
                out,
                tensors=_train_embedding,
            ),
            "mistral_embedding": lambda: rewrite(
                make_adapter(
                    out.with_name("mistral_embedding-raw"),
                    base=make_mistral(),
                    target_modules=["embed_tokens", "q_proj"],
                ),
                out,
                tensors=_train_embedding,
            ),
            "qwen2": lambda: make_adapter(out, base=make_qwen2()),
            "mistral": lambda: make_adapter(
                out, base=make_mistral(), target_modules=["q_proj", "v_proj", "down_proj"]
            ),
            "qwen2_bias": lambda: make_adapter(
                out, base=make_qwen2(), target_modules=["q_proj", "v_proj"], bias="lora_only"
            ),
            "excluded": lambda: make_adapter(
                out, base=make_llama(), target_modules="all-linear", exclude_modules=["down_proj"]
            ),
            "excluded_regex": lambda: make_adapter(
                out,
                base=make_llama(),
                target_modules="all-linear",
                exclude_modules=r".*\.(down_proj|lm_head)",
            ),
            "excluded_more": lambda: rewrite(
                self.adapter("excluded"),
                out,
                config=lambda d: d.update(target_modules=[*d["target_modules"], "qq_proj"]),
            ),
            "lm_head": lambda: make_adapter(
                out, base=make_llama(), target_modules=["q_proj", "lm_head"]
            ),
            "gpt2_mixed": lambda: make_adapter(
                out, base=make_gpt2(), target_modules=["c_attn", "c_proj", "lm_head"]
            ),
            "nan": lambda: rewrite(self.adapter("llama"), out, tensors=_nan),
            "renamed": lambda: rewrite(self.adapter("llama"), out, tensors=_rename),
            "orphan": lambda: rewrite(self.adapter("llama"), out, tensors=_orphan),
            "unpaired": lambda: rewrite(self.adapter("llama"), out, tensors=_unpair),
            "no_prefix": lambda: rewrite(self.adapter("llama"), out, tensors=_drop_model_prefix),
            "f64": lambda: rewrite(self.adapter("llama"), out, tensors=_f64),
            "bf16": lambda: rewrite(self.adapter("llama"), out, tensors=_bf16),
            "rank_mismatch": lambda: rewrite(
                self.adapter("llama"), out, config=lambda d: d.update(r=8)
            ),
            "target_missing": lambda: rewrite(
                self.adapter("llama"),
                out,
                config=lambda d: d.update(target_modules=["q_proj", "k_proj", "v_proj"]),
            ),
        }
        return recipes

    def check(
        self,
        adapter: str,
        base: str | None,
        *,
        trained_on: str | None = None,
        engines: list[str] | None = None,
    ) -> CheckReport:
        """Run every check on ``adapter`` against ``base``, with tensor data."""
        folder = self.adapter(adapter)
        config = parse_config((folder / CONFIG).read_bytes())
        header, load = local_tensor_loader(folder / WEIGHTS)
        return run_checks(
            config,
            header,
            base=self.base(base) if base else None,
            trained_on=self.fingerprint(trained_on) if trained_on else None,
            load_tensor=load,
            engines=engines,
        )


def header_bytes(folder: Path) -> int:
    """What reading only the headers of ``folder``'s weights plus its JSON files costs."""
    total = 0
    for path in folder.iterdir():
        if path.suffix == ".safetensors":
            total += 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]
        elif path.name in ("config.json", "model.safetensors.index.json"):
            total += path.stat().st_size
    return total

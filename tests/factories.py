"""Real PEFT adapters and tiny base models with random weights, made on the spot.

No hub downloads: every model is built from a config. Kept tiny so the suite stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch


def tiny_llama_config(**overrides: Any) -> Any:
    from transformers import LlamaConfig

    kw: dict[str, Any] = dict(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    kw.update(overrides)
    return LlamaConfig(**kw)


def make_llama(seed: int = 0, **overrides: Any) -> Any:
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config(**overrides)).eval()


def make_qwen2(seed: int = 0, **overrides: Any) -> Any:
    """Qwen2: LLaMA's layout plus biases on q/k/v."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    kw: dict[str, Any] = dict(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    kw.update(overrides)
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(Qwen2Config(**kw)).eval()


def make_mistral(seed: int = 0, **overrides: Any) -> Any:
    from transformers import MistralConfig, MistralForCausalLM

    kw: dict[str, Any] = dict(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    kw.update(overrides)
    torch.manual_seed(seed)
    return MistralForCausalLM(MistralConfig(**kw)).eval()


def make_gpt2(seed: int = 0, **overrides: Any) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=128,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        bos_token_id=0,
        eos_token_id=0,
        **overrides,
    )
    return GPT2LMHeadModel(cfg).eval()


def save_base(model: Any, folder: Path, *, max_shard_size: str | None = None) -> Path:
    """Save a base model as safetensors (optionally sharded with an index)."""
    kw: dict[str, Any] = {"safe_serialization": True}
    if max_shard_size:
        kw["max_shard_size"] = max_shard_size
    model.save_pretrained(folder, **kw)
    return folder


def make_adapter(
    folder: Path,
    *,
    base: Any | None = None,
    seed: int = 1,
    r: int = 4,
    lora_alpha: int = 8,
    target_modules: list[str] | str | None = None,
    init_b_random: bool = True,
    base_name: str = "tiny-llama",
    **lora_kwargs: Any,
) -> Path:
    """Build a LoRA adapter with PEFT on a tiny model and save it to ``folder``.

    lora_B is randomised (PEFT initialises it to zero) so the adapter changes the model.
    """
    from peft import LoraConfig, get_peft_model

    base = base if base is not None else make_llama()
    cfg = LoraConfig(
        r=r,
        lora_alpha=lora_alpha,
        target_modules=target_modules or ["q_proj", "v_proj"],
        **lora_kwargs,
    )
    torch.manual_seed(seed)
    peft_model = get_peft_model(base, cfg)
    if init_b_random:
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name or "lora_embedding_B" in name:
                    param.normal_(0, 0.02)
    peft_model.save_pretrained(str(folder), safe_serialization=True)
    # Record the canonical base name the way a user's training script would.
    cfg_path = folder / "adapter_config.json"
    doc = json.loads(cfg_path.read_text())
    doc["base_model_name_or_path"] = base_name
    cfg_path.write_text(json.dumps(doc, indent=2))
    peft_model.unload()
    return folder

"""Run inside a vLLM environment (not the test suite's): load adapters the way vLLM's LoRA
worker does (``vllm/lora/worker_manager.py`` ``_load_adapter``) and report what vLLM says.

    python vllm_probe.py < requests.json > answers.json

Each request is ``{"name", "adapter", "base", "max_lora_rank"}``. For each base, vLLM's own
model class is built on the meta device (no weights), so the supported LoRA modules are
vLLM's ``get_supported_lora_modules`` of the real model; then ``PEFTHelper.from_local_dir``
+ ``validate_legal`` and ``LoRAModel.from_local_checkpoint`` run exactly as the worker
calls them. Answers: ``{"name": {"loaded": bool, "error": str}}`` plus ``"vllm_version"``.
This file imports only vLLM, torch and the standard library.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any


def main() -> None:
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    import torch
    import vllm
    from vllm.config import DeviceConfig, ModelConfig, VllmConfig, set_current_vllm_config
    from vllm.config.lora import LoRAConfig
    from vllm.distributed import init_distributed_environment, initialize_model_parallel
    from vllm.lora.lora_model import LoRAModel
    from vllm.lora.peft_helper import PEFTHelper
    from vllm.lora.utils import get_supported_lora_modules
    from vllm.model_executor.model_loader.utils import get_model_architecture
    from vllm.model_executor.models.interfaces import supports_lora

    requests: list[dict[str, Any]] = json.load(sys.stdin)
    answers: dict[str, Any] = {"vllm_version": vllm.__version__}
    models: dict[str, Any] = {}
    distributed = False

    def model_for(base: str) -> tuple[Any, Any, Any]:
        nonlocal distributed
        if base not in models:
            mc = ModelConfig(
                model=base, skip_tokenizer_init=True, dtype="float32", enforce_eager=True
            )
            vc = VllmConfig(model_config=mc, device_config=DeviceConfig("cpu"))
            with set_current_vllm_config(vc):
                if not distributed:
                    init_distributed_environment(
                        world_size=1,
                        rank=0,
                        local_rank=0,
                        distributed_init_method=f"file://{tempfile.mktemp()}",
                        backend="gloo",
                    )
                    initialize_model_parallel(1, 1)
                    distributed = True
                cls, _ = get_model_architecture(mc)
                model = None
                if supports_lora(cls):
                    with torch.device("meta"):
                        model = cls(vllm_config=vc, prefix="")
            models[base] = (cls, model, mc)
        return models[base]

    for req in requests:
        try:
            cls, model, mc = model_for(req["base"])
            if model is None:
                raise ValueError(f"{cls.__name__} does not support LoRA yet.")
            packed = getattr(model, "packed_modules_mapping", {})
            expected: list[str] = []
            for module in get_supported_lora_modules(model):
                expected.extend(packed.get(module, [module]))
            peft_helper = PEFTHelper.from_local_dir(
                req["adapter"], mc.hf_config.max_position_embeddings
            )
            peft_helper.validate_legal(LoRAConfig(max_lora_rank=req["max_lora_rank"]))
            mapper = getattr(model, "hf_to_vllm_mapper", None)
            LoRAModel.from_local_checkpoint(
                req["adapter"],
                set(expected),
                peft_helper=peft_helper,
                lora_model_id=1,
                device="cpu",
                dtype=torch.float32,
                model_vocab_size=mc.hf_config.vocab_size,
                weights_mapper=mapper.get_rename_mapper() if mapper is not None else None,
                skip_prefixes=getattr(model, "lora_skip_prefixes", None),
            )
            answers[req["name"]] = {"loaded": True, "error": ""}
        except Exception as exc:  # vLLM's refusal is the answer
            answers[req["name"]] = {"loaded": False, "error": f"{type(exc).__name__}: {exc}"}
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()

"""The merge parity matrix (issue 13): architectures x adapter variants x base dtypes.

Each cell builds a tiny base and a real PEFT adapter, merges it with lorareg, and measures
two things against PEFT itself:

- every output tensor against PEFT's ``merge_and_unload`` (where PEFT merges into a weight
  the base ties, the side the adapter does not touch is compared with the base instead:
  that is what the unmerged adapter computes);
- the merged model's logits, as transformers loads the folder, against the *unmerged* PEFT
  model's (the outside oracle: it catches what the first cannot).

Cells that do not apply to an architecture are not generated (``cells()``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from tests.factories import make_gpt2, make_llama, make_mistral, make_qwen2, save_base
from tests.merge.conftest import load_output, merge

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "parity-matrix"
IDS = torch.tensor([[1, 5, 9, 33, 70, 127, 0, 64]])
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Arch:
    name: str
    make: Callable[..., Any]
    targets: list[str]  # a few layers of each kind
    embed: str
    attn: str  # an attention projection every variant can target
    layers: str  # PEFT's layers_pattern
    regex: str
    exclude: str
    peft: dict[str, Any] = field(default_factory=dict)  # options every adapter needs


ARCHS = {
    "llama": Arch(
        "llama", make_llama, ["q_proj", "v_proj", "down_proj"], "embed_tokens", "q_proj",
        "layers", r".*\.(q_proj|o_proj|up_proj)", "down_proj",
    ),
    "qwen2": Arch(
        "qwen2", make_qwen2, ["q_proj", "k_proj", "down_proj"], "embed_tokens", "q_proj",
        "layers", r".*\.(q_proj|o_proj|up_proj)", "down_proj",
    ),
    "mistral": Arch(
        "mistral", make_mistral, ["q_proj", "v_proj", "gate_proj"], "embed_tokens", "q_proj",
        "layers", r".*\.(k_proj|o_proj|down_proj)", "up_proj",
    ),
    "gpt2": Arch(
        "gpt2", make_gpt2, ["c_attn", "c_fc"], "wte", "c_attn", "h", r".*\.attn\.c_(attn|proj)",
        "c_fc", peft={"fan_in_fan_out": True},
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Variant:
    name: str
    lora: Callable[[Arch], dict[str, Any]]
    tied: bool = False  # base ties lm_head to the input embedding
    pissa: bool = False
    only: tuple[str, ...] = ()  # architectures it applies to (empty: all)


VARIANTS = [
    Variant("plain", lambda a: {"target_modules": a.targets}),
    Variant("rslora", lambda a: {"target_modules": a.targets, "use_rslora": True, "r": 8}),
    Variant(
        "rank-alpha-patterns",
        lambda a: {
            "target_modules": a.targets,
            "rank_pattern": {a.targets[1]: 2, f"{a.layers}.1.{_path(a, a.targets[0])}": 6},
            "alpha_pattern": {a.targets[-1]: 3},
        },
    ),
    Variant(
        "layers-to-transform",
        lambda a: {"target_modules": a.targets, "layers_to_transform": [1], "layers_pattern": a.layers},
    ),
    Variant("regex-targets", lambda a: {"target_modules": a.regex}),
    Variant(
        "exclude-modules", lambda a: {"target_modules": "all-linear", "exclude_modules": [a.exclude]}
    ),
    Variant("dora", lambda a: {"target_modules": a.targets, "use_dora": True}),
    Variant(
        "embedding-untied", lambda a: {"target_modules": [a.embed, a.attn]}
    ),
    Variant(
        "embedding-tied",
        lambda a: {"target_modules": [a.embed, a.attn]},
        tied=True,
    ),
    Variant("lm-head-untied", lambda a: {"target_modules": [a.attn, "lm_head"]}),
    Variant("lm-head-tied", lambda a: {"target_modules": [a.attn, "lm_head"]}, tied=True),
    Variant("modules-to-save", lambda a: {"target_modules": [a.attn], "modules_to_save": ["lm_head"]}),
    Variant(
        "mixed-conv1d-linear",
        lambda a: {"target_modules": ["c_attn", "c_proj", "lm_head"], "fan_in_fan_out": False},
        tied=True,
        only=("gpt2",),
    ),
    Variant("bias-lora-only", lambda a: {"target_modules": a.targets, "bias": "lora_only"}, only=("qwen2",)),
    Variant("pissa-converted", lambda a: {"target_modules": a.targets[:2]}, pissa=True),
]  # fmt: skip


def _path(arch: Arch, short: str) -> str:
    """The module path inside a block, for rank_pattern keys like ``layers.1.self_attn.q_proj``."""
    paths = {
        "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "c_attn": "attn.c_attn",
    }  # fmt: skip
    return paths[short]


@dataclass(frozen=True)
class Cell:
    arch: Arch
    variant: Variant
    dtype: str

    @property
    def id(self) -> str:
        return f"{self.arch.name}-{self.variant.name}-{self.dtype}"


def cells() -> list[Cell]:
    """Every cell that applies: a variant limited to some architectures is not generated
    for the others."""
    return [
        Cell(arch, variant, dtype)
        for arch in ARCHS.values()
        for variant in VARIANTS
        if not variant.only or arch.name in variant.only
        for dtype in DTYPES
    ]


@dataclass
class Outcome:
    cell: str
    tensors_max_diff: float  # vs PEFT merge_and_unload (tied side: vs the base)
    tensors_max_rel: float  # the same, over each tensor's max |value|
    logits_max_diff: float  # vs the unmerged PEFT model, both run in fp32
    logits_scale: float  # max |logit|, for reading the difference
    tensors_compared: int
    verification_passed: bool


def base_model(cell: Cell) -> Any:
    return cell.arch.make(tie_word_embeddings=cell.variant.tied)


def build_adapter(cell: Cell, folder: Path) -> Path:
    """A real PEFT adapter for the cell, with every factor given values (PEFT zeroes B)."""
    from peft import LoraConfig, get_peft_model

    kw: dict[str, Any] = {"r": 4, "lora_alpha": 8, **cell.arch.peft, **cell.variant.lora(cell.arch)}
    if cell.variant.pissa:
        kw["init_lora_weights"] = "pissa"
    torch.manual_seed(1)
    model = get_peft_model(base_model(cell), LoraConfig(**kw))
    if cell.variant.pissa:
        model.save_pretrained(str(folder.with_name(folder.name + "-init")))
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                if cell.variant.pissa:  # "training": move away from the SVD init
                    param.add_(torch.randn(param.shape, generator=gen) * 0.02)
                elif "lora_B" in name or "lora_embedding" in name or "magnitude" in name:
                    noise = torch.randn(param.shape, generator=gen)
                    param.copy_(param + noise * 0.05 if "magnitude" in name else noise * 0.1)
            elif "base_layer.bias" in name:
                param.add_(torch.randn(param.shape, generator=gen) * 0.1)
    init = str(folder.with_name(folder.name + "-init")) if cell.variant.pissa else None
    model.save_pretrained(str(folder), path_initial_model_for_weight_conversion=init)
    return folder


def run_cell(cell: Cell, root: Path) -> Outcome:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dtype = DTYPES[cell.dtype]
    adapter = build_adapter(cell, root / "adapter")
    base_dir = save_base(base_model(cell).to(dtype), root / "base")
    result = merge(base_dir, [adapter], root / "out")
    ours = load_output(result)

    reference = PeftModel.from_pretrained(base_model(cell).to(dtype), adapter)
    merged_ref = {
        k: v.detach().clone() for k, v in reference.merge_and_unload().state_dict().items()
    }
    base_state = _base_state(base_dir)
    for name in _untouched_tied_side(cell, base_state):
        merged_ref[name] = base_state[name]
    worst = worst_rel = 0.0
    for name, tensor in ours.items():
        assert tensor.dtype == dtype, (cell.id, name, tensor.dtype)
        ref = merged_ref[name].double()
        diff = (ref - tensor.double()).abs().max().item()
        worst = max(worst, diff)
        worst_rel = max(worst_rel, diff / max(ref.abs().max().item(), 1e-30))

    unmerged = PeftModel.from_pretrained(base_model(cell).to(dtype).float(), adapter).eval()
    out_model = AutoModelForCausalLM.from_pretrained(result.out_dir).float().eval()
    with torch.no_grad():
        want = unmerged(IDS).logits
        got = out_model(IDS).logits
    return Outcome(
        cell=cell.id,
        tensors_max_diff=worst,
        tensors_max_rel=worst_rel,
        logits_max_diff=(want - got).abs().max().item(),
        logits_scale=want.abs().max().item(),
        tensors_compared=len(ours),
        verification_passed=result.verification.passed,
    )


def _base_state(base_dir: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for f in sorted(base_dir.glob("*.safetensors")):
        state.update(load_file(f))
    return state


def _untouched_tied_side(cell: Cell, base_state: dict[str, torch.Tensor]) -> list[str]:
    """PEFT merges into a weight the base ties, so both sides move; the unmerged adapter
    moves only the side it targets, and the merged output keeps the other at the base."""
    if not cell.variant.tied:
        return []
    embed = next(n for n in base_state if n.endswith(f"{cell.arch.embed}.weight"))
    targets = cell.variant.lora(cell.arch)["target_modules"]
    if cell.arch.embed in targets:
        base_state["lm_head.weight"] = base_state[embed]
        return ["lm_head.weight"]
    return [embed]


def record(outcome: Outcome) -> None:
    """Write the cell's row and regenerate the table from every row written so far."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # Written aside and renamed: a parallel worker reading every row must never see a
    # half-written one (an empty file failed a cell whose parity had passed).
    row = ARTIFACTS / f"{outcome.cell}.json"
    part = row.with_name(f".{row.name}.{os.getpid()}.part")
    part.write_text(json.dumps(outcome.__dict__))
    os.replace(part, row)
    rows = [json.loads(p.read_text()) for p in sorted(ARTIFACTS.glob("*.json"))]
    lines = [
        "# Merge parity matrix",
        "",
        "Max |difference| per cell: every output tensor against PEFT `merge_and_unload`"
        " (tied bases: the untargeted side against the base), and logits of the merged folder"
        " (loaded by transformers) against the unmerged PEFT model, both run in fp32.",
        "",
        "| cell | tensors vs merge_and_unload | logits vs unmerged PEFT | max logit | tensors |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['cell']} | {r['tensors_max_diff']:.3g} | {r['logits_max_diff']:.3g}"
        f" | {r['logits_scale']:.3g} | {r['tensors_compared']} |"
        for r in rows
    ]
    tmp = ARTIFACTS.parent / f".parity-matrix.md.{os.getpid()}"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, ARTIFACTS.parent / "parity-matrix.md")

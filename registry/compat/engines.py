"""Serving-engine profiles: what vLLM, SGLang, LoRAX and PEFT accept, and how to start them.

Each profile reads the adapter (config, tensors, and the base when there is one) and
returns engine findings (code ``engine.*``, ``engine`` set) and the settings the engine
needs. The rules were read from each engine's own code and docs; the docstrings cite them.
An engine that does not implement a PEFT option either refuses the adapter or silently
drops part of it; both are failures here, because both serve something other than what
was trained.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from registry.compat.adapter_layout import layer_template
from registry.compat.architectures import is_head_module
from registry.compat.engine_support import vllm_support
from registry.compat.findings import Finding, Severity
from registry.compat.rules import CheckContext
from registry.compat.rules_schema import init_name
from registry.errors import UnknownEngine


@dataclass
class Assessment:
    findings: list[Finding] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    start: str = ""  # how to start the engine when it can serve the adapter


def max_rank(ctx: CheckContext) -> int:
    """The largest rank any module uses: r, rank_pattern values, and the tensors' own."""
    return max([ctx.config.r, *ctx.config.rank_pattern.values(), ctx.layout.max_rank()])


def target_names(ctx: CheckContext) -> list[str]:
    """The adapted modules' short names (``q_proj``), sorted."""
    return sorted({p.short_name for p in ctx.layout.pairs.values()})


def options_used(ctx: CheckContext) -> Iterator[tuple[str, str]]:
    """(code suffix, what) for each PEFT option beyond plain LoRA the adapter uses."""
    cfg, extra = ctx.config, ctx.config.model_extra or {}
    if cfg.use_dora:
        yield "dora", "DoRA (use_dora)"
    if cfg.modules_to_save:
        yield "modules_to_save", f"modules_to_save {cfg.modules_to_save}"
    if cfg.bias != "none":
        yield "bias", f"bias={cfg.bias!r}"
    if extra.get("lora_bias"):
        yield "lora_bias", "lora_bias"
    if name := init_name(ctx):
        yield "init", f"init_lora_weights={name!r} (base-modifying init)"
    if extra.get("layer_replication"):
        yield "layer_replication", "layer_replication"
    if extra.get("trainable_token_indices"):
        yield "trainable_tokens", "trainable_token_indices"


class EngineProfile:
    """One engine: ``assess`` returns its findings, settings and how to start it."""

    name: ClassVar[str]
    display_name: ClassVar[str]

    def assess(self, ctx: CheckContext) -> Assessment:
        raise NotImplementedError

    def fail(
        self, code: str, message: str, hint: str = "", severity: Severity = Severity.FAIL
    ) -> Finding:
        """An ``engine.<code>`` finding, its message prefixed with the engine's name."""
        return Finding(
            code=f"engine.{code}",
            severity=severity,
            message=f"{self.display_name}: {message}",
            hint=hint,
            engine=self.name,
        )


class VllmProfile(EngineProfile):
    """vLLM (``vllm serve --enable-lora``).

    Sources (vllm-project/vllm):
    - ``vllm/config/lora.py``: ``MaxLoRARanks = Literal[1, 8, 16, 32, 64, 128, 256, 320,
      512]``, ``max_lora_rank`` default 16 (``--max-lora-rank``);
    - ``vllm/lora/peft_helper.py`` ``PEFTHelper._validate_features`` / ``validate_legal``:
      refuses DoRA, ``modules_to_save`` other than ``classifier``/``score``, ``bias`` other
      than ``none``, ``lora_bias``, base-modifying ``init_lora_weights`` (PiSSA, OLoRA,
      CorDA, LoftQ), ``layer_replication``, and a rank (max of ``r`` and ``rank_pattern``)
      above ``max_lora_rank``;
    - ``vllm/lora/lora_model.py`` ``from_lora_tensors``: DoRA weights are not loaded, and an
      embedding LoRA must cover exactly the base vocabulary;
    - per architecture, whether the model class supports LoRA at all and on which modules
      (``packed_modules_mapping``, ``embedding_modules``, ``SupportsLoRA``): the data file
      ``vllm_lora.json``, with the vLLM version it was read from.
    Trainable-token deltas are not read by the mainline loader.
    """

    name = "vllm"
    display_name = "vLLM"
    RANKS: ClassVar[tuple[int, ...]] = (1, 8, 16, 32, 64, 128, 256, 320, 512)
    DEFAULT_RANK: ClassVar[int] = 16
    SAVE_OK: ClassVar[frozenset[str]] = frozenset({"classifier", "score"})

    def assess(self, ctx: CheckContext) -> Assessment:
        out = Assessment(settings={"--enable-lora": None})
        for code, what in options_used(ctx):
            if code == "modules_to_save" and set(ctx.config.modules_to_save or []) <= self.SAVE_OK:
                continue
            out.findings.append(
                self.fail(
                    code,
                    f"refuses adapters with {what}",
                    "serve it with PEFT, or retrain without it",
                )
            )
        out.findings += self._architecture(ctx)
        rank = max_rank(ctx)
        fitting = [r for r in self.RANKS if r >= rank]
        if not fitting:
            out.findings.append(
                self.fail(
                    "rank",
                    f"rank {rank} is above the largest --max-lora-rank ({self.RANKS[-1]})",
                    f"retrain with r <= {self.RANKS[-1]}",
                )
            )
        elif fitting[0] > self.DEFAULT_RANK:
            out.settings["--max-lora-rank"] = fitting[0]
        flags = " ".join(f"{k} {v}" if v is not None else k for k, v in out.settings.items())
        default = (
            "" if "--max-lora-rank" in out.settings else " (the default --max-lora-rank 16 fits)"
        )
        out.start = f"start with {flags}{default}"
        return out

    def _architecture(self, ctx: CheckContext) -> list[Finding]:
        data = vllm_support()
        support = data.of(ctx.base.architecture if ctx.base else None)
        if support is None:
            return []
        if not support.lora:
            return [
                self.fail(
                    "architecture",
                    f"has no LoRA support for {support.architecture} (vLLM {data.version}: the"
                    " model class does not implement SupportsLoRA)",
                    "merge the adapter into the base (`lorareg merge`) and serve the merged"
                    " model, or serve it with PEFT",
                )
            ]
        refused = [n for n in target_names(ctx) if n not in support.modules]
        if not refused:
            return []
        return [
            self.fail(
                "target_modules",
                f"refuses LoRA on {', '.join(refused)} for {support.architecture} (vLLM"
                f" {data.version} accepts {', '.join(sorted(support.modules))})",
                "merge the adapter (`lorareg merge`), or retrain without those modules",
            )
        ]


class SglangProfile(EngineProfile):
    """SGLang (``python -m sglang.launch_server --enable-lora``).

    Sources (sgl-project/sglang):
    - docs ``advanced_features/lora.md``: ``--max-lora-rank`` and ``--lora-target-modules``
      are inferred from the adapters in ``--lora-paths`` and must be given when adapters
      are loaded after start-up; ``--lora-target-modules all`` enables every supported
      module;
    - ``python/sglang/srt/lora/lora_manager.py`` ``validate_new_adapter``: refuses DoRA and
      adapters that add tokens, and adapters whose rank or target modules the memory pool
      (``--max-lora-rank``, ``--lora-target-modules``) does not cover;
    - ``python/sglang/srt/lora/lora_config.py``: reads only ``r``, ``lora_alpha``,
      ``target_modules``, ``rank_pattern``/``alpha_pattern`` and ``use_dora``, so every other
      option is not applied;
    - ``SUPPORTED_LORA_TARGET_MODULES`` (``python/sglang/srt/utils``): the module names below.
    """

    name = "sglang"
    display_name = "SGLang"
    TARGETS: ClassVar[frozenset[str]] = frozenset(
        {"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "gate_proj", "up_proj",
         "down_proj", "gate_up_proj", "embed_tokens", "lm_head", "q_a_proj", "q_b_proj",
         "kv_a_proj_with_mqa", "kv_b_proj"}
    )  # fmt: skip

    def assess(self, ctx: CheckContext) -> Assessment:
        out = Assessment()
        for code, what in options_used(ctx):
            verb = "refuses DoRA adapters" if code == "dora" else f"does not apply {what}"
            out.findings.append(self.fail(code, verb, "serve it with PEFT, or retrain without it"))
        names = target_names(ctx)
        unsupported = [n for n in names if n not in self.TARGETS]
        if unsupported:
            out.findings.append(
                self.fail(
                    "target_modules",
                    f"cannot apply LoRA to {', '.join(unsupported)}",
                    f"supported modules: {', '.join(sorted(self.TARGETS))}",
                )
            )
        out.settings = {
            "--enable-lora": None,
            "--max-lora-rank": max_rank(ctx),
            "--lora-target-modules": " ".join(names),
        }
        flags = " ".join(f"{k} {v}" if v is not None else k for k, v in out.settings.items())
        out.start = f"start with {flags} (inferred when the adapter is in --lora-paths)"
        return out


class LoraxProfile(EngineProfile):
    """LoRAX (adapters loaded per request with ``adapter_id``).

    Sources (predibase/lorax):
    - docs ``models/adapters/lora.md``: supported target modules per architecture (table
      below); modules outside it are ignored with a warning;
    - ``server/lorax_server/adapters/lora.py`` ``LoraConfig``: reads only ``r``,
      ``target_modules``, ``fan_in_fan_out``, ``lora_alpha`` and ``use_rslora``; scales every
      module by ``lora_alpha / r`` (so rank/alpha patterns are lost); maps only
      ``lora_A.weight``/``lora_B.weight`` keys (no embedding LoRA, DoRA or biases); drops a
      layer type entirely when any layer lacks it (``if weight_name not in module_map:
      return None``);
    - ``server/lorax_server/utils/sgmv.py``: ranks are padded to the SGMV block size and
      ranks above ``BGMV_MAX_RANK = 128`` take the slower SGMV path when decoding.
    """

    name = "lorax"
    display_name = "LoRAX"
    _LLAMA = frozenset(
        {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"}
    )
    TARGETS: ClassVar[dict[str, frozenset[str]]] = {
        "llama": _LLAMA, "mistral": _LLAMA, "qwen2": _LLAMA, "cohere": _LLAMA,
        "mixtral": frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "lm_head"}),
        "gemma": _LLAMA - {"lm_head"},
        "phi3": frozenset({"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head"}),
        "phi": frozenset({"q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2", "lm_head"}),
        "qwen": frozenset({"c_attn", "c_proj", "w1", "w2", "lm_head"}),
        "dbrx": frozenset({"Wqkv", "out_proj", "lm_head"}),
        "gpt2": frozenset({"c_attn", "c_proj", "c_fc"}),
        "bloom": frozenset(
            {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h", "lm_head"}
        ),
    }  # fmt: skip
    FAST_RANK: ClassVar[int] = 128

    def assess(self, ctx: CheckContext) -> Assessment:
        out = Assessment(start="load it per request with adapter_id (no server flags)")
        for code, what in options_used(ctx):
            out.findings.append(self.fail(code, f"ignores {what}", "serve it with PEFT"))
        if ctx.config.rank_pattern or ctx.config.alpha_pattern:
            out.findings.append(
                self.fail(
                    "rank_pattern",
                    "scales every module by lora_alpha / r, ignoring rank_pattern / alpha_pattern",
                    "retrain with one r and lora_alpha",
                )
            )
        if any(p.embedding for p in ctx.layout.pairs.values()):
            out.findings.append(
                self.fail(
                    "embedding",
                    "does not load embedding LoRA (lora_embedding_A/B)",
                    "retrain without embed_tokens in target_modules",
                )
            )
        model_type = ctx.base.architecture.get("model_type") if ctx.base else None
        supported = self.TARGETS.get(str(model_type)) if model_type else None
        names = [n for n in target_names(ctx) if n != "embed_tokens"]
        if supported is not None and (dropped := [n for n in names if n not in supported]):
            out.findings.append(
                self.fail(
                    "target_modules",
                    f"ignores LoRA on {', '.join(dropped)} for {model_type}",
                    f"supported: {', '.join(sorted(supported))}",
                )
            )
        out.findings += self._partial_layers(ctx)
        if max_rank(ctx) > self.FAST_RANK:
            slow = f"ranks above {self.FAST_RANK} decode on the slower SGMV kernels"
            out.findings.append(self.fail("rank", slow, severity=Severity.INFO))
        return out

    def _partial_layers(self, ctx: CheckContext) -> list[Finding]:
        if ctx.base is None:
            return []
        layers: dict[str, set[tuple[int, ...]]] = {}
        for name in ctx.base.tensors:
            tmpl, idx = layer_template(name.removesuffix(".weight"))
            layers.setdefault(tmpl, set()).add(idx)
        adapted: dict[str, set[tuple[int, ...]]] = {}
        for module in ctx.layout.pairs:
            tmpl, idx = layer_template(module)
            adapted.setdefault(tmpl, set()).add(idx)
        partial = sorted(
            t.rsplit(".", 1)[-1]
            for t, got in adapted.items()
            if "#" in t and layers.get(t) and got < layers[t]
        )
        if not partial:
            return []
        return [
            self.fail(
                "partial_layers",
                f"drops LoRA on {', '.join(partial)} entirely,"
                " because the adapter covers only some layers",
                "serve it with PEFT",
            )
        ]


class PeftProfile(EngineProfile):
    """PEFT (``PeftModel.from_pretrained``): the reference implementation; it loads every
    option it can save (huggingface/peft ``src/peft/tuners/lora``). It loads tensors by
    their exact names (``set_peft_model_state_dict``, ``strict=False``): a module saved
    under another model prefix is silently left out. ``tests/compat/test_peft_oracle.py``
    holds this profile against PEFT itself on the whole corpus."""

    name = "peft"
    display_name = "PEFT"

    def assess(self, ctx: CheckContext) -> Assessment:
        out = Assessment(start="load it with PeftModel.from_pretrained(base_model, adapter_dir)")
        if ctx.base is None:
            return out
        renamed = {
            m: target
            for m, target in ctx.resolution.prefix_mapped.items()
            if not is_head_module(m)  # a tied head: PEFT wraps lm_head itself
        }
        if renamed:
            module, target = sorted(renamed.items())[0]
            out.findings.append(
                self.fail(
                    "prefix",
                    f"loads adapter tensors by their exact names, so it would leave out"
                    f" {len(renamed)} modules saved under another model prefix (e.g. {module},"
                    f" which is {target} in this base)",
                    "load the adapter on the model class it was trained on, or rename its"
                    " tensors to this base's module names",
                )
            )
        return out


ENGINES: dict[str, EngineProfile] = {
    p.name: p for p in (VllmProfile(), SglangProfile(), LoraxProfile(), PeftProfile())
}


def get_engine(name: str) -> EngineProfile:
    """The profile for ``name`` (case-insensitive); UnknownEngine lists the known ones."""
    profile = ENGINES.get(name.strip().lower())
    if profile is None:
        raise UnknownEngine(
            f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}",
            details={"known": list(ENGINES)},
        )
    return profile

"""Schema rules: adapter_config.json on its own, and the options that limit engines.

The option rules (DoRA, modules_to_save, bias, ...) report ``info``: the option is legal,
and the engine profiles decide who can serve it. Base-modifying inits warn, because the
adapter is only right on the base those inits produce.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from registry.compat.findings import Finding, Severity
from registry.compat.rules import CheckContext, rule

# PEFT inits that rewrite the base weights when the adapter is created (and again when
# PEFT loads it); a plain LoRA loader applies the adapter to the untouched base.
BASE_MODIFYING_INITS = ("pissa", "olora", "corda", "loftq")
BIAS_VALUES = ("none", "all", "lora_only")


def init_name(ctx: CheckContext) -> str | None:
    """The base-modifying init the adapter declares (``pissa_niter_4`` -> ``pissa``)."""
    init = (ctx.config.model_extra or {}).get("init_lora_weights")
    if isinstance(init, str):
        for name in BASE_MODIFYING_INITS:
            if init.lower().startswith(name):
                return name
    return None


@rule("schema.peft_type", "peft_type is LORA")
def peft_type(ctx: CheckContext) -> Iterator[Finding]:
    if ctx.config.peft_type.upper() != "LORA":
        yield ctx.finding(
            "schema.peft_type",
            Severity.FAIL,
            f"peft_type is {ctx.config.peft_type!r}; these checks and the serving engines"
            " handle LoRA adapters only",
            "train the adapter with peft.LoraConfig",
        )


@rule("schema.fields", "config fields present and typed")
def fields(ctx: CheckContext) -> Iterator[Finding]:
    cfg, extra = ctx.config, ctx.config.model_extra or {}
    problems: list[str] = []
    if cfg.bias not in BIAS_VALUES:
        problems.append(f"bias is {cfg.bias!r}, expected one of {', '.join(BIAS_VALUES)}")
    for key, value in cfg.rank_pattern.items():
        if not _is_int(value) or value <= 0:
            problems.append(f"rank_pattern[{key!r}] is {value!r}, expected a positive integer")
    for key, alpha in cfg.alpha_pattern.items():
        if not _is_number(alpha):
            problems.append(f"alpha_pattern[{key!r}] is {alpha!r}, expected a number")
    init = extra.get("init_lora_weights", True)
    if not isinstance(init, bool | str):
        problems.append(f"init_lora_weights is {init!r}, expected true/false or a method name")
    replication = extra.get("layer_replication")
    if replication is not None and not (
        isinstance(replication, list)
        and all(isinstance(r, list) and len(r) == 2 and all(map(_is_int, r)) for r in replication)
    ):
        problems.append(f"layer_replication is {replication!r}, expected [[start, end], ...]")
    if not cfg.target_list() and not cfg.modules_to_save:
        problems.append("target_modules is empty, so the adapter adapts nothing")
    for problem in problems:
        yield ctx.finding(
            "schema.fields", Severity.FAIL, problem, "fix adapter_config.json and push again"
        )
    if cfg.lora_alpha <= 0:
        yield ctx.finding(
            "schema.fields",
            Severity.WARN,
            f"lora_alpha is {cfg.lora_alpha}, so the adapter's scale is zero or negative",
            "set lora_alpha to the value used in training",
        )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _option(code: str, title: str, used: Any, what: str) -> None:
    """Register an info rule that flags one engine-limiting option when it is used."""

    @rule(code, title)
    def check(ctx: CheckContext) -> Iterator[Finding]:
        if used(ctx):
            yield ctx.finding(
                code,
                Severity.INFO,
                f"{what}; only some engines serve this (see the engine verdicts)",
            )


_option("schema.dora", "DoRA", lambda c: c.config.use_dora, "uses DoRA (use_dora)")
_option(
    "schema.modules_to_save",
    "modules_to_save",
    lambda c: bool(c.config.modules_to_save),
    "saves full copies of modules (modules_to_save)",
)


@rule("schema.bias", "bias")
def bias(ctx: CheckContext) -> Iterator[Finding]:
    if ctx.config.bias == "none":
        return
    saved = len(ctx.layout.extras_of("bias"))
    yield ctx.finding(
        "schema.bias",
        Severity.INFO,
        f"trains the base layers' biases (bias={ctx.config.bias!r}, {saved} bias tensors):"
        " PEFT loads them and `lorareg merge` writes them into the merged model; vLLM refuses"
        " the adapter, SGLang and LoRAX serve it without them (see the engine verdicts)",
    )


_option(
    "schema.lora_bias",
    "lora_bias",
    lambda c: bool((c.config.model_extra or {}).get("lora_bias")),
    "adds a bias to lora_B (lora_bias)",
)
_option(
    "schema.layer_replication",
    "layer_replication",
    lambda c: bool((c.config.model_extra or {}).get("layer_replication")),
    "replicates base layers (layer_replication)",
)
_option(
    "schema.trainable_tokens",
    "trainable_token_indices",
    lambda c: bool((c.config.model_extra or {}).get("trainable_token_indices")),
    "trains selected token embeddings (trainable_token_indices)",
)


@rule("schema.init", "no base-modifying init")
def base_modifying_init(ctx: CheckContext) -> Iterator[Finding]:
    name = init_name(ctx)
    if name:
        yield ctx.finding(
            "schema.init",
            Severity.WARN,
            f"init_lora_weights is {name}: the adapter is only correct on the base weights"
            f" {name} rewrote during training",
            "convert it to a plain LoRA with PEFT's path_initial_model_for_weight_conversion"
            " when saving, then push the converted adapter",
        )

"""Config-against-tensors rules: pairs, ranks, orphans, declared targets. Headers only."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.adapter_layout import strip_prefix
from registry.compat.findings import Finding, Severity
from registry.compat.rules import CheckContext, rule
from registry.formats.patterns import fullmatch

RESAVE = "re-save the adapter with PEFT's save_pretrained"


@rule("tensors.empty", "the adapter holds LoRA tensors")
def empty(ctx: CheckContext) -> Iterator[Finding]:
    if not ctx.layout.pairs:
        yield ctx.finding(
            "tensors.empty",
            Severity.FAIL,
            "adapter_model.safetensors holds no lora_A / lora_B tensors",
            RESAVE,
        )


@rule("tensors.unpaired", "every lora_A has its lora_B")
def unpaired(ctx: CheckContext) -> Iterator[Finding]:
    for name, pair in sorted(ctx.layout.pairs.items()):
        if pair.a is None or pair.b is None:
            missing = "lora_A" if pair.a is None else "lora_B"
            yield ctx.finding(
                "tensors.unpaired",
                Severity.FAIL,
                f"has no {missing}; a LoRA module needs both matrices",
                RESAVE,
                module=name,
            )


@rule("tensors.rank", "lora_A rows = lora_B columns = the effective rank")
def rank(ctx: CheckContext) -> Iterator[Finding]:
    for name, pair in sorted(ctx.layout.pairs.items()):
        if pair.a is None or pair.b is None:
            continue
        a, b = pair.a.shape, pair.b.shape
        if len(a) != 2 or len(b) != 2:
            yield ctx.finding(
                "tensors.rank",
                Severity.FAIL,
                f"lora_A is {list(a)} and lora_B is {list(b)}; both must be 2-D",
                RESAVE,
                module=name,
            )
            continue
        expected = ctx.rank_for(name)
        if a[0] != expected or b[1] != expected:
            yield ctx.finding(
                "tensors.rank",
                Severity.FAIL,
                f"lora_A is {list(a)} and lora_B is {list(b)}, but the config's rank for this"
                f" module is {expected} (lora_A is r x in, lora_B is out x r)",
                "make r / rank_pattern in adapter_config.json match the weights",
                module=name,
            )


@rule("tensors.orphan", "no tensor the config does not explain")
def orphan(ctx: CheckContext) -> Iterator[Finding]:
    for extra in ctx.layout.extras_of("orphan"):
        yield ctx.finding(
            "tensors.orphan",
            Severity.FAIL,
            f"tensor {extra.tensor.name!r} is neither a LoRA matrix nor something the"
            " config's options save; engines refuse or silently drop it",
            "remove it, or set the option that produces it in adapter_config.json",
            module=extra.module,
        )


def excluded(ctx: CheckContext, name: str) -> bool:
    """Whether PEFT's ``exclude_modules`` leaves out a module called ``name``: a list entry
    equal to it or to its last dotted parts, or a regex matching all of it
    (``peft.tuners.tuners_utils.check_target_module_exists``)."""
    exclude = (ctx.config.model_extra or {}).get("exclude_modules")
    if isinstance(exclude, str):
        return fullmatch(exclude, name)
    if isinstance(exclude, list):
        return any(
            isinstance(key, str) and (name == key or name.endswith("." + key)) for key in exclude
        )
    return False


@rule("tensors.target_missing", "every declared target module has tensors")
def target_missing(ctx: CheckContext) -> Iterator[Finding]:
    targets = ctx.config.target_modules
    modules = [strip_prefix(m) for m in ctx.layout.pairs]
    if not modules or targets is None:
        return
    if isinstance(targets, str):
        # A string is a regex PEFT matches against whole module names; "all-linear" is
        # expanded by PEFT when the adapter is created.
        if targets == "all-linear" or any(fullmatch(targets, m) for m in modules):
            return
        yield ctx.finding(
            "tensors.target_missing",
            Severity.WARN,
            f"target_modules regex {targets!r} matches none of the adapted modules",
            "make target_modules describe the modules the adapter was trained on",
        )
        return
    for target in targets:
        if excluded(ctx, target):
            continue  # PEFT expands all-linear, then leaves out what exclude_modules names
        if not any(m == target or m.endswith("." + target) for m in modules):
            yield ctx.finding(
                "tensors.target_missing",
                Severity.WARN,
                f"target module {target!r} is declared but no tensor adapts it (PEFT skips"
                " targets the model lacks); the adapter changes fewer layers than its config"
                " says",
                f"drop {target!r} from target_modules, or check the adapter was trained on"
                " this architecture",
            )

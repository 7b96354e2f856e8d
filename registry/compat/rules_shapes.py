"""Shape rules: every adapted module against the base layer it resolves to.

Linear layers store their weight as (out, in); GPT-2's Conv1D stores (in, out), which
PEFT marks with fan_in_fan_out. lora_A is always (r, in) and lora_B (out, r), whatever the
base layer, so only the base side is transposed. Embedding LoRA stores A as (r, vocab)
and B as (dim, r) against a base weight of (vocab, dim).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from registry.compat.architectures import module_kind
from registry.compat.findings import Finding, Severity
from registry.compat.rules import CheckContext, rule

OTHER_SIZE = (
    "the adapter was trained on another model size; check it against the base it was"
    " trained on, or retrain it on this base"
)


@dataclass(frozen=True)
class Fit:
    """One resolved LoRA pair next to the base layer it adapts."""

    module: str
    a_in: int
    b_out: int
    weight: tuple[int, ...]
    embedding: bool
    in_features: int  # vocab size for an embedding
    out_features: int  # embedding_dim for an embedding
    fan_only: bool  # fits only transposed, and the config says fan_in_fan_out=false


def fits(ctx: CheckContext) -> Iterator[Fit]:
    """Every resolved 2-D pair with the dimensions its base layer expects."""
    assert ctx.base is not None
    fan = ctx.config.fan_in_fan_out
    for module, base_name in sorted(ctx.resolution.found.items()):
        pair = ctx.layout.pairs[module]
        w = ctx.base.tensors[base_name][1]
        if pair.a is None or pair.b is None or len(w) != 2:
            continue
        if len(pair.a.shape) != 2 or len(pair.b.shape) != 2:
            continue
        got = (pair.a.shape[1], pair.b.shape[0])
        if pair.embedding:
            yield Fit(module, *got, w, True, w[0], w[1], False)
            continue
        # PEFT sets fan_in_fan_out per layer from its type (Conv1D: in x out, Linear: out x
        # in) whatever the config says; only a base of unknown type leaves it to the config.
        kind = module_kind(ctx.base.architecture, module)
        if kind is not None:
            dims = (w[0], w[1]) if kind == "conv1d" else (w[1], w[0])
            yield Fit(module, *got, w, False, dims[0], dims[1], False)
            continue
        primary = (w[0], w[1]) if fan else (w[1], w[0])
        swapped = (primary[1], primary[0])
        fan_only = False
        dims = primary
        if got != primary and got == swapped:
            dims, fan_only = swapped, not fan
        yield Fit(module, *got, w, False, dims[0], dims[1], fan_only)


@rule("shapes.in_features", "lora_A columns = the base layer's in_features", needs={"base"})
def in_features(ctx: CheckContext) -> Iterator[Finding]:
    for f in fits(ctx):
        if not f.embedding and f.a_in != f.in_features:
            yield ctx.finding(
                "shapes.in_features",
                Severity.FAIL,
                f"lora_A takes {f.a_in} inputs but the base layer has in_features="
                f"{f.in_features} (base weight {list(f.weight)})",
                OTHER_SIZE,
                module=f.module,
            )


@rule("shapes.out_features", "lora_B rows = the base layer's out_features", needs={"base"})
def out_features(ctx: CheckContext) -> Iterator[Finding]:
    for f in fits(ctx):
        if f.b_out != f.out_features:
            what = "embedding_dim" if f.embedding else "out_features"
            yield ctx.finding(
                "shapes.out_features",
                Severity.FAIL,
                f"lora_B produces {f.b_out} outputs but the base layer has {what}="
                f"{f.out_features} (base weight {list(f.weight)})",
                OTHER_SIZE,
                module=f.module,
            )


@rule("shapes.fan_in_fan_out", "fan_in_fan_out matches the base layers", needs={"base"})
def fan_in_fan_out(ctx: CheckContext) -> Iterator[Finding]:
    for f in fits(ctx):
        if f.fan_only:
            yield ctx.finding(
                "shapes.fan_in_fan_out",
                Severity.WARN,
                f"the base stores this layer as {list(f.weight)} (in x out, like GPT-2's"
                " Conv1D) but the config has fan_in_fan_out=false; PEFT corrects this when"
                " it loads, other tools may not",
                "set fan_in_fan_out to true in adapter_config.json",
                module=f.module,
            )


@rule("shapes.embedding_vocab", "embedding LoRA covers the base vocabulary", needs={"base"})
def embedding_vocab(ctx: CheckContext) -> Iterator[Finding]:
    assert ctx.base is not None
    hint = (
        "the adapter was trained with a resized vocabulary; serve it on a base with the"
        " same tokenizer, or retrain without resizing"
    )
    for f in fits(ctx):
        if f.embedding and f.a_in != f.in_features:
            yield ctx.finding(
                "shapes.embedding_vocab",
                Severity.FAIL,
                f"the embedding LoRA covers {f.a_in} tokens but the base vocabulary has"
                f" {f.in_features}",
                hint,
                module=f.module,
            )
    # PEFT saves the (possibly resized) embedding next to an embedding LoRA.
    for extra in ctx.layout.extras_of("embedding_copy"):
        base_name = ctx.resolution.found.get(extra.module)
        want = ctx.base.tensors[base_name][1] if base_name else None
        if want is not None and extra.tensor.shape != want:
            yield ctx.finding(
                "shapes.embedding_vocab",
                Severity.FAIL,
                f"the saved embedding weight is {list(extra.tensor.shape)} but the base's is"
                f" {list(want)}",
                hint,
                module=extra.module,
            )


@rule("shapes.extras", "DoRA, bias and saved-module tensors fit the base", needs={"base"})
def extras(ctx: CheckContext) -> Iterator[Finding]:
    assert ctx.base is not None
    out_of = {f.module: f.out_features for f in fits(ctx)}
    for extra in ctx.layout.extras:
        shape = extra.tensor.shape
        want: tuple[int, ...] | None = None
        if extra.kind in ("dora_magnitude", "lora_bias") and extra.module in out_of:
            want = (out_of[extra.module],)
        elif extra.kind in ("modules_to_save", "bias"):
            key = extra.tensor.name.rsplit(".", 1)[-1]
            base_name = f"{extra.module}.{key}"
            if base_name not in ctx.base.tensors:
                yield ctx.finding(
                    "shapes.extras",
                    Severity.FAIL,
                    f"saves {key!r} for a module the base does not have ({base_name})",
                    OTHER_SIZE,
                    module=extra.module,
                )
                continue
            want = ctx.base.tensors[base_name][1]
        if want is not None and shape != want:
            yield ctx.finding(
                "shapes.extras",
                Severity.FAIL,
                f"{extra.kind} tensor is {list(shape)} but the base layer needs {list(want)}",
                OTHER_SIZE,
                module=extra.module,
            )

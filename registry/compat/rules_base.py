"""Rules against the base model: identity (fingerprints), names and layer indices."""

from __future__ import annotations

from collections.abc import Iterator

from registry.compat.architectures import (
    embedding_weight,
    is_embedding_module,
    is_head_module,
    ties_embeddings,
)
from registry.compat.findings import Finding, Severity
from registry.compat.rules import CheckContext, rule

OTHER_BASE = "check it against the base it was trained on, or retrain it on this base"


@rule(
    "base.structure_mismatch",
    "trained on a base with this structure",
    needs={"base", "fingerprint"},
)
def structure_mismatch(ctx: CheckContext) -> Iterator[Finding]:
    assert ctx.base is not None and ctx.trained_on is not None
    if ctx.trained_on.structure_hash != ctx.base.structure_hash:
        yield ctx.finding(
            "base.structure_mismatch",
            Severity.FAIL,
            "the adapter was trained on a base with a different structure (tensor names,"
            f" dtypes or shapes: {ctx.trained_on.structure_hash[:12]} vs"
            f" {ctx.base.structure_hash[:12]})",
            OTHER_BASE,
        )


@rule(
    "base.content_mismatch", "trained on exactly these base weights", needs={"base", "fingerprint"}
)
def content_mismatch(ctx: CheckContext) -> Iterator[Finding]:
    assert ctx.base is not None and ctx.trained_on is not None
    if ctx.trained_on.structure_hash != ctx.base.structure_hash:
        return  # base.structure_mismatch says it
    theirs, ours = ctx.trained_on.content_hash, ctx.base.content_hash
    if theirs is None or ours is None:
        yield ctx.finding(
            "base.content_mismatch",
            Severity.INFO,
            "same structure; the weights' sha256s are unknown on one side, so identity"
            " cannot be confirmed",
            "register the base with sha256s (compute_sha256) to compare contents",
        )
    elif theirs != ours:
        yield ctx.finding(
            "base.content_mismatch",
            Severity.WARN,
            "same structure but different weights: this base is another checkpoint of the"
            " architecture the adapter was trained on (e.g. another fine-tune)",
            "expect different outputs; evaluate the adapter on this base before serving",
        )


@rule("names.no_match", "the adapter matches the base", needs={"base"})
def no_match(ctx: CheckContext) -> Iterator[Finding]:
    if ctx.layout.pairs and not ctx.resolution.found:
        some = sorted(ctx.layout.pairs)[0]
        yield ctx.finding(
            "names.no_match",
            Severity.FAIL,
            f"none of the {len(ctx.layout.pairs)} adapted modules exists in the base (e.g."
            f" {some}.weight); a server would silently answer with the plain base model",
            "the adapter belongs to another architecture: " + OTHER_BASE,
        )


@rule("names.unmatched", "every adapted module resolves to a base parameter", needs={"base"})
def unmatched(ctx: CheckContext) -> Iterator[Finding]:
    if not ctx.resolution.found:
        return  # names.no_match says it once
    for module in ctx.resolution.missing:
        yield ctx.finding(
            "names.unmatched",
            Severity.FAIL,
            f"the base has no parameter {module}.weight",
            OTHER_BASE,
            module=module,
        )


@rule("names.layer_out_of_range", "layer indices exist in the base", needs={"base"})
def layer_out_of_range(ctx: CheckContext) -> Iterator[Finding]:
    for module, (index, highest) in sorted(ctx.resolution.out_of_range.items()):
        yield ctx.finding(
            "names.layer_out_of_range",
            Severity.FAIL,
            f"layer index {index} is out of range: the base has indices 0..{highest}",
            "the adapter was trained on a deeper model: " + OTHER_BASE,
            module=module,
        )


@rule("names.prefix", "module names match without remapping", needs={"base"})
def prefix(ctx: CheckContext) -> Iterator[Finding]:
    mapped = ctx.resolution.prefix_mapped
    if mapped:
        module, target = sorted(mapped.items())[0]
        yield ctx.finding(
            "names.prefix",
            Severity.INFO,
            f"{len(mapped)} module names resolve only under another prefix (e.g. {module} ->"
            f" {target}); lorareg merge remaps them, PEFT does not (see its engine verdict)",
        )


@rule("base.tied_embedding", "no LoRA on a weight the base ties", needs={"base"})
def tied_embedding(ctx: CheckContext) -> Iterator[Finding]:
    assert ctx.base is not None
    if not ties_embeddings(ctx.base.architecture, ctx.base.tensors):
        return
    shared = embedding_weight(ctx.base.tensors)
    for module in sorted(ctx.layout.pairs):
        if is_embedding_module(module):
            applies = "to the input embedding only"
        elif is_head_module(module):
            applies = "to the output head only"
        else:
            continue
        yield ctx.finding(
            "base.tied_embedding",
            Severity.WARN,
            f"the base ties lm_head to the input embedding ({shared}); PEFT and vLLM apply"
            f" this LoRA {applies}, but a merge into the shared weight (PEFT's"
            " merge_and_unload) changes both, so the merged model answers differently",
            "merge it with `lorareg merge`, which writes lm_head apart and sets"
            " tie_word_embeddings=false, or serve it unmerged",
            module=module,
        )

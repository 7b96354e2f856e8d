"""The adapter library: compose, interference, analyze, compress."""

from __future__ import annotations

from typing import Any

import click

from cli.app import Context, cli, handle_errors, json_option, parse_pairs, pass_ctx
from cli.commands.merge import _floats
from cli.job_wait import exit_unless_succeeded, follow_job, wait_options
from cli.output import emit_json, human_size, table


def _modules_table(doc: dict[str, Any], limit: int = 12) -> None:
    rows = sorted(doc["modules"], key=lambda m: -m["relative_error"])
    table(
        ["MODULE", "RANK", "REL. ERROR"],
        [
            (
                m["module"],
                f"{m['rank_before']} -> {m['rank']}" if m.get("rank_before") else m["rank"],
                f"{m['relative_error']:.2e}",
            )
            for m in rows[:limit]
        ],
    )
    if len(rows) > limit:
        click.echo(f"  ... {len(rows) - limit} more modules (--json for all)")


@cli.command()
@click.argument("refs")
@click.option("--output", required=True, help="Repository for the composed adapter (NS/NAME).")
@click.option("--weights", help="One weight per adapter, comma-separated (default 1 each).")
@click.option(
    "--method",
    default="cat",
    show_default=True,
    type=click.Choice(["cat", "linear", "svd"]),
    help="cat: A's and B's stacked, exact (rank = sum of ranks). svd: the best rank --rank"
    " approximation of the weighted sum, error per module reported. linear: PEFT's linear"
    " (A's and B's summed separately; equal ranks only).",
)
@click.option("--rank", type=int, help="svd: the rank to keep (default: the largest input rank).")
@wait_options("compose job")
@json_option
@pass_ctx
@handle_errors
def compose(
    ctx: Context,
    refs: str,
    output: str,
    weights: str | None,
    method: str,
    rank: int | None,
    wait: bool,
    claim_timeout: float,
    as_json: bool,
) -> None:
    """Compose REF,REF,... into one new adapter version (not merged into a base), as a job."""
    ref_list = [r.strip() for r in refs.split(",") if r.strip()]
    doc = ctx.client.compose(
        ref_list, output=output, weights=_floats(weights), method=method, rank=rank
    )
    job = doc["job"]
    if not as_json:
        for p in doc["interference"]:
            click.echo(
                f"interference {p['x']} x {p['y']}: cosine {p['cosine']:+.3f},"
                f" worst {p['worst_module']} {p['worst_cosine']:+.3f}"
            )
        click.echo(
            f"job {job['id']} queued: compose ({method}) of {', '.join(ref_list)}"
            f" -> {job['spec']['output']}"
        )
    job = follow_job(ctx, job, wait=wait, claim_timeout=claim_timeout)
    if as_json:
        emit_json({**doc, "job": job})
    elif wait and job["state"] == "succeeded":
        result = job["result"]
        click.echo(
            f"composed ({method}) {', '.join(result['inputs'])} -> {job['output']}"
            f"  max rank {result['max_rank']},"
            f" max relative error {result['max_relative_error']:.2e}"
        )
        if method == "svd":
            _modules_table(result)
    if wait:
        exit_unless_succeeded(job, as_json=as_json)


@cli.command()
@click.argument("refs", nargs=-1)
@click.option("--base", help="Every adapter on this base (its newest version).")
@click.option("--namespace", help="Only adapters of this namespace.")
@click.option("--tag", "tags", multiple=True, help="Only versions with this tag (KEY=VALUE).")
@click.option("--threshold", default=0.3, show_default=True, help="List pairs above this |cosine|.")
@json_option
@pass_ctx
@handle_errors
def interference(
    ctx: Context,
    refs: tuple[str, ...],
    base: str | None,
    namespace: str | None,
    tags: tuple[str, ...],
    threshold: float,
    as_json: bool,
) -> None:
    """How every pair of adapters overlaps: cosine of their deltas per shared module."""
    result = ctx.client.interference(
        list(refs), base=base, namespace=namespace, tags=parse_pairs(tags, "tags")
    )
    doc = result.model_dump(mode="json")
    if as_json:
        emit_json(doc)
        return
    click.echo(
        f"{len(doc['adapters'])} adapters, {len(doc['pairs'])} pairs"
        f" ({doc['computed_pairs']} computed, {doc['cached_pairs']} cached)"
    )
    pairs = sorted(doc["pairs"], key=lambda p: -p["max_abs_cosine"])
    table(
        ["X", "Y", "MODULES", "COSINE", "MAX |COS|", "WORST MODULE"],
        [
            (
                p["x"],
                p["y"],
                p["modules"],
                f"{p['cosine']:+.3f}",
                f"{p['max_abs_cosine']:.3f}",
                p["worst_module"] or "-",
            )
            for p in pairs
        ],
    )
    above = [p for p in pairs if p["max_abs_cosine"] > threshold]
    click.echo(f"{len(above)} pair(s) above |cosine| {threshold:g} on some module")


@cli.command()
@click.argument("ref")
@json_option
@pass_ctx
@handle_errors
def analyze(ctx: Context, ref: str, as_json: bool) -> None:
    """Singular values per module, effective rank, relative update, engine cost."""
    doc = ctx.client.analyze(ref).model_dump(mode="json")
    if as_json:
        emit_json(doc)
        return
    table(
        ["MODULE", "RANK", "RANK@99%", "RANK@99.9%", "||dW||", "||dW||/||W0||"],
        [
            (
                m["module"],
                m["rank"],
                m["rank_99"],
                m["rank_999"],
                f"{m['norm']:.3g}",
                "-" if m["relative_update"] is None else f"{m['relative_update']:.2%}",
            )
            for m in doc["modules"]
        ],
    )
    need = doc["max_lora_rank"]
    click.echo(
        f"{doc['ref']}: rank {doc['max_rank']}, effective rank {doc['rank_99']} (99%),"
        f" {doc['rank_999']} (99.9%); stored {human_size(doc['stored_bytes'])}"
    )
    if need is None:
        click.echo("vLLM: no --max-lora-rank serves this rank (largest is 512)")
    else:
        flag = (
            "the default --max-lora-rank 16 fits"
            if doc["vllm_default_fits"]
            else (f"needs --max-lora-rank {need}")
        )
        click.echo(
            f"vLLM: {flag}; a slot holds {human_size(doc['slot_bytes'])} (fp16), "
            f"{human_size(doc['slot_bytes_at_rank_999'])} at rank {doc['rank_999']}"
        )
    for w in doc["warnings"]:
        click.echo(f"warning: {w}", err=True)


@cli.command()
@click.argument("ref")
@click.option("--rank", type=int, help="Keep at most this rank on every module.")
@click.option("--energy", type=float, help="Keep this share of each module's energy (0.999).")
@click.option("--output", help="Repository for the result (default: a new version of REF's).")
@json_option
@pass_ctx
@handle_errors
def compress(
    ctx: Context,
    ref: str,
    rank: int | None,
    energy: float | None,
    output: str | None,
    as_json: bool,
) -> None:
    """Truncate REF optimally per module into a new version, and check it."""
    doc = ctx.client.compress(ref, rank=rank, energy=energy, output=output).model_dump(mode="json")
    if as_json:
        emit_json(doc)
        return
    v = doc["version"]
    click.echo(
        f"compressed {ref} -> {v['namespace']}/{v['name']}:{v['number']}  max rank"
        f" {doc['max_rank']}, max relative error {doc['max_relative_error']:.2e}"
    )
    _modules_table(doc)
    if doc["check"]:
        click.echo(f"checks against {doc['check']['base_model']}: {doc['check']['verdict']}")
        for line in doc["check"]["lines"]:
            click.echo(f"  {line}")

"""merge and jobs."""

from __future__ import annotations

from typing import Any

import click

from cli.app import Context, cli, handle_errors, json_option, pass_ctx
from cli.job_wait import exit_unless_succeeded, follow_job, wait_options
from cli.output import emit_json, human_size
from cli.render import print_jobs
from registry.domain import MergeMethod


def _floats(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"--weights {text!r}: comma-separated numbers") from None


def _progress_line(doc: dict[str, Any]) -> str:
    st = doc.get("status") or {}
    line = f"job {doc['id']}: {doc['state']} {doc['progress'] * 100:5.1f}%"
    if st.get("shard"):
        line += (
            f"  shard {st.get('shards_done', 0) + 1}/{st.get('shards_total', '?')} {st['shard']}"
        )
    if st.get("rate_bytes_s"):
        line += f"  {human_size(st['rate_bytes_s'])}/s"
    if st.get("eta_s") is not None:
        line += f"  ETA {st['eta_s']:.0f}s"
    return line


@cli.command()
@click.argument("refs")
@click.option("--base", required=True, help="Registered base model to merge into.")
@click.option("--weights", help="One weight per adapter, comma-separated.")
@click.option(
    "--method",
    default="sum",
    show_default=True,
    type=click.Choice([m.value for m in MergeMethod]),
    help="How several adapters combine. sum: the exact weighted sum of their deltas (what"
    " `linear` computed in earlier lorareg versions). linear: PEFT's add_weighted_adapter"
    " linear, A's and B's summed separately (cross terms; equal ranks only). cat: the exact"
    " sum as one concatenated factor pair. svd: the sum truncated to --svd-rank.",
)
@click.option("--svd-rank", type=int, help="Rank to truncate to (svd).")
@click.option("--output", help="Repository for the merged model (default: NS/NAME-merged).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--dtype", help="Cast the output (e.g. bfloat16); default keeps the base's.")
@wait_options("merge")
@json_option
@pass_ctx
@handle_errors
def merge(
    ctx: Context,
    refs: str,
    base: str,
    weights: str | None,
    method: str,
    svd_rank: int | None,
    output: str | None,
    device: str,
    dtype: str | None,
    wait: bool,
    claim_timeout: float,
    as_json: bool,
) -> None:
    """Merge REF[,REF...] into a base model; prints the interference report first."""
    if not ctx.settings.url:
        # Embedded: this process checks the adapters with torch (and runs the merge with
        # --wait); its import takes seconds, so it starts now, beside the catalog's opening.
        from registry.merge.preload import import_torch_in_background

        import_torch_in_background()
    ref_list = [r.strip() for r in refs.split(",") if r.strip()]
    doc = ctx.client.merge(
        ref_list,
        base=base,
        weights=_floats(weights),
        method=method,
        svd_rank=svd_rank,
        output=output,
        device=device,
        dtype=dtype,
    )
    job = doc["job"]
    if not as_json:
        for line in doc["interference"]:
            click.echo(line)
        click.echo(
            f"job {job['id']} queued: {method} of {', '.join(ref_list)} into {base}"
            f" -> {job['spec']['output']}"
        )
    last = [""]

    def show(d: dict[str, Any]) -> None:
        line = _progress_line(d)
        if line != last[0] and not as_json:
            click.echo(line, err=True)
            last[0] = line

    job = follow_job(ctx, job, wait=wait, claim_timeout=claim_timeout, progress=show)
    if as_json:
        emit_json({**doc, "job": job})
    elif wait and job["state"] == "succeeded":
        r = job["result"] or {}
        ver = (r.get("verification") or {}).get("max_abs_error")
        err = f"{ver:.1e}" if isinstance(ver, int | float) else ver
        click.echo(
            f"merged: {job['output']}  ({r.get('elapsed_s', 0):.1f}s, verification max error {err})"
        )
    if wait:
        exit_unless_succeeded(job, as_json=as_json)


@cli.group(invoke_without_command=True)
@json_option
@pass_ctx
@click.pass_context
@handle_errors
def jobs(click_ctx: click.Context, ctx: Context, as_json: bool) -> None:
    """Merge jobs: list; `jobs show ID`; `jobs cancel ID`."""
    if click_ctx.invoked_subcommand is not None:
        return
    print_jobs(ctx.client.jobs(), as_json=as_json)


@jobs.command("show")
@click.argument("job_id", type=int)
@json_option
@pass_ctx
@handle_errors
def jobs_show(ctx: Context, job_id: int, as_json: bool) -> None:
    d = ctx.client.job(job_id)
    if as_json:
        emit_json(d)
        return
    click.echo(_progress_line(d))
    inputs = ", ".join(f"{i['ref']} x{i['weight']:g}" for i in d["spec"]["inputs"])
    click.echo(f"  inputs:   {inputs}")
    click.echo(f"  base:     {d['spec']['base']}   method: {d['spec']['method']}")
    click.echo(f"  output:   {d['output'] or d['spec']['output']}")
    click.echo(f"  attempts: {d['attempts']}   worker: {d['worker_id'] or '-'}")
    if d["error"]:
        click.echo(f"  error:    {d['error']}")


@jobs.command("cancel")
@click.argument("job_id", type=int)
@json_option
@pass_ctx
@handle_errors
def jobs_cancel(ctx: Context, job_id: int, as_json: bool) -> None:
    d = ctx.client.cancel_job(job_id)
    if as_json:
        emit_json(d)
    else:
        click.echo(
            f"job {job_id}: {'cancelled' if d['state'] == 'cancelled' else 'cancel requested'}"
        )

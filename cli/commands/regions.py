"""regions [status]: the configured regions, their replication backlog, lag and failures."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from cli.app import Context, cli, handle_errors, json_option, pass_ctx
from cli.output import age, emit_json, human_size, table


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    if value < 7200:
        return f"{value / 60:.1f}min"
    return f"{value / 3600:.1f}h"


def _until(when: datetime) -> str:
    aware = when if when.tzinfo else when.replace(tzinfo=UTC)
    left = (aware - datetime.now(UTC)).total_seconds()
    return "now" if left <= 0 else f"in {_seconds(left)}"


@cli.group(invoke_without_command=True)
@json_option
@pass_ctx
@handle_errors
def regions(ctx: Context, as_json: bool) -> None:
    """The regions this registry serves from, and whether each store answers."""
    if click.get_current_context().invoked_subcommand is not None:
        return
    views = ctx.client.regions()
    if as_json:
        emit_json([v.model_dump(mode="json") for v in views])
        return
    table(
        ["REGION", "MODE", "PRIMARY", "STATE", "DETAIL"],
        [(v.name, v.mode, "yes" if v.primary else "", v.state, v.error or "") for v in views],
    )


@regions.command("status")
@click.option("--ref", "ref", metavar="REF", help="Also show which regions hold this version.")
@json_option
@pass_ctx
@handle_errors
def regions_status(ctx: Context, ref: str | None, as_json: bool) -> None:
    """Backlog, replication lag and failures per region (unscoped admins)."""
    report = ctx.client.region_status(ref=ref)
    if as_json:
        emit_json(report.model_dump(mode="json"))
        return
    table(
        ["REGION", "MODE", "PRESENT", "BACKLOG", "BYTES", "OLDEST", "LAG P50", "LAG P99", "FAILED"],
        [
            (
                r.name + (" (primary)" if r.primary else ""),
                r.mode,
                r.present_blobs,
                r.backlog_blobs,
                human_size(r.backlog_bytes),
                age(r.oldest_missing_since) if r.oldest_missing_since else "-",
                _seconds(r.lag_p50_s),
                _seconds(r.lag_p99_s),
                r.failed_blobs,
            )
            for r in report.regions
        ],
    )
    for r in report.regions:
        for f in r.failures:
            click.echo(
                f"  {r.name}: {f.sha256[:12]} failed {f.attempts}x,"
                f" next try {_until(f.next_try_at)}: {f.last_error or 'no detail'}"
            )
    if report.version is not None:
        v = report.version
        click.echo(f"{v.ref}: complete in {', '.join(v.complete_in) or 'no region'}")
        for region, paths in sorted(v.missing().items()):
            click.echo(f"  {region} misses {', '.join(paths)}")

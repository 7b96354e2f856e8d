"""fsck and gc: run where the catalog and storage are configured (not through a server)."""

from __future__ import annotations

import sys
from datetime import timedelta

import click

from cli.app import Context, cli, handle_errors, json_option, pass_ctx
from cli.output import emit_json, human_size
from registry.errors import InvalidInput


def _runtime(ctx: Context):  # type: ignore[no-untyped-def]
    if ctx.settings.url:
        raise InvalidInput(
            "fsck and gc work on the catalog and storage directly; unset LORAREG_URL and set"
            " LORAREG_DATABASE_URL / LORAREG_STORAGE_URL to the server's"
        )
    from registry.runtime import open_runtime

    rt = open_runtime(ctx.settings)
    click.get_current_context().call_on_close(rt.close)
    return rt


def _spool(rt):  # type: ignore[no-untyped-def]
    """The spool folder of a server sharing this configuration (its cache folder)."""
    from registry.storage.spool import spool_for

    return spool_for(rt.settings.effective_cache_dir)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


@cli.command()
@click.option("--deep", is_flag=True, help="Also read and re-hash every blob (reads all bytes).")
@click.option("--repair", is_flag=True, help="Delete damaged blobs; say what to push for each.")
@json_option
@pass_ctx
@handle_errors
def fsck(ctx: Context, deep: bool, repair: bool, as_json: bool) -> None:
    """Check the catalog against storage; exit 1 when a version's bytes are damaged."""
    from registry.catalog.upkeep import fsck as run_fsck

    rt = _runtime(ctx)
    report = run_fsck(rt.db, rt.store, deep=deep, repair=repair, spool=_spool(rt))
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(
            f"checked {report.versions} version(s), {report.files} file(s), {report.blobs} blob(s)"
        )
        for d in report.damaged:
            used = ", ".join(d.versions) or "no version"
            click.echo(f"  {d.problem}: {d.sha256} ({d.detail}); used by {used}")
        if report.damaged_versions:
            click.echo("  damaged versions: " + ", ".join(report.damaged_versions))
        if report.unreferenced:
            click.echo(
                f"  {len(report.unreferenced)} unreferenced blob(s): `lorareg gc` removes them"
            )
        for kind, s in sorted(report.leftovers.items()):
            click.echo(
                f"  {int(s['count'])} {kind}(s) left by interrupted writers,"
                f" {human_size(int(s['bytes']))}, oldest {_age(s['oldest_age_s'])}:"
                " `lorareg gc` removes them after the grace period"
            )
        for line in report.repaired:
            click.echo(f"  repaired: {line}")
        click.echo("ok" if report.ok else "problems found")
    if not report.ok:
        sys.exit(1)


@cli.command()
@click.option("--grace-hours", default=24.0, show_default=True, type=float)
@click.option("--dry-run", is_flag=True)
@json_option
@pass_ctx
@handle_errors
def gc(ctx: Context, grace_hours: float, dry_run: bool, as_json: bool) -> None:
    """Remove blobs no version references, once older than the grace period."""
    from registry.catalog.upkeep import gc as run_gc

    if grace_hours < 0:
        raise click.BadParameter("--grace-hours must be >= 0")
    rt = _runtime(ctx)
    report = run_gc(
        rt.db,
        rt.store,
        grace=timedelta(hours=grace_hours),
        dry_run=dry_run,
        spool=_spool(rt),
    )
    if as_json:
        emit_json(report.__dict__)
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {len(report.deleted)} blob(s), {human_size(report.bytes_freed)};"
        f" kept {report.referenced} referenced and {report.kept_recent} recent"
    )
    click.echo(
        f"{verb} {len(report.leftovers_removed)} leftover(s) of interrupted writers,"
        f" {human_size(report.leftover_bytes_freed)}; kept {report.leftovers_kept} recent or live"
    )

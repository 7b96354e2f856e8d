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
@click.option(
    "--regions",
    "regions",
    is_flag=True,
    help="Also read and hash every regional copy; damaged or missing ones are copied again.",
)
@json_option
@pass_ctx
@handle_errors
def fsck(ctx: Context, deep: bool, repair: bool, regions: bool, as_json: bool) -> None:
    """Check the catalog against storage; exit 1 when a version's bytes are damaged."""
    from registry.catalog.upkeep import fsck as run_fsck

    rt = _runtime(ctx)
    report = run_fsck(rt.db, rt.store, deep=deep, repair=repair, spool=_spool(rt))
    regional = None
    if regions:
        from registry.services.region_upkeep import fsck_regions
        from registry.services.regions import regional_stores

        stores = regional_stores(rt)
        if not stores:
            raise InvalidInput(
                "fsck --regions: no regional stores are configured (LORAREG_REGIONS)"
            )
        regional = fsck_regions(rt.db, stores)
    if as_json:
        doc = report.to_json()
        if regional is not None:
            doc["regions"] = {"ok": regional.ok, **regional.model_dump(mode="json")}
        emit_json(doc)
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
        if regional is not None:
            _echo_regional(regional)
        click.echo("ok" if report.ok and (regional is None or regional.ok) else "problems found")
    if not report.ok or (regional is not None and not regional.ok):
        sys.exit(1)


def _echo_regional(regional):  # type: ignore[no-untyped-def]
    for region, count in sorted(regional.regions.items()):
        click.echo(f"region {region}: {count} copy(ies) read and verified")
    for region, why in sorted(regional.unreachable.items()):
        click.echo(f"  region {region} unreachable: {why}")
    for p in regional.problems:
        click.echo(f"  {p.region}: {p.problem}: {p.sha256} ({p.detail}); needed again")
    for region, count in sorted(regional.untracked.items()):
        click.echo(f"  {region}: {count} blob(s) had no copy recorded; now needed")


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
    regional = None
    from registry.services.regions import regional_stores

    stores = regional_stores(rt)
    if stores:
        from registry.services.region_upkeep import gc_regions

        regional = gc_regions(rt.db, stores, grace=timedelta(hours=grace_hours), dry_run=dry_run)
    if as_json:
        doc = dict(report.__dict__)
        if regional is not None:
            doc["regions"] = regional.__dict__
        emit_json(doc)
        return
    verb = "would delete" if dry_run else "deleted"
    if regional is not None:
        for region, shas in sorted(regional.deleted.items()):
            click.echo(f"region {region}: {verb} {len(shas)} unreferenced blob(s)")
        for region, why in sorted(regional.unreachable.items()):
            click.echo(f"region {region}: unreachable, skipped ({why})")
    click.echo(
        f"{verb} {len(report.deleted)} blob(s), {human_size(report.bytes_freed)};"
        f" kept {report.referenced} referenced and {report.kept_recent} recent"
    )
    click.echo(
        f"{verb} {len(report.leftovers_removed)} leftover(s) of interrupted writers,"
        f" {human_size(report.leftover_bytes_freed)}; kept {report.leftovers_kept} recent or live"
    )

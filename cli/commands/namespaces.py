"""delete (offboarding) and namespace show | delete | quota set."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from cli.app import Context, cli, handle_errors, json_option, pass_ctx
from cli.output import emit_json, human_size

if TYPE_CHECKING:  # the catalog's modules load only for the commands that use them
    from registry.catalog.erase import ErasureReport
    from registry.catalog.quotas import NamespaceInfo

_REASON = click.option(
    "--reason", required=True, help="Why (kept in the audit log with who and when)."
)
_FORCE = click.option("--force", is_flag=True, help="Erase even versions that are in production.")


@cli.command()
@click.argument("ref", metavar="NS/NAME[:N]")
@_REASON
@_FORCE
@json_option
@pass_ctx
@handle_errors
def delete(ctx: Context, ref: str, reason: str, force: bool, as_json: bool) -> None:
    """Erase an adapter (every version) or one version, with its weights (admin)."""
    report = ctx.client.delete(ref, reason=reason, force=force)
    _print_erasure(report, as_json)


@cli.group()
def namespace() -> None:
    """A namespace's usage and quota; offboarding a whole namespace."""


@namespace.command("show")
@click.argument("name")
@json_option
@pass_ctx
@handle_errors
def namespace_show(ctx: Context, name: str, as_json: bool) -> None:
    """Usage and limits of NAME."""
    _print_info(ctx.client.namespace_info(name), as_json)


@namespace.command("delete")
@click.argument("name")
@_REASON
@_FORCE
@json_option
@pass_ctx
@handle_errors
def namespace_delete(ctx: Context, name: str, reason: str, force: bool, as_json: bool) -> None:
    """Erase everything of namespace NAME: adapters, weights, tokens, webhooks (admin)."""
    _print_erasure(ctx.client.delete_namespace(name, reason=reason, force=force), as_json)


@namespace.group("quota")
def quota() -> None:
    """Limits on what a namespace may hold."""


def _limit(value: str, parse: Callable[[str], int]) -> int | None:
    """A limit as typed: 'none' (or 'unlimited') removes it."""
    return None if value.strip().lower() in ("none", "unlimited") else parse(value)


def _count(value: str) -> int:
    from registry.catalog.quotas import check_limit

    try:
        return check_limit(int(value), "--max-versions")
    except ValueError:
        raise click.BadParameter(f"{value!r}: a whole number, or 'none'") from None


@quota.command("set")
@click.argument("name")
@click.option("--max-bytes", help="Total size of its versions: 10G, 500M, 1.5TiB; 'none' clears.")
@click.option("--max-versions", help="How many versions it may hold; 'none' clears.")
@json_option
@pass_ctx
@handle_errors
def quota_set(
    ctx: Context, name: str, max_bytes: str | None, max_versions: str | None, as_json: bool
) -> None:
    """Set the quota of namespace NAME (admin); limits not given stay as they are."""
    if max_bytes is None and max_versions is None:
        raise click.UsageError("give --max-bytes and/or --max-versions")
    from registry.catalog.quotas import parse_size

    limits: dict[str, int | None] = {}
    if max_bytes is not None:
        limits["max_bytes"] = _limit(max_bytes, parse_size)
    if max_versions is not None:
        limits["max_versions"] = _limit(max_versions, _count)
    _print_info(ctx.client.set_quota(name, **limits), as_json)


def _print_info(info: NamespaceInfo, as_json: bool) -> None:
    if as_json:
        emit_json(info)
        return

    def of(used: str, limit: str | None) -> str:
        return f"{used} of {limit}" if limit is not None else f"{used} (no limit)"

    max_bytes = human_size(info.max_bytes) if info.max_bytes is not None else None
    max_versions = str(info.max_versions) if info.max_versions is not None else None
    click.echo(f"namespace: {info.namespace}")
    click.echo(f"adapters:  {info.adapters}")
    click.echo(f"versions:  {of(str(info.versions), max_versions)}")
    click.echo(f"bytes:     {of(human_size(info.bytes), max_bytes)}")


def _print_erasure(report: ErasureReport, as_json: bool) -> None:
    if as_json:
        emit_json(report)
        return
    what = f"{len(report.versions)} version(s)"
    if report.adapters:
        what += f" of {len(report.adapters)} adapter(s)"
    click.echo(f"erased {report.target}: {what}; reason: {report.reason}")
    click.echo(
        f"  weights: {report.blobs_deleted} blob(s) deleted, {human_size(report.bytes_freed)}"
        f" freed; {report.blobs_shared} still used by other versions, kept"
    )
    extras = [
        (report.tokens_removed, "token(s) removed"),
        (report.tokens_narrowed, "token(s) narrowed"),
        (report.webhooks_removed, "webhook(s) removed"),
        (report.policies_removed, "polic(ies) removed"),
        (report.jobs_removed, "merge job(s) removed"),
        (report.events_scrubbed, "audit event(s) scrubbed of content"),
        (report.regional_deleted, "regional cop(ies) deleted"),
    ]
    done = [f"{n} {label}" for n, label in extras if n]
    if done:
        click.echo("  " + "; ".join(done))
    if report.derived_kept:
        click.echo(
            "  merged models built from it stay (lineage removed): "
            + ", ".join(report.derived_kept)
        )
    if report.regional_pending:
        click.echo(
            f"warning: {report.regional_pending} regional cop(ies) could not be deleted now;"
            " nothing references them, `lorareg gc` removes them",
            err=True,
        )
    if report.storage_pending:
        click.echo(
            f"warning: {report.storage_pending} blob(s) could not be deleted from storage now;"
            " nothing references them, `lorareg gc` removes them",
            err=True,
        )

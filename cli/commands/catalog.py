"""push, pull, list, show, history, tag."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli.app import Context, cli, handle_errors, json_option, parse_pairs, pass_ctx
from cli.output import emit_json, human_size, progress
from cli.render import print_adapters, print_history, print_version
from registry.config import check_region_name
from registry.errors import InvalidInput

if TYPE_CHECKING:  # pydantic's models load only for the commands that build them
    from registry.domain import EvalRecord

_WRITE_ERRORS = (errno.EACCES, errno.EPERM, errno.EROFS)


def _evals(values: tuple[str, ...]) -> list[EvalRecord]:
    from registry.domain import EvalRecord

    out = []
    for metric, raw in parse_pairs(values, "--eval").items():
        try:
            value = float(raw)
        except ValueError:
            raise click.BadParameter(
                f"--eval {metric}={raw!r}: the value must be a number"
            ) from None
        out.append(EvalRecord(metric=metric, value=value))
    return out


def _folder_size(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


@cli.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.argument("repo")
@click.option("--base", help="Base model the adapter was trained on (default: its config's).")
@click.option("--description", help="What changed in this version.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE")
@click.option("--eval", "evals", multiple=True, metavar="METRIC=VALUE")
@click.option(
    "--strict",
    is_flag=True,
    help="Store nothing and exit 1 when the check against the registered base fails.",
)
@json_option
@pass_ctx
@handle_errors
def push(
    ctx: Context,
    folder: Path,
    repo: str,
    base: str | None,
    description: str | None,
    tags: tuple[str, ...],
    evals: tuple[str, ...],
    strict: bool,
    as_json: bool,
) -> None:
    """Store the PEFT adapter in FOLDER as the next version of REPO (ns/name).

    When the base model is registered, the adapter is checked against it and the verdict
    printed; a failing check still stores the version (exit 0) unless --strict."""
    tag_map = parse_pairs(tags, "--tag")
    eval_list = _evals(evals)
    if not strict and not as_json:
        # An unchanged folder: answered from the hash index and one SQLite read, without
        # opening the client (imports of the ORM and boto3); None: push as usual.
        from registry.client.repush import unchanged_push

        same = unchanged_push(
            ctx.settings, folder, repo, base=base, description=description, tags=tag_map,
            evals=eval_list,
        )  # fmt: skip
        if same is not None:
            click.echo(_unchanged(same.ref, same.content_id))
            return
    from registry.catalog.hash_index import HashIndex
    from registry.catalog.transfer import drop_ahead, hash_ahead

    # Hash the files on another core while the client starts (imports, catalog, S3).
    hash_ahead(folder, HashIndex.in_cache(ctx.settings.effective_cache_dir))
    try:
        with progress("uploading", _folder_size(folder)) as bar:
            result = ctx.client.push(
                folder, repo, base=base, description=description, tags=tag_map,
                evals=eval_list, progress=bar, strict=strict,
            )  # fmt: skip
    finally:
        drop_ahead(folder)
    if as_json:
        emit_json(result)
        return
    v = result.version
    if result.created:
        click.echo(
            f"pushed {v.ref}  content {v.content_id[:12]}  {human_size(v.size)}"
            f"  (uploaded {human_size(result.bytes_uploaded)},"
            f" {result.blobs_reused} blob(s) reused)"
        )
    else:
        click.echo(_unchanged(v.ref, v.content_id))
    if result.check:
        _print_check(v.ref, result.check)


def _unchanged(ref: str, content_id: str) -> str:
    return f"unchanged: identical to {ref} (content {content_id[:12]}); nothing created"


def _print_check(ref: str, check: dict) -> None:  # type: ignore[type-arg]
    """The automatic check's verdict, and what is wrong when it is not a pass."""
    verdict = check["verdict"]
    click.echo(f"check against {check['base_model']}: {verdict}")
    if verdict in ("fail", "warn"):
        problems = [line for line in check["lines"][1:] if line.startswith(("FAIL", "WARN"))]
        for line in problems[:3]:
            click.echo(f"  {line}")
        if len(problems) > 3:
            click.echo(f"  ... {len(problems) - 3} more: lorareg check {ref} --base"
                       f" {check['base_model']}")  # fmt: skip


@cli.command()
@click.argument("ref")
@click.option("-o", "--output", "dest", type=click.Path(path_type=Path), help="Folder to write.")
@click.option("--force", is_flag=True, help="Replace a non-empty output folder.")
@click.option(
    "--region",
    default=None,
    metavar="NAME",
    help="Read from this region's copies (default: LORAREG_REGION); others when missing.",
)
@json_option
@pass_ctx
@handle_errors
def pull(
    ctx: Context, ref: str, dest: Path | None, force: bool, region: str | None, as_json: bool
) -> None:
    """Download REF (ns/name, ns/name:N, ns/name@label), verifying every sha256."""
    client = ctx.client
    version = client.show(ref)
    if region is not None:
        try:
            check_region_name(region)
        except ValueError as exc:
            raise InvalidInput(f"--region: {exc}") from None
    with progress("downloading", version.size) as bar:
        try:
            result = client.pull(ref, dest=dest, force=force, progress=bar, region=region)
        except OSError as exc:
            # The staging folder beside DEST is an implementation detail: name DEST.
            if dest is None or exc.filename is None or exc.errno not in _WRITE_ERRORS:
                raise
            raise InvalidInput(f"cannot write {dest}: {exc.strerror}") from None
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"pulled {result.version.ref} into {result.path}  {human_size(result.version.size)}"
        f"  ({human_size(result.bytes_from_cache)} from cache)"
    )


@cli.command("list")
@click.argument("namespace", required=False)
@json_option
@pass_ctx
@handle_errors
def list_cmd(ctx: Context, namespace: str | None, as_json: bool) -> None:
    """List adapters, optionally in one NAMESPACE."""
    print_adapters(ctx.client.list_adapters(namespace), namespace, as_json=as_json)


@cli.command()
@click.argument("ref")
@click.option("--base", help="Pick the version for this base model.")
@json_option
@pass_ctx
@handle_errors
def show(ctx: Context, ref: str, base: str | None, as_json: bool) -> None:
    """Show one version (or, for a bare ns/name, the newest) with its files."""
    v = ctx.client.show(ref, base=base)
    print_version(v, ctx.client.checks(v.ref), as_json=as_json)


@cli.command()
@click.argument("repo")
@json_option
@pass_ctx
@handle_errors
def history(ctx: Context, repo: str, as_json: bool) -> None:
    """Every change to REPO (ns/name) or to a whole NAMESPACE: versions, tags, evals,
    stage and alias moves, policy changes."""
    whole_namespace = "/" not in repo
    events = ctx.client.namespace_history(repo) if whole_namespace else ctx.client.history(repo)
    print_history(events, whole_namespace=whole_namespace, as_json=as_json)


@cli.command()
@click.argument("ref")
@click.argument("pairs", nargs=-1, required=True, metavar="KEY=VALUE...")
@json_option
@pass_ctx
@handle_errors
def tag(ctx: Context, ref: str, pairs: tuple[str, ...], as_json: bool) -> None:
    """Set tags on a version (KEY= with no value removes a tag)."""
    v = ctx.client.tag(ref, parse_pairs(pairs, "tags"))
    if as_json:
        emit_json(v)
        return
    click.echo(f"{v.ref}: " + (", ".join(f"{k}={val}" for k, val in v.tags.items()) or "no tags"))

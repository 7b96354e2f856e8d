"""``lorareg import hf://org/repo@rev REPO``: bring an adapter in from an HF-compatible hub."""

from __future__ import annotations

import sys

import click

from cli.app import Context, cli, handle_errors, json_option, parse_pairs, pass_ctx
from cli.output import emit_json, human_size


@cli.command("import")
@click.argument("source", metavar="hf://ORG/REPO[@REV]")
@click.argument("repo")
@click.option("--base", help="Base model (default: the adapter config's).")
@click.option("--description", help="Default: 'imported from hf://org/repo@commit'.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE")
@click.option("--endpoint", help="Hub URL  [default: HF_ENDPOINT, else huggingface.co]")
@click.option("--token", help="Hub token  [default: HF_TOKEN, else the saved login]")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Leave out matching files.")
@json_option
@pass_ctx
@handle_errors
def import_cmd(
    ctx: Context,
    source: str,
    repo: str,
    base: str | None,
    description: str | None,
    tags: tuple[str, ...],
    endpoint: str | None,
    token: str | None,
    exclude: tuple[str, ...],
    as_json: bool,
) -> None:
    """Download SOURCE from a Hugging Face Hub-compatible server and push it as REPO's next
    version, with every check of `lorareg push`."""
    from registry.client.importer import import_from_hub

    if not sys.stderr.isatty():
        # huggingface_hub draws its bars regardless; keep logs and pipes clean.
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    result = import_from_hub(
        ctx.client,
        source,
        repo,
        base=base,
        description=description,
        tags=parse_pairs(tags, "--tag"),
        endpoint=endpoint,
        token=token,
        exclude=exclude,
    )
    if as_json:
        emit_json(
            {
                "source": result.source,
                "endpoint": result.endpoint,
                "files": result.files,
                **result.push.model_dump(mode="json"),
            }
        )
        return
    v = result.push.version
    if result.push.created:
        click.echo(
            f"imported {result.source} as {v.ref}  content {v.content_id[:12]}"
            f"  {human_size(v.size)}  ({len(result.files)} files)"
        )
    else:
        click.echo(f"unchanged: {result.source} is identical to {v.ref}; nothing created")

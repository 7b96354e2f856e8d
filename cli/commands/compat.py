"""base add|list|show, check."""

from __future__ import annotations

import sys

import click

from cli.app import Context, cli, handle_errors, json_option, pass_ctx
from cli.output import emit_json, human_size, table


@cli.group()
def base() -> None:
    """Base models: tensors and fingerprints read from safetensors headers."""


@base.command("add")
@click.argument("name")
@click.argument("source")
@json_option
@pass_ctx
@handle_errors
def base_add(ctx: Context, name: str, source: str, as_json: bool) -> None:
    """Register base model NAME from SOURCE: a folder, s3://bucket/prefix or hf://repo@rev."""
    doc = ctx.client.add_base(name, source)
    if as_json:
        emit_json(doc)
        return
    verb = "registered" if doc["created"] else "already registered (same fingerprint)"
    click.echo(
        f"{verb}: {name}  {doc['tensors']} tensors in {doc['files']} file(s),"
        f" {human_size(doc['total_size'] or 0)}  structure {str(doc['structure_hash'])[:12]}"
        f"  content {str(doc['content_hash'] or '-')[:12]}"
    )


@base.command("list")
@json_option
@pass_ctx
@handle_errors
def base_list(ctx: Context, as_json: bool) -> None:
    docs = ctx.client.list_bases()
    if as_json:
        emit_json(docs)
        return
    table(
        ["NAME", "ARCH", "TENSORS", "SIZE", "STRUCTURE", "SOURCE"],
        [
            (
                d["name"],
                ",".join(
                    d["architecture"].get("architectures")
                    or [d["architecture"].get("model_type", "")]
                ),
                d["tensors"],
                human_size(d["total_size"] or 0),
                str(d["structure_hash"])[:12],
                d["source"],
            )
            for d in docs
        ],
    )


@base.command("show")
@click.argument("name")
@json_option
@pass_ctx
@handle_errors
def base_show(ctx: Context, name: str, as_json: bool) -> None:
    doc = ctx.client.get_base(name)
    if as_json:
        emit_json(doc)
        return
    for key in ("name", "source", "structure_hash", "content_hash", "total_size", "created_by"):
        click.echo(f"{key + ':':<16}{doc[key]}")
    arch = doc["architecture"]
    click.echo(f"{'architecture:':<16}{arch.get('model_type')} {arch.get('architectures')}")
    click.echo(f"tensors ({doc['tensors']}):")
    for t in doc["tensor_list"][:50]:
        click.echo(f"  {t['name']:<60} {t['dtype']:<5} {t['shape']}")
    if doc["tensors"] > 50:
        click.echo(f"  ... {doc['tensors'] - 50} more (--json lists all)")


@cli.command()
@click.argument("ref")
@click.option("--base", "base_name", required=True, help="A registered base model.")
@click.option("--engine", "engines", multiple=True, help="vllm, sglang, lorax or peft (repeat).")
@json_option
@pass_ctx
@handle_errors
def check(ctx: Context, ref: str, base_name: str, engines: tuple[str, ...], as_json: bool) -> None:
    """Check REF against a base model (and engines); exit 1 when the verdict is fail."""
    doc = ctx.client.check(ref, base=base_name, engines=list(engines))
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"{doc['version']} against {base_name}")
        for line in doc["lines"]:
            click.echo(f"  {line}")
    if doc["report"]["verdict"] == "fail":
        sys.exit(1)

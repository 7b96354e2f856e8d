"""promote, alias, eval, diff, policy, token, webhook."""

from __future__ import annotations

import json
from typing import Any

import click

from cli.app import Context, cli, handle_errors, json_option, parse_pairs, pass_ctx
from cli.output import emit_json, table
from registry.domain import Stage


@cli.command()
@click.argument("ref")
@click.option("--to", "stage", required=True, type=click.Choice([s.value for s in Stage]))
@click.option("--reason", help="Why (kept in the history; some policies require it).")
@click.option(
    "--end-experiment", is_flag=True, help="REF is a variant of a running experiment: end it."
)
@json_option
@pass_ctx
@handle_errors
def promote(
    ctx: Context, ref: str, stage: str, reason: str | None, end_experiment: bool, as_json: bool
) -> None:
    """Move REF to a stage, if the promotion policy allows it (rollback: promote an older one)."""
    result = ctx.client.promote(ref, to=stage, reason=reason, end_experiment=end_experiment)
    if as_json:
        emit_json(result)
        return
    v = result["version"]
    if result.get("unchanged"):
        click.echo(
            f"{v['namespace']}/{v['name']}:{v['number']} is already in {stage}; nothing changed"
        )
        return
    line = f"{v['namespace']}/{v['name']}:{v['number']} -> {stage}"
    if result["previous_stage"]:
        line += f" (was {result['previous_stage']})"
    if result["archived"]:
        line += f"; v{result['archived']} archived"
    click.echo(line)
    for name in result.get("experiments_ended") or []:
        click.echo(f"warning: experiment {name} ended without a winner", err=True)


@cli.group()
def alias() -> None:
    """Movable labels (champion, canary-b) on versions."""


@alias.command("set")
@click.argument("repo")
@click.argument("label")
@click.argument("version", type=int)
@click.option("--reason")
@json_option
@pass_ctx
@handle_errors
def alias_set(
    ctx: Context, repo: str, label: str, version: int, reason: str | None, as_json: bool
) -> None:
    """Point LABEL of REPO at VERSION."""
    v = ctx.client.set_alias(repo, label, version, reason=reason)
    if as_json:
        emit_json(v)
    else:
        click.echo(f"{repo}@{label} -> {v.number}")


@alias.command("delete")
@click.argument("repo")
@click.argument("label")
@json_option
@pass_ctx
@handle_errors
def alias_delete(ctx: Context, repo: str, label: str, as_json: bool) -> None:
    ctx.client.delete_alias(repo, label)
    if as_json:
        emit_json({"deleted": f"{repo}@{label}"})
    else:
        click.echo(f"deleted {repo}@{label}")


@cli.group("eval")
def eval_group() -> None:
    """Eval scores of versions."""


@eval_group.command("add")
@click.argument("ref")
@click.argument("scores", nargs=-1, required=True, metavar="METRIC=VALUE...")
@click.option("--dataset")
@click.option("--lower-is-better", is_flag=True, help="These metrics improve downwards (loss).")
@json_option
@pass_ctx
@handle_errors
def eval_add(
    ctx: Context,
    ref: str,
    scores: tuple[str, ...],
    dataset: str | None,
    lower_is_better: bool,
    as_json: bool,
) -> None:
    """Record eval scores on REF."""
    from registry.domain import EvalRecord

    evals = []
    for metric, raw in parse_pairs(scores, "scores").items():
        try:
            value = float(raw)
        except ValueError:
            raise click.BadParameter(f"{metric}={raw!r}: the value must be a number") from None
        evals.append(
            EvalRecord(
                metric=metric, value=value, dataset=dataset, higher_is_better=not lower_is_better
            )
        )
    v = ctx.client.add_evals(ref, evals)
    if as_json:
        emit_json(v)
    else:
        click.echo(f"{v.ref}: " + ", ".join(f"{e.metric}={e.value:g}" for e in v.evals))


@cli.command()
@click.argument("a")
@click.argument("b")
@json_option
@pass_ctx
@handle_errors
def diff(ctx: Context, a: str, b: str, as_json: bool) -> None:
    """Config, targets and eval deltas of two versions side by side."""
    d = ctx.client.diff(a, b)
    if as_json:
        emit_json(d)
        return
    rows: list[tuple[Any, ...]] = [("base_model", d["base_model"]["a"], d["base_model"]["b"], "")]
    rows += [(k, _short(v["a"]), _short(v["b"]), "") for k, v in d["config"].items()]
    t = d["targets"]
    if t["added"] or t["removed"]:
        rows.append(("targets", "-" + ",".join(t["removed"]), "+" + ",".join(t["added"]), ""))
    for metric, e in d["evals"].items():
        delta = (
            ""
            if e["delta"] is None
            else f"{e['delta']:+g}" + {True: " better", False: " worse", None: ""}[e["better"]]
        )
        rows.append((f"eval {metric}", e["a"], e["b"], delta))
    f = d["files"]
    rows.append(
        ("files changed", "", ", ".join(f["changed"] + f["added"] + f["removed"]) or "none", "")
    )
    table(["", d["a"], d["b"], "DELTA"], rows)


def _short(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s if len(s) <= 40 else s[:37] + "..."


@cli.group()
def policy() -> None:
    """Promotion gates of a namespace or an adapter."""


@policy.command("show")
@click.argument("target")
@json_option
@pass_ctx
@handle_errors
def policy_show(ctx: Context, target: str, as_json: bool) -> None:
    """Show the policy of NAMESPACE, or the one in force for NAMESPACE/NAME."""
    doc = ctx.client.get_policy(target)
    if as_json:
        emit_json(doc)
        return
    if doc.get("rules") is None:
        click.echo(f"{target}: no policy (maintainers may promote freely)")
        return
    src = doc.get("effective_from")
    click.echo(f"{target}" + (f" (from {src})" if src and src != target else "") + ":")
    for k, v in doc["rules"].items():
        click.echo(f"  {k}: {json.dumps(v)}")


@policy.command("set")
@click.argument("target")
@click.option("--require-compatibility/--no-require-compatibility", default=None)
@click.option("--engine", "engines", multiple=True, help="Engines that must be able to serve it.")
@click.option("--min-eval", "min_evals", multiple=True, metavar="METRIC=THRESHOLD")
@click.option("--no-regression", "no_regression", multiple=True, metavar="METRIC")
@click.option("--tolerance", type=float)
@click.option("--require-reason/--no-require-reason", default=None)
@click.option("--role", type=click.Choice(["maintainer", "admin"]))
@click.option("--stage", "stages", multiple=True, type=click.Choice(["staging", "production"]))
@click.option(
    "--max-interference",
    "max_interference",
    multiple=True,
    metavar="ADAPTER=BOUND",
    help="Refuse a version whose |cosine| with ADAPTER's production version (NAME or NS/NAME)"
    " passes BOUND on some shared module (figures from `lorareg interference`).",
)
@click.option(
    "--require-regions",
    "require_regions",
    metavar="REGION,...",
    help="Regions that must hold every file of the version before it is promoted ('' clears).",
)
@click.option("--from-json", "from_json", type=click.File(), help="Read the whole policy as JSON.")
@json_option
@pass_ctx
@handle_errors
def policy_set(ctx: Context, target: str, from_json: Any, as_json: bool, **opts: Any) -> None:
    """Set the policy of NAMESPACE or NAMESPACE/NAME (options change the current one)."""
    if from_json is not None:
        try:
            rules = json.load(from_json)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"--from-json: {exc}") from None
    else:
        current = ctx.client.get_policy(target).get("rules") or {}
        rules = dict(current)
        if "/" in target and ctx.client.get_policy(target).get("effective_from") != target:
            rules = {}
        for key in ("require_compatibility", "tolerance", "require_reason", "role"):
            if opts[key] is not None:
                rules[key] = opts[key]
        if opts["engines"]:
            rules["engines"] = list(opts["engines"])
        if opts["no_regression"]:
            rules["no_regression"] = list(opts["no_regression"])
        if opts["stages"]:
            rules["stages"] = list(opts["stages"])
        if opts["min_evals"]:
            try:
                rules["min_evals"] = {
                    k: float(v) for k, v in parse_pairs(opts["min_evals"], "--min-eval").items()
                }
            except ValueError:
                raise click.BadParameter("--min-eval thresholds must be numbers") from None
        if opts["require_regions"] is not None:
            rules["require_regions"] = [
                r.strip() for r in opts["require_regions"].split(",") if r.strip()
            ]
        if opts["max_interference"]:
            try:
                rules["max_interference"] = {
                    k: float(v)
                    for k, v in parse_pairs(opts["max_interference"], "--max-interference").items()
                }
            except ValueError:
                raise click.BadParameter("--max-interference bounds must be numbers") from None
    doc = ctx.client.set_policy(target, rules)
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"policy of {target} set: {json.dumps(doc['rules'])}")


@cli.group()
def token() -> None:
    """API tokens (admins)."""


@token.command("create")
@click.option("--name", required=True)
@click.option(
    "--role", required=True, type=click.Choice(["reader", "writer", "maintainer", "admin"])
)
@click.option("--namespace", "namespaces", multiple=True, help="Limit the token to these.")
@click.option("--expires-in-days", type=float)
@json_option
@pass_ctx
@handle_errors
def token_create(
    ctx: Context,
    name: str,
    role: str,
    namespaces: tuple[str, ...],
    expires_in_days: float | None,
    as_json: bool,
) -> None:
    """Create a token; its secret is printed once."""
    doc = ctx.client.create_token(
        name, role, namespaces=list(namespaces) or None, expires_in_days=expires_in_days
    )
    if as_json:
        emit_json(doc)
    else:
        click.echo(doc["token"])
        click.echo(
            f"token {doc['id']} ({role}) created; the secret above is not shown again", err=True
        )


@token.command("list")
@json_option
@pass_ctx
@handle_errors
def token_list(ctx: Context, as_json: bool) -> None:
    tokens = ctx.client.list_tokens()
    if as_json:
        emit_json(tokens)
        return
    table(
        ["ID", "NAME", "ROLE", "NAMESPACES", "PREFIX", "EXPIRES", "REVOKED"],
        [
            (
                t["id"],
                t["name"],
                t["role"],
                ",".join(t["namespaces"] or ["*"]),
                t["prefix"],
                t["expires_at"] or "-",
                t["revoked_at"] or "-",
            )
            for t in tokens
        ],
    )


@token.command("revoke")
@click.argument("token_id", type=int)
@json_option
@pass_ctx
@handle_errors
def token_revoke(ctx: Context, token_id: int, as_json: bool) -> None:
    doc = ctx.client.revoke_token(token_id)
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"token {token_id} ({doc['name']}) revoked")


@cli.group()
def webhook() -> None:
    """Signed webhooks fed from the event log (admins)."""


@webhook.command("add")
@click.argument("url")
@click.option("--namespace")
@click.option("--kind", "kinds", multiple=True, help="Only these event kinds (e.g. stage.changed).")
@json_option
@pass_ctx
@handle_errors
def webhook_add(
    ctx: Context, url: str, namespace: str | None, kinds: tuple[str, ...], as_json: bool
) -> None:
    doc = ctx.client.create_webhook(url, namespace=namespace, kinds=list(kinds) or None)
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"webhook {doc['id']} -> {doc['host']}; signing secret: {doc['secret']}")


@webhook.command("list")
@json_option
@pass_ctx
@handle_errors
def webhook_list(ctx: Context, as_json: bool) -> None:
    hooks = ctx.client.list_webhooks()
    if as_json:
        emit_json(hooks)
        return
    table(
        ["ID", "HOST", "NAMESPACE", "KINDS"],
        [(h["id"], h["host"], h["namespace"] or "*", ",".join(h["kinds"] or ["*"])) for h in hooks],
    )


@webhook.command("delete")
@click.argument("webhook_id", type=int)
@json_option
@pass_ctx
@handle_errors
def webhook_delete(ctx: Context, webhook_id: int, as_json: bool) -> None:
    ctx.client.delete_webhook(webhook_id)
    if as_json:
        emit_json({"deleted": webhook_id})
    else:
        click.echo(f"webhook {webhook_id} deleted")

"""``lorareg experiment create|assign|ramp|record|show|conclude|list``: A/B tests of versions."""

from __future__ import annotations

from typing import Any

import click

from cli.app import Context, cli, handle_errors, json_option, pass_ctx
from cli.output import emit_json, table


@cli.group()
def experiment() -> None:
    """A/B experiments between versions of an adapter: split traffic, read the result,
    promote the winner."""


def _split(text: str) -> str:
    return text.replace(" ", "")


@experiment.command("create")
@click.argument("repo")
@click.argument("name")
@click.option(
    "--variant",
    "variants",
    multiple=True,
    required=True,
    metavar="NAME=REF",
    help="A variant and its version (3, v3, @production); the first is the control.",
)
@click.option("--split", required=True, help="Percent per variant in order, e.g. 80,10,10.")
@click.option("--metric", required=True, help="The primary metric (e.g. conversion).")
@click.option("--reason", help="Why (kept in the history).")
@json_option
@pass_ctx
@handle_errors
def create(
    ctx: Context,
    repo: str,
    name: str,
    variants: tuple[str, ...],
    split: str,
    metric: str,
    reason: str | None,
    as_json: bool,
) -> None:
    """Start experiment NAME on REPO."""
    pairs = []
    for v in variants:
        key, sep, ref = v.partition("=")
        if not sep or not key or not ref:
            raise click.BadParameter(f"{v!r}: write a variant as NAME=REF", param_hint="--variant")
        pairs.append((key, ref))
    info = ctx.client.experiment_create(
        repo, name, variants=pairs, split=_split(split), metric=metric, reason=reason
    )
    if as_json:
        emit_json(info)
        return
    arms = ", ".join(f"{v.name}={repo}:{v.version} ({v.percent:g}%)" for v in info.variants)
    click.echo(f"experiment {name} running on {repo}: {arms}")


@experiment.command("assign")
@click.argument("repo")
@click.argument("name")
@click.argument("subject")
@json_option
@pass_ctx
@handle_errors
def assign(ctx: Context, repo: str, name: str, subject: str, as_json: bool) -> None:
    """The variant SUBJECT gets (the same answer resolve gives)."""
    a = ctx.client.assign(repo, name, subject)
    if as_json:
        emit_json(a)
    elif a.variant is None:
        click.echo(f"production  ({repo}:{a.version}; experiment {a.state})")
    else:
        click.echo(f"{a.variant}  ({repo}:{a.version})")


@experiment.command("ramp")
@click.argument("repo")
@click.argument("name")
@click.option("--split", required=True, help="New percent per variant, e.g. 50,25,25.")
@click.option("--reason")
@json_option
@pass_ctx
@handle_errors
def ramp(ctx: Context, repo: str, name: str, split: str, reason: str | None, as_json: bool) -> None:
    """Change the split; subjects keep their variant wherever the new ranges allow."""
    info = ctx.client.experiment_ramp(repo, name, split=_split(split), reason=reason)
    if as_json:
        emit_json(info)
        return
    shares = ", ".join(f"{v.name} {v.percent:g}%" for v in info.variants)
    click.echo(f"experiment {name}: {shares}")


@experiment.command("record")
@click.argument("repo")
@click.argument("name")
@click.option("--variant", required=True)
@click.option("--metric", help="Default: the experiment's primary metric.")
@click.option("--successes", type=int, help="A rate: successes out of --trials.")
@click.option("--trials", type=int)
@click.option("--n", "n", type=int, help="A mean: observations, with --mean and --variance.")
@click.option("--mean", type=float)
@click.option("--variance", type=float, help="The sample variance of the observations.")
@json_option
@pass_ctx
@handle_errors
def record(
    ctx: Context,
    repo: str,
    name: str,
    variant: str,
    metric: str | None,
    successes: int | None,
    trials: int | None,
    n: int | None,
    mean: float | None,
    variance: float | None,
    as_json: bool,
) -> None:
    """Add outcomes of one variant (they add up with earlier records)."""
    outcome: dict[str, Any] = {"variant": variant, "metric": metric}
    for key, value in (
        ("successes", successes),
        ("trials", trials),
        ("n", n),
        ("mean", mean),
        ("variance", variance),
    ):
        if value is not None:
            outcome[key] = value
    ctx.client.experiment_record(repo, name, **outcome)
    if as_json:
        emit_json({"recorded": outcome})
    else:
        click.echo(f"recorded for {variant} in {name}")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _num(x: float | None, rate: bool) -> str:
    if x is None:
        return "-"
    return f"{100 * x:+.2f} pts" if rate else f"{x:+.4g}"


@experiment.command("show")
@click.argument("repo")
@click.argument("name")
@json_option
@pass_ctx
@handle_errors
def show(ctx: Context, repo: str, name: str, as_json: bool) -> None:
    """Per variant: exposures, rate or mean with its 95 % interval, lift against control,
    p-value, chance to beat control; and the sample-ratio-mismatch check."""
    r = ctx.client.experiment_show(repo, name)
    if as_json:
        emit_json(r)
        return
    e = r.experiment
    shares = ", ".join(f"{v.name}={repo}:{v.version} {v.percent:g}%" for v in e.variants)
    click.echo(f"experiment {e.name} on {repo} ({e.state}; base {e.base_model}): {shares}")
    if e.winner:
        click.echo(f"winner: {e.winner}")
    for mr in r.metrics:
        rate = mr.kind == "rate"
        click.echo(f"\n{mr.metric} ({'rate' if rate else 'mean'})")
        rows = []
        for v in mr.variants:
            value = _pct(v.value) if rate else ("-" if v.value is None else f"{v.value:.4g}")
            if v.low is None or v.high is None:
                interval = "-"
            elif rate:
                interval = f"[{_pct(v.low)}, {_pct(v.high)}]"
            else:
                interval = f"[{v.low:.4g}, {v.high:.4g}]"
            lift = "control" if v.control else _num(v.lift, rate)
            if not v.control and v.lift_low is not None and v.lift_high is not None:
                lift += f" [{_num(v.lift_low, rate)}, {_num(v.lift_high, rate)}]"
            rows.append(
                [
                    v.variant,
                    v.exposures,
                    value,
                    interval,
                    lift,
                    "-" if v.p_value is None else f"{v.p_value:.3g}",
                    "-" if v.chance_to_beat is None else f"{100 * v.chance_to_beat:.1f}%",
                ]
            )
        table(["VARIANT", "EXPOSURES", "VALUE", "95% CI", "LIFT", "P", "BEATS CONTROL"], rows)
    if r.srm is None:
        click.echo("\nSRM check: not enough exposures yet")
    elif r.srm.mismatch:
        click.echo(
            f"\nWARNING: sample ratio mismatch (chi2 {r.srm.chi2:.1f}, p = {r.srm.p_value:.2g}):"
            " exposures do not follow the split; check assignment and logging before trusting"
            " these results",
            err=True,
        )
    else:
        click.echo(f"\nSRM check: ok (p = {r.srm.p_value:.2g})")


@experiment.command("conclude")
@click.argument("repo")
@click.argument("name")
@click.option("--winner", required=True, help="The variant to promote to production.")
@click.option("--reason", help="Why (kept in the history; some policies require it).")
@json_option
@pass_ctx
@handle_errors
def conclude(
    ctx: Context, repo: str, name: str, winner: str, reason: str | None, as_json: bool
) -> None:
    """Promote the winner through the promotion policy (gates, role, reason) and end NAME."""
    c = ctx.client.experiment_conclude(repo, name, winner=winner, reason=reason)
    if as_json:
        emit_json(c)
        return
    what = "gates passed" if c.promoted else "already in production"
    click.echo(f"{repo}:{c.version} -> production ({what}); experiment {name} concluded")


@experiment.command("list")
@click.argument("repo")
@click.option("--running", is_flag=True, help="Only running experiments.")
@json_option
@pass_ctx
@handle_errors
def list_(ctx: Context, repo: str, running: bool, as_json: bool) -> None:
    """Experiments of REPO, newest first."""
    items = ctx.client.experiment_list(repo, running=running)
    if as_json:
        emit_json(items)
        return
    rows = [
        [
            e.name,
            e.state,
            ", ".join(f"{v.name}:{v.version} {v.percent:g}%" for v in e.variants),
            e.metric,
            e.winner or "-",
            e.created_by,
        ]
        for e in items
    ]
    table(["NAME", "STATE", "VARIANTS", "METRIC", "WINNER", "BY"], rows)

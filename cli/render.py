"""What the read commands print (``list``, ``show``, ``history``, ``jobs``), shared by the
click commands and the start-up fast path (``cli.fast_path``), so both print the same bytes.

The values are the domain models (``AdapterSummary``, ``VersionInfo``, ``EventInfo``, job
documents) or the fast path's ``registry.client.fast_reads.Record``, which answers the same
attributes and ``model_dump``. Only click and the standard library are imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from cli.output import age, emit_json, human_size, table


def print_adapters(adapters: Sequence[Any], namespace: str | None, *, as_json: bool) -> None:
    """``lorareg list``: one row per adapter, or the JSON list."""
    if as_json:
        emit_json(adapters)
        return
    if not adapters:
        click.echo("no adapters" + (f" in {namespace}" if namespace else ""))
        return
    table(
        ["ADAPTER", "VERSIONS", "LATEST", "BASE", "UPDATED"],
        [
            (f"{a.namespace}/{a.name}", a.versions, a.latest, a.base_model, age(a.updated_at))
            for a in adapters
        ],
    )


def print_version(v: Any, checks: list[dict[str, Any]], *, as_json: bool) -> None:
    """``lorareg show``: the version's fields, its stored checks and its files."""
    if as_json:
        emit_json({**v.model_dump(mode="json"), "checks": checks})
        return
    targets = ", ".join(sorted(v.target_modules))
    lines = [
        ("version", v.ref),
        ("content id", v.content_id),
        ("base model", v.base_model or "-"),
        ("stage", v.stage or "-"),
        ("aliases", ", ".join(v.aliases) or "-"),
        ("lora", f"r={v.r} alpha={v.lora_alpha:g} targets={targets}"),
        ("options", _options(v.config)),
        ("size", f"{human_size(v.size)} in {v.file_count} file(s)"),
        ("author", v.author),
        ("created", f"{v.created_at:%Y-%m-%d %H:%M:%S} ({age(v.created_at)})"),
        ("parent", str(v.parent) if v.parent else "-"),
        ("description", v.description or "-"),
        ("tags", ", ".join(f"{k}={val}" for k, val in v.tags.items()) or "-"),
        ("evals", ", ".join(f"{e.metric}={e.value:g}" for e in v.evals) or "-"),
    ]
    if v.kind == "merged":  # full weights: no rank, alpha or targets to show
        at = [k for k, _ in lines].index("lora")
        rest = [(k, val) for k, val in lines[at:] if k not in ("lora", "options")]
        lines = [*lines[:at], *_merged_lines(v), *rest]
    for k, val in lines:
        click.echo(f"{k + ':':<13}{val}")
    for c in checks:
        engines = c["report"].get("engines", {})
        ok = [e["display_name"] for e in engines.values() if e["verdict"] in ("pass", "warn")]
        click.echo(
            f"{'check:':<13}{c['verdict']} against {c['base_model']}"
            f" (servable by: {', '.join(ok) or 'none'})"
        )
    click.echo("files:")
    for f in v.files:
        click.echo(f"  {f.path:<40} {human_size(f.size):>10}  sha256:{f.sha256[:16]}")


def _merged_lines(v: Any) -> list[tuple[str, str]]:
    """A merged model is full weights: what it was merged from, not a rank and alpha."""
    inputs = ", ".join(f"{i['ref']} x{i['weight']:g}" for i in v.config.get("inputs") or [])
    return [
        ("kind", "merged model (full weights)"),
        ("merged from", f"{v.config.get('method')} of {inputs} (job {v.config.get('job')})"),
    ]


def _options(config: dict) -> str:  # type: ignore[type-arg]
    flags = [k for k in ("use_rslora", "use_dora", "fan_in_fan_out") if config.get(k)]
    flags += [k for k in ("rank_pattern", "alpha_pattern", "modules_to_save") if config.get(k)]
    flags += [k for k in ("lora_bias",) if config.get(k)]
    if config.get("bias", "none") != "none":
        flags.append(f"bias={config['bias']}")
    if config.get("init_lora_weights", True) is not True:
        flags.append(f"init_lora_weights={config['init_lora_weights']}")
    return ", ".join(flags) or "-"


def print_history(events: Sequence[Any], *, whole_namespace: bool, as_json: bool) -> None:
    """``lorareg history``: one row per event, oldest first (an ADAPTER column for a whole
    namespace)."""
    if as_json:
        emit_json(events)
        return
    rows = [
        [
            e.id,
            f"{e.created_at:%Y-%m-%d %H:%M:%S}",
            e.kind,
            *([f"{e.namespace}/{e.adapter}" if e.adapter else "-"] if whole_namespace else []),
            e.version,
            e.actor,
            _details(e.payload),
        ]
        for e in events
    ]
    adapter_col = ["ADAPTER"] if whole_namespace else []
    table(["ID", "WHEN", "WHAT", *adapter_col, "VERSION", "WHO", "DETAILS"], rows)


def _details(payload: dict) -> str:  # type: ignore[type-arg]
    """``key=value`` pairs; evals as ``metric=value``, policies as their settings."""
    parts = []
    for k, v in payload.items():
        if k == "size" or v in (None, [], {}, False):
            continue
        if k == "content_id":
            parts.append(f"{k}={str(v)[:12]}")
        elif k == "evals" and isinstance(v, list):
            parts += [_plain_value(e) for e in v]
        elif isinstance(v, dict):  # a policy's rules: its settings, defaults left out
            parts += [f"{sk}={_plain_value(sv)}" for sk, sv in v.items()
                      if sv not in (None, [], {}, False, 0.0)]  # fmt: skip
        else:
            parts.append(f"{k}={_plain_value(v)}")
    text = " ".join(parts)
    return text if len(text) <= 120 else text[:117] + "..."


def _plain_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        if "metric" in value and "value" in value:  # an eval record
            on = f"@{value['dataset']}" if value.get("dataset") else ""
            return f"{value['metric']}={_plain_value(value['value'])}{on}"
        return ",".join(f"{k}:{_plain_value(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ",".join(_plain_value(v) for v in value)
    return str(value)


def print_jobs(docs: Sequence[dict[str, Any]], *, as_json: bool) -> None:
    """``lorareg jobs``: the newest jobs, one row each."""
    if as_json:
        emit_json(docs)
        return
    table(
        ["ID", "STATE", "PROGRESS", "OUTPUT", "INPUTS", "CREATED"],
        [
            (
                d["id"],
                d["state"],
                f"{d['progress'] * 100:.0f}%",
                d["output"] or d["spec"]["output"],
                ",".join(i["ref"] for i in d["spec"]["inputs"]),
                d["created_at"][:19].replace("T", " "),
            )
            for d in docs
        ],
    )

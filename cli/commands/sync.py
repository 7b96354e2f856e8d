"""sync: keep a serving node's adapter folder equal to a stage or alias."""

from __future__ import annotations

import re
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import click

from cli.app import Context, cli, handle_errors, json_option, pass_ctx
from cli.metrics import metrics_options, start_metrics
from cli.output import age, emit_json, table
from registry.domain import Stage

STAGES = tuple(s.value for s in Stage)


def _log(message: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    click.echo(f"{stamp} {message}", err=True)


@cli.command()
@click.option("--to", "dest", type=click.Path(path_type=Path), help="Folder to keep in sync.")
@click.option("--base", help="Base model name: only versions for this base are synced.")
@click.option("--stage", type=click.Choice(STAGES), help="Stage to sync (default: production).")
@click.option("--alias", help="Sync what this alias points to instead of a stage.")
@click.option("--namespace", help="Only adapters of this namespace.")
@click.option(
    "--served-model-name",
    "model_name",
    help="The name the engine serves the base as, written to base_model_name_or_path"
    " (default: --base).",
)
@click.option("--follow", is_flag=True, help="Keep following the change feed.")
@click.option(
    "--engine-url",
    "engine_urls",
    multiple=True,
    metavar="URL",
    help="A vLLM server to switch when an adapter moves (repeatable): it loads the new"
    " version folder under the same name (needs VLLM_ALLOW_RUNTIME_LORA_UPDATING=True).",
)
@click.option("--prune", is_flag=True, help="Remove adapters no longer in the stage or alias.")
@click.option(
    "--grace",
    default=300.0,
    show_default=True,
    help="Seconds a replaced version folder stays readable before it is removed.",
)
@click.option(
    "--all",
    "every",
    is_flag=True,
    help="Every adapter the stage or alias names in scope (the default, said explicitly).",
)
@click.option(
    "--max-bytes",
    help="Disk budget of the folder (10G, 500M): least recently used adapters not pinned"
    " are evicted to stay within it.",
)
@click.option(
    "--pin",
    "pins",
    multiple=True,
    metavar="NS/NAME",
    help="Never evict this adapter (NS/* for a namespace); repeatable.",
)
@metrics_options
@click.option(
    "--status",
    "status_dir",
    type=click.Path(path_type=Path),
    help="Print what the folder DIR holds and exit.",
    metavar="DIR",
)
@json_option
@pass_ctx
@handle_errors
def sync(
    ctx: Context,
    dest: Path | None,
    base: str | None,
    stage: str | None,
    alias: str | None,
    namespace: str | None,
    model_name: str | None,
    follow: bool,
    engine_urls: tuple[str, ...],
    prune: bool,
    grace: float,
    every: bool,
    max_bytes: str | None,
    pins: tuple[str, ...],
    metrics_port: int | None,
    metrics_host: str,
    status_dir: Path | None,
    as_json: bool,
) -> None:
    """Write the adapters in a stage (or alias) for one base model into a folder, one
    folder per adapter at DIR/namespace/name, as vLLM's filesystem resolver, SGLang,
    LoRAX and PEFT load them; with --follow, apply every change within a second.

    Each update is atomic for readers: DIR/namespace/name is a link swapped by rename to
    a complete version folder. Progress goes to stderr, one line per change.
    DIR/.lorareg/manifest.json lists every adapter with its version folder's path.
    """
    if status_dir is not None:
        if dest is not None or follow or prune:
            raise click.UsageError("--status DIR only reads a folder; give it alone")
        _print_status(status_dir, as_json)
        return
    if dest is None or base is None:
        raise click.UsageError("give --to DIR and --base NAME (or --status DIR)")
    if stage and alias:
        raise click.UsageError("give --stage or --alias, not both")
    fleet = _fleet_options(max_bytes, pins)
    if metrics_port is not None:
        start_metrics(metrics_host, metrics_port, _sync_collectors(dest))
    _run(ctx, dest, base, alias or stage or "production", namespace, model_name, follow, prune,
         grace, as_json, fleet, engine_urls)  # fmt: skip


def _fleet_options(max_bytes: str | None, pins: tuple[str, ...]) -> dict[str, Any]:
    from registry.catalog.quotas import parse_size
    from registry.sync.budget import check_pins

    return {
        "max_bytes": parse_size(max_bytes) if max_bytes is not None else None,
        "pins": check_pins(pins),
    }


def _sync_collectors(dest: Path) -> list[Any]:
    from registry.sync.metrics import FolderCollector

    return [FolderCollector(dest)]


def _run(
    ctx: Context,
    dest: Path,
    base: str,
    ref: str,
    namespace: str | None,
    model_name: str | None,
    follow: bool,
    prune: bool,
    grace: float,
    as_json: bool,
    fleet: dict[str, Any],
    engine_urls: tuple[str, ...] = (),
) -> None:
    from registry.catalog.refs import check_base_name, check_name
    from registry.lifecycle.stages import check_alias
    from registry.sync import Follower, SyncOptions, folder_status, source_for

    check_base_name(base)
    if namespace:
        check_name(namespace, what="namespace")
    if ref not in STAGES:
        check_alias(ref)
    _require_known_base(ctx, base, namespace)
    options = SyncOptions(
        base=base, ref=ref, namespace=namespace, prune=prune, model_name=model_name, grace_s=grace,
        **fleet,
    )  # fmt: skip
    layout, notifier = _layout(dest, engine_urls, ref)
    follower = Follower(layout, source_for(ctx.client), options, log=_log)

    def stop(_sig: int, _frame: FrameType | None) -> None:
        _log("stopping")
        follower.stop.set()
        if follower.idle:
            # Blocked on the long poll: leave now rather than when it answers. A change
            # under way is finished first (with its state and log line).
            raise SystemExit(0)

    if follow:
        signal.signal(signal.SIGTERM, stop)
    try:
        if notifier is not None:
            notifier.start()
        follower.run(follow=follow)
    except OSError as exc:
        click.echo(f"error: {dest}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    finally:
        if notifier is not None:
            notifier.reconcile()  # a one-shot sync still leaves every engine switched
            notifier.close()
    if as_json:
        emit_json(folder_status(dest))


def _layout(dest: Path, engine_urls: tuple[str, ...], ref: str) -> tuple[Any, Any]:
    """The folder's layout, and the notifier that switches ``engine_urls`` (if any)."""
    from registry.sync import NodeLayout

    if not engine_urls:
        return NodeLayout(dest), None
    from registry.sync.engines import EngineAwareLayout, EngineNotifier, VllmEngine

    for url in engine_urls:
        if not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", url):
            raise click.BadParameter(
                f"{url!r} is not an http:// or https:// URL", param_hint="--engine-url"
            )
    layout = EngineAwareLayout(dest)

    # vLLM's filesystem resolver names an adapter DIR/namespace/name "namespace/name";
    # lorareg's plugin also knows "namespace/name@REF".
    def names(repo: Any) -> list[str]:
        return [str(repo), f"{repo}@{ref}"]

    layout.notifier = EngineNotifier(
        layout, [VllmEngine(u) for u in engine_urls], log=_log, names=names
    )
    return layout, layout.notifier


def _require_known_base(ctx: Context, base: str, namespace: str | None) -> None:
    """A typo in --base would sync nothing forever: the base must be registered or be the
    base of some adapter."""
    from registry.errors import BaseModelNotFound

    if any(b["name"] == base for b in ctx.client.list_bases()):
        return
    if any(a.base_model == base for a in ctx.client.list_adapters(namespace)):
        return
    raise BaseModelNotFound(
        f"unknown base model {base!r}: it is not registered and no adapter"
        f"{' in ' + namespace if namespace else ''} is for it; `lorareg base list` and"
        " `lorareg list` show the names (register it with `lorareg base add` to sync it"
        " before its first adapter)"
    )


def _print_status(root: Path, as_json: bool) -> None:
    from registry.sync import folder_status

    st = folder_status(root)
    if as_json:
        emit_json(st)
        return
    scope = f"namespace {st['namespace']}" if st["namespace"] else "all namespaces"
    click.echo(f"{st['folder']}: {st['ref']} for {st['base']} ({scope}), from {st['registry']}")
    running = f"following (pid {st['pid']})" if st["following"] else "no sync process running"
    lag = f"{st['lag_s']:.1f} s" if st["lag_s"] is not None else "never caught up"
    click.echo(f"{running}; last event {st['last_event_id']}; lag {lag}")
    rows: list[list[Any]] = [
        [a["adapter"], f"v{a['version']}", a["content_id"][:12], _ago(a["synced_at"]), a["state"]]
        for a in st["adapters"]
    ]
    table(["ADAPTER", "VERSION", "CONTENT", "SYNCED", "STATE"], rows)


def _ago(iso: str) -> str:
    return age(datetime.fromisoformat(iso))

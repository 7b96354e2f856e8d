"""``--metrics-port`` and ``--metrics-host`` for long-running commands (sync, worker)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def metrics_options(fn: F) -> F:
    """Add the two options; the command receives ``metrics_port`` and ``metrics_host``."""
    fn = click.option(
        "--metrics-host",
        default="127.0.0.1",
        show_default=True,
        help="Address for --metrics-port (0.0.0.0: every interface; the figures hold no"
        " adapter names).",
    )(fn)
    return click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        help="Serve Prometheus metrics on http://HOST:PORT/metrics (0 picks a free port).",
    )(fn)


def start_metrics(host: str, port: int, extra: Iterable[Any] = ()) -> None:
    """Start the listener and say where it is on stderr."""
    from registry.observability.exposition import serve_metrics

    bound = serve_metrics(host, port, extra)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"metrics on http://{shown}:{bound}/metrics", err=True)

"""What `merge` and `compose` share once their job is queued: the --wait options, the
warning when no worker will run it, the wait itself and the exit status it ends with."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cli.app import Context

F = TypeVar("F", bound=Callable[..., Any])


def wait_options(what: str) -> Callable[[F], F]:
    """``--wait`` (for ``what``) and ``--claim-timeout``, in that order in --help."""

    def apply(f: F) -> F:
        f = click.option(
            "--claim-timeout",
            default=60.0,
            type=click.FloatRange(min=0),
            show_default=True,
            help="With --wait on a server: give up when no worker claimed the job in this many"
            " seconds and none has been seen since.",
        )(f)
        return click.option(
            "--wait", is_flag=True, help=f"Wait for the {what} (runs it here without a server)."
        )(f)

    return apply


def follow_job(
    ctx: Context,
    job: dict[str, Any],
    *,
    wait: bool,
    claim_timeout: float,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Warn when no worker will run the queued ``job``; with ``wait``, block until it ends
    (run here without a server) and return it as it ended."""
    if not (wait and not ctx.settings.url):  # else this process runs the job itself
        warn_without_worker(ctx.client.workers())
    if not wait:
        return job
    return ctx.client.wait_job(job["id"], progress=progress, claim_timeout_s=claim_timeout)


def exit_unless_succeeded(job: dict[str, Any], *, as_json: bool) -> None:
    """Exit 1 (saying why, unless the answer is JSON) when a waited-for job did not succeed."""
    if job["state"] == "succeeded":
        return
    if not as_json:
        click.echo(f"job {job['id']} {job['state']}: {job['error']}", err=True)
    sys.exit(1)


def warn_without_worker(workers: dict[str, Any]) -> None:
    seen = workers.get("seconds_since_seen")
    if workers.get("in_process") or (seen is not None and seen < 600):
        return
    last = "ever" if seen is None else f"for {seen:.0f} s"
    click.echo(
        f"warning: no merge worker has been seen {last}; the job stays queued until"
        " `lorareg worker` (or an embedded `lorareg serve`) runs",
        err=True,
    )

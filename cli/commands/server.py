"""``lorareg serve`` and ``lorareg db upgrade``."""

from __future__ import annotations

import errno
import socket
import sys
import time
from typing import Any

import click

from cli.app import Context, cli, handle_errors, json_option, pass_ctx
from cli.metrics import metrics_options, start_metrics
from cli.output import emit_json


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0 picks a free port.",
)
@pass_ctx
@handle_errors
def serve(ctx: Context, host: str, port: int) -> None:
    """Run the API at /api/v1, the dashboard at /ui/ and, in embedded mode (SQLite), a
    merge worker in this process (production runs `lorareg worker`s instead)."""
    import uvicorn

    from registry.api.server import Server
    from registry.db.schema_version import is_current
    from registry.errors import InvalidInput
    from registry.runtime import open_runtime
    from registry.server import create_app

    settings = ctx.settings
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    if settings.auth == "open" and not loopback:
        raise InvalidInput(
            f"refusing to serve {host} without auth; set LORAREG_AUTH=required (or auto)"
        )
    require_auth = settings.auth == "required" or not loopback
    rt = open_runtime(settings)
    if require_auth and not _has_admin_token(rt):
        raise InvalidInput(
            f"serving {host} needs API tokens and there is no admin token yet; create one with"
            " `lorareg token create --name admin --role admin` (run it here, without LORAREG_URL)"
        )
    if not is_current(rt.db):
        raise InvalidInput("the catalog schema is not up to date; run `lorareg db upgrade` first")
    # Bind before saying "serving": a port in use is one clear line, not a banner and exit 3.
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"lorareg serving on http://{shown}:{bound}  catalog={_redact(rt.db.url)}"
        f"  storage={rt.store.url}",
        err=True,
    )
    click.echo(f"auth: {'tokens required' if require_auth else 'open (loopback only)'}", err=True)
    if require_auth and rt.settings.secret_key is None:
        click.echo(
            "note: LORAREG_SECRET_KEY is unset; dashboard sessions are signed with the token"
            " hashes alone (set one value on every replica to add a server secret)",
            err=True,
        )
    # Embedded (SQLite) mode runs merges in-process; production runs `lorareg worker`s.
    app = create_app(rt, require_auth=require_auth, worker=rt.db.is_sqlite)
    import gc

    # Everything imported so far (torch included) lives for the whole process: keep the
    # collector from re-scanning it on every request burst (measured: lower p99 on resolve).
    gc.collect()
    gc.freeze()
    # Ends the feed's streams first: uvicorn would wait for them forever.
    server = Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S))
    server.run(sockets=[sock])


# How long an idle keep-alive connection stays open. uvicorn's default (5 s) races clients:
# a request sent on a pooled connection just as the server closes it fails with "server
# disconnected without a response" (seen under load, when a client thread stalls ~5 s between
# calls). Longer than the usual idle timeouts of load balancers (AWS ALB: 60 s) and client
# pools, so it is the client or proxy that closes an idle connection, never a request in flight.
KEEP_ALIVE_S = 75


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on HOST:PORT, or InvalidInput saying why there cannot be one."""
    from registry.errors import InvalidInput

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise InvalidInput(f"cannot serve on {host!r}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InvalidInput(
                f"port {port} is taken on {host}; stop what is using it or pick another with --port"
            ) from None
        raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)  # connections made before uvicorn starts wait in the backlog
    return sock


def _has_admin_token(rt: object) -> bool:
    from registry.lifecycle.access import list_tokens

    return any(
        t.role == "admin" and t.revoked_at is None
        for t in list_tokens(rt.db)  # type: ignore[attr-defined]
    )


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@cli.group()
def db() -> None:
    """Catalog schema management."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@json_option
@pass_ctx
@handle_errors
def db_upgrade(ctx: Context, revision: str, as_json: bool) -> None:
    """Apply Alembic migrations to the configured catalog."""
    from registry.db.migrate import current_revision, upgrade
    from registry.errors import InvalidInput
    from registry.runtime import open_database

    database = open_database(ctx.settings)
    database.ping()  # an unreachable database is one line, not a driver traceback
    before = current_revision(database)
    from alembic.util import CommandError

    try:
        upgrade(database, revision)
    except CommandError as exc:
        raise InvalidInput(f"--revision {revision!r}: {exc}") from None
    after = current_revision(database)
    database.dispose()
    if as_json:
        emit_json({"from": before, "to": after})
    else:
        click.echo(f"catalog schema: {before or 'empty'} -> {after}")


@cli.command()
@click.option("--lease-seconds", default=30.0, show_default=True, type=click.FloatRange(1, 3600))
@click.option("--poll-seconds", default=1.0, show_default=True, type=click.FloatRange(0.05, 600))
@click.option(
    "--regions-only",
    is_flag=True,
    help="Only copy blobs to the regional stores (LORAREG_REGIONS); no merge jobs, no torch.",
)
@metrics_options
@pass_ctx
@handle_errors
def worker(
    ctx: Context,
    lease_seconds: float,
    poll_seconds: float,
    regions_only: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Claim and run merge jobs from the catalog until interrupted (SIGINT or SIGTERM);
    with regions configured, also copy new blobs to the regional stores (and check the
    externally replicated ones). Logs each claim, success, failure and the shutdown on
    stderr. With --metrics-port, serves Prometheus metrics (its jobs, the queue's depth
    and ages, region copies) on /metrics."""
    import logging
    import signal
    import threading

    from registry.errors import InvalidInput
    from registry.runtime import open_runtime

    if regions_only and not ctx.settings.regions:
        raise InvalidInput(
            "--regions-only: no regions are configured; set LORAREG_REGIONS (a JSON list)"
        )
    if not regions_only:
        from registry.merge.inputs import require_torch

        require_torch()
    from registry.regions import open_regions
    from registry.regions.worker import ReplicationWorker

    rt = open_runtime(ctx.settings)
    if metrics_port is not None:
        from registry.observability.exposition import JobQueueCollector

        start_metrics(metrics_host, metrics_port, [JobQueueCollector(rt.db)])
    regions = open_regions(rt.settings, rt.store)
    replicator = None
    if regions.enabled:
        replicator = ReplicationWorker(
            regions,
            rt.db,
            lease_s=rt.settings.region_lease_s,
            interval_s=rt.settings.region_interval_s,
        )
    if regions_only:
        assert replicator is not None
        w: Any = replicator
    else:
        from registry.merge.worker import Worker
        from registry.services.jobs import job_runners

        w = Worker(rt, lease_s=lease_seconds, poll_s=poll_seconds, runners=job_runners())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s.%(msecs)03dZ %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    log = logging.getLogger("lorareg.worker")
    log.addHandler(handler)
    log.setLevel(logging.INFO)

    logging.getLogger("lorareg.regions").addHandler(handler)
    logging.getLogger("lorareg.regions").setLevel(logging.INFO)

    def stop(*_: object) -> None:
        log.info("worker %s stopping (after the job in hand, if any)", w.worker_id)
        w.stop.set()
        if replicator is not None:
            replicator.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    side = None
    if replicator is not None and replicator is not w:
        side = threading.Thread(target=replicator.run_forever, name="replication", daemon=True)
        side.start()
    if replicator is not None:
        log.info("worker %s copying to regions %s", w.worker_id, ", ".join(regions.names[1:]))
    log.info("worker %s waiting for %s", w.worker_id, "copies" if regions_only else "jobs")
    try:
        w.run_forever()
    finally:
        if side is not None:
            side.join(timeout=30)
        regions.close()
        rt.close()
        log.info("worker %s stopped", w.worker_id)
        log.removeHandler(handler)

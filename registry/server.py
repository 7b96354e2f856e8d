"""The FastAPI app factory: builds the app from a Runtime; nothing happens at import.

It sits above both edges it joins (the API routers and the dashboard), so neither `api/`
nor `web/` imports the other's app.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from registry import __version__
from registry.api.docs import install_docs
from registry.api.errors import install_error_handlers
from registry.api.feed import EventHub
from registry.api.limits import RequestLimits
from registry.api.origins import BrowserGuard
from registry.api.request_metrics import RequestMetrics
from registry.api.routers import adapters, admin, compat, health, hf, jobs, lifecycle, resolve
from registry.api.routers import metrics as metrics_router
from registry.api.routers.events import router as events_router
from registry.api.routers.experiments import include as include_experiments
from registry.api.routers.library import router as library_router
from registry.api.routers.namespaces import router as namespaces_router
from registry.api.routers.regions import router as regions_router
from registry.api.waits import WaitLimiter
from registry.observability.exposition import forget_this_process
from registry.regions import open_regions
from registry.regions.router import ReadRouter, RegionHealth
from registry.runtime import Runtime
from registry.storage.spool import spool_for
from registry.web.routes import install_dashboard


def create_app(
    runtime: Runtime,
    *,
    require_auth: bool | None = None,
    background: bool = True,
    worker: bool = False,
) -> FastAPI:
    """The API for ``runtime``.

    ``require_auth``: every request needs a bearer token (default: settings.auth ==
    "required"); otherwise requests without a token act as the local admin, which
    ``lorareg serve`` allows only on a loopback address. ``background`` runs the webhook
    delivery loop (and, with regions, the regional stores' health probe) while the app
    is up; ``worker`` runs a merge worker thread and, with regions, a replication worker
    (embedded mode, so neither needs an extra process).
    """

    spool = spool_for(runtime.settings.effective_cache_dir)
    regions = open_regions(runtime.settings, runtime.store)
    region_health = RegionHealth()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Spool files of killed servers sharing this cache folder (live ones are kept).
        await run_in_threadpool(spool.sweep_dead)
        dispatcher = None
        if background:
            from registry.lifecycle.dispatcher import WebhookDispatcher

            dispatcher = WebhookDispatcher(
                runtime.db,
                interval_s=runtime.settings.webhook_interval_s,
                allow_hosts=runtime.settings.webhook_allow_hosts,
            )
            dispatcher.start()
        merge_worker, thread = None, None
        if worker and not _torch_available():
            from registry.merge.service import TORCH_INSTALL

            # Checked once: torch installed later does not start a worker in this process.
            _app.state.merge_refusal = (
                "this server runs merges in its own process but started without PyTorch;"
                f" install it ({TORCH_INSTALL}) and restart `lorareg serve`"
            )
        elif worker:
            import threading

            from registry.merge.worker import Worker
            from registry.services.jobs import job_runners

            merge_worker = Worker(runtime, runners=job_runners())
            thread = threading.Thread(
                target=merge_worker.run_forever, name="merge-worker", daemon=True
            )
            thread.start()
            _app.state.merge_worker = True
        region_threads = _start_region_threads(
            runtime, regions, region_health, probe=background, replicate=worker
        )
        try:
            yield
        finally:
            for stop, t in region_threads:
                stop.set()
                t.join(timeout=30)
            regions.close()
            forget_this_process()  # its live gauges leave shared metrics (multi-process)
            feed.close()  # after the connections closed; ``registry.api.server`` ends them
            if dispatcher is not None:
                dispatcher.stop()
            if merge_worker is not None and thread is not None:
                merge_worker.stop.set()
                thread.join(timeout=30)

    app = FastAPI(
        title="lorareg",
        version=__version__,
        description="A registry for LoRA adapters. Errors are "
        '`{"error": {"code": "...", "message": "..."}}` with a stable code.',
        lifespan=lifespan,
        docs_url=None,  # served from packaged assets by install_docs, not from a CDN
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.auth_required = (
        runtime.settings.auth == "required" if require_auth is None else require_auth
    )
    app.state.presign_cache = resolve.PresignCache()
    app.state.regions = regions
    app.state.read_router = ReadRouter(regions, runtime.db, region_health)
    app.state.waits = WaitLimiter(runtime.settings.max_waits_per_token)
    app.state.feed = feed = EventHub(runtime.db)  # watches the catalog from the first wait
    app.state.behind_https = runtime.settings.behind_https  # dashboard cookies: Secure
    app.state.spool = spool
    app.state.merge_worker = False
    app.state.merge_refusal = None
    install_error_handlers(app)
    app.add_middleware(resolve.ResolveFastPath)  # repeated resolves, before routing
    app.add_middleware(RequestLimits)
    install_docs(app)
    app.include_router(health.router)
    app.include_router(metrics_router.router)  # /metrics (Prometheus)
    app.include_router(resolve.router)  # early: routes are matched in order, this is the hot one
    app.include_router(adapters.router)
    app.include_router(lifecycle.router)
    app.include_router(admin.router)
    app.include_router(events_router)  # the change feed: list, long poll, Server-Sent Events
    app.include_router(compat.router)
    app.include_router(jobs.router)
    app.include_router(library_router)  # compose, interference, analysis, compression
    app.include_router(namespaces_router)  # offboarding and quotas
    app.include_router(regions_router)  # regional stores and their replication
    include_experiments(app)  # A/B experiments between versions
    install_dashboard(app)  # /ui/ pages and their static files; / redirects there
    app.include_router(hf.router)  # last: /{ns}/{name}/resolve/... would shadow other routes
    # Outermost: a rebinding name or a cross-site write is refused before any other work.
    app.add_middleware(BrowserGuard, open_server=not app.state.auth_required)
    app.add_middleware(RequestMetrics)  # outermost of all: counts the refusals above too
    return app


def _start_region_threads(
    runtime: Runtime, regions: Any, health: RegionHealth, *, probe: bool, replicate: bool
) -> list[tuple[threading.Event, threading.Thread]]:
    """With regions configured: a thread probing the regional stores (so readers skip a
    region that is down) and, in embedded mode, a replication worker."""
    started: list[tuple[threading.Event, threading.Thread]] = []
    if not regions.enabled:
        return started
    if probe:
        stop = threading.Event()

        def probe_loop() -> None:
            while not stop.is_set():
                for region in regions.replicas():
                    health.probe(region)
                stop.wait(runtime.settings.region_interval_s * 5)

        t = threading.Thread(target=probe_loop, name="region-probe", daemon=True)
        t.start()
        started.append((stop, t))
    if replicate:
        from registry.regions.worker import ReplicationWorker

        w = ReplicationWorker(
            regions,
            runtime.db,
            lease_s=runtime.settings.region_lease_s,
            interval_s=runtime.settings.region_interval_s,
            health=health,
        )
        t = threading.Thread(target=w.run_forever, name="replication-worker", daemon=True)
        t.start()
        started.append((w.stop, t))
    return started


def _torch_available() -> bool:
    """The in-process merge worker needs torch; without it the registry serves the rest and
    merge requests are refused with how to install it."""
    import logging

    from registry.merge.service import torch_installed

    if torch_installed():
        return True
    from registry.merge.service import TORCH_INSTALL

    logging.getLogger("lorareg").warning(
        "no merge worker: PyTorch is not installed (%s, then restart)", TORCH_INSTALL
    )
    return False

"""Serving the metrics: the text a scrape gets, the job-queue figures read at scrape
time, and the small HTTP listener ``lorareg sync`` and ``lorareg worker`` start with
``--metrics-port``.

With ``PROMETHEUS_MULTIPROC_DIR`` set (prometheus_client reads it when it is imported,
and this module asks prometheus_client which mode it chose rather than reading the
environment again), each scrape sums the values every process wrote to that folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from registry.db import models as m
from registry.db.database import Database
from registry.errors import InvalidInput

CONTENT_TYPE = CONTENT_TYPE_LATEST
log = logging.getLogger("lorareg.metrics")


def multiprocess_mode() -> bool:
    """True when prometheus_client writes values to ``PROMETHEUS_MULTIPROC_DIR``."""
    return values.ValueClass is not values.MutexValue


class _ThisProcess:
    # The default registry, as one collector of a per-scrape registry.
    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


def scrape_registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry holding every lorareg metric (all processes' in multi-process mode) and
    ``extra`` collectors, which run at each scrape."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_mode():
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())  # type: ignore[arg-type]
    for collector in extra:
        registry.register(collector)
    return registry


def render(extra: Iterable[Collector] = ()) -> bytes:
    """The Prometheus text exposition of every metric plus ``extra``."""
    return generate_latest(scrape_registry(extra))


class JobQueueCollector:
    """Queued and running merge jobs and the age of the oldest of each, read at scrape
    time: one grouped query on the ``(state, id)`` index, so scraping stays cheap."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def describe(self) -> list[Any]:
        return []  # nothing to check at registration: no query until a scrape

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            rows = self._rows()
        except Exception:  # a scrape must answer even when the catalog does not
            log.warning("job queue metrics unavailable", exc_info=True)
            return
        depth = GaugeMetricFamily(
            "lorareg_jobs", "Merge jobs queued or running now.", labels=["state"]
        )
        age = GaugeMetricFamily(
            "lorareg_job_oldest_age_seconds",
            "Age of the oldest queued job (since it was queued) and of the longest-running"
            " job (since it started); 0 when there is none.",
            labels=["state"],
        )
        now = datetime.now(UTC)
        for state in ("queued", "running"):
            count, oldest = rows.get(state, (0, None))
            depth.add_metric([state], count)
            seconds = (now - _utc(oldest)).total_seconds() if oldest is not None else 0.0
            age.add_metric([state], max(0.0, seconds))
        yield depth
        yield age

    def _rows(self) -> dict[str, tuple[int, datetime | None]]:
        since = func.min(m.Job.created_at), func.min(m.Job.started_at)
        query = (
            select(m.Job.state, func.count(), *since)
            .where(m.Job.state.in_(("queued", "running")))
            .group_by(m.Job.state)
        )
        with self.db.read() as s:
            found = s.execute(query).all()
        return {
            state: (int(n), queued_at if state == "queued" else started_at)
            for state, n, queued_at, started_at in found
        }


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def serve_metrics(host: str, port: int, extra: Iterable[Collector] = ()) -> int:
    """Serve ``/metrics`` on ``host:port`` from a daemon thread; returns the bound port.

    InvalidInput when the port cannot be bound (taken, or not allowed).
    """
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=host, registry=scrape_registry(extra))
    except OSError as exc:
        raise InvalidInput(
            f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc});"
            " pick another port"
        ) from None
    return int(server.server_port)


def forget_this_process() -> None:
    """In multi-process mode, drop this process's live gauges (``lorareg_followers``) from
    later scrapes; call it as the process ends. Counters and histograms stay summed."""
    if multiprocess_mode():
        import os

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

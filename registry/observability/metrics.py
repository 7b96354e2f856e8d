"""Every lorareg metric, by name, for any module to update.

Call sites use the objects directly, e.g. ``metrics.FOLLOWERS.inc()`` when a follower
connects and ``metrics.FOLLOWERS.dec()`` when it leaves. Names follow Prometheus
conventions (``_total`` counters, ``_seconds`` and ``_bytes`` units). Label values are
bounded by construction: route templates, never raw paths; outcomes from fixed sets.

Server (``/metrics``):

- ``HTTP_REQUESTS``  ``lorareg_http_requests_total{method,route,status}``;
  ``HTTP_LATENCY`` ``lorareg_http_request_duration_seconds{method,route}`` (to the first
  byte of the response: a streamed download or an event stream is not its whole length).
  ``route`` is the route's template (``/api/v1/resolve/{namespace}/{name}``);
  ``unmatched`` for paths no route knows, so random paths cannot add series.
- ``RESOLVE_CACHE``  ``lorareg_resolve_cache_total{result="hit"|"miss"}``.
- ``FOLLOWERS``  ``lorareg_followers``: change-feed followers connected now (long polls
  and event streams); whoever holds a follower open increments it and decrements it when
  the follower goes.
- ``EVENT_DELIVERY_LAG``  ``lorareg_event_delivery_lag_seconds``: from an event's commit
  (its ``created_at``) to its delivery to a follower; observe once per delivered event.
- ``REGION_FALLBACKS``  ``lorareg_region_fallbacks_total{region,reason}``: reads of a
  blob a reader in ``region`` got from another region (``reason``: ``missing`` copy, or
  the region ``unavailable``); ``REGION_COPIES``
  ``lorareg_region_copies_total{region,outcome}`` per replication or presence check:
  ``copied``, ``present`` (already there, verified or seen), ``absent`` (an external
  region's blob not there yet), ``failed``; region names are bounded by configuration.
- ``BACKEND_ERRORS``  ``lorareg_backend_errors_total{backend="storage"|"database"}``:
  requests answered 503 because storage or the catalog database failed.
- At scrape time (``exposition.JobQueueCollector``): ``lorareg_jobs{state}`` and
  ``lorareg_job_oldest_age_seconds{state}`` for queued and running jobs.

``lorareg sync --metrics-port`` serves ``SYNC_*`` (changes by kind, bytes fetched,
failures) plus, read from the folder at scrape time (``registry.sync.metrics``):
``lorareg_sync_adapters{state="present"|"left_out"}``, ``lorareg_sync_disk_bytes``,
``lorareg_sync_budget_bytes`` and ``lorareg_sync_lag_seconds`` (since the node last
confirmed it had every change). ``lorareg worker --metrics-port`` serves ``WORKER_*``
and the job queue.

Multi-process: with ``PROMETHEUS_MULTIPROC_DIR`` set before start (an empty folder
shared by the server's worker processes), every process writes its values there and a
scrape sums them; gauges say how (``multiprocess_mode``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Seconds: from a cached resolve (~1 ms) to a slow upload (tens of seconds).
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
# Event lag: a promotion reaches followers in milliseconds to a second; more is an outage.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# -- server ---------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "lorareg_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "lorareg_http_request_duration_seconds",
    "Time from request to the response's first byte, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
RESOLVE_CACHE = Counter(
    "lorareg_resolve_cache",
    "Resolve lookups answered from the in-process version cache (hit) or the catalog (miss).",
    ["result"],
)
FOLLOWERS = Gauge(
    "lorareg_followers",
    "Change-feed followers (long polls and event streams) connected now.",
    multiprocess_mode="livesum",
)
EVENT_DELIVERY_LAG = Histogram(
    "lorareg_event_delivery_lag_seconds",
    "From an event's commit to its delivery to a follower.",
    buckets=LAG_BUCKETS,
)
REGION_FALLBACKS = Counter(
    "lorareg_region_fallbacks",
    "Blob reads served from another region than the reader's, by reader region and reason.",
    ["region", "reason"],
)
REGION_COPIES = Counter(
    "lorareg_region_copies",
    "Replication attempts and presence checks of regional copies, by region and outcome.",
    ["region", "outcome"],
)
BACKEND_ERRORS = Counter(
    "lorareg_backend_errors",
    "Requests that failed because storage or the catalog database was unavailable.",
    ["backend"],
)

# -- lorareg sync -----------------------------------------------------------------------

SYNC_CHANGES = Counter(
    "lorareg_sync_changes",
    "Adapter changes applied to the node folder: added, updated, removed, evicted.",
    ["change"],
)
SYNC_FETCHED_BYTES = Counter(
    "lorareg_sync_fetched_bytes", "Bytes downloaded into the node's blob cache."
)
SYNC_FAILURES = Counter(
    "lorareg_sync_failures",
    "Adapters that could not be synced (logged; retried with backoff).",
)

# -- lorareg worker ---------------------------------------------------------------------

WORKER_JOBS = Counter(
    "lorareg_worker_jobs",
    "Jobs this worker ran to an end, by outcome (succeeded, failed, cancelled).",
    ["outcome"],
)
WORKER_JOB_DURATION = Histogram(
    "lorareg_worker_job_duration_seconds",
    "Time from claiming a job to its end state.",
    buckets=(1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0),
)

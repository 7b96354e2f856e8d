"""Regions (issue 20): one primary store, regional stores, and where each reader reads.

Settings (``registry.config``, env ``LORAREG_*``):

- ``LORAREG_REGIONS``: a JSON list of ``{"name", "storage_url", "endpoint_url"?,
  "aws_profile"?, "mode"?}`` (``RegionConfig``): name ``[a-z0-9][a-z0-9-]{0,31}``,
  ``storage_url`` ``s3://bucket/prefix`` or ``file:///path``, ``mode`` ``replicate``
  (default: lorareg's workers copy blobs) or ``external`` (the storage replicates; lorareg
  checks presence). At most 32, unique. Unset: one store, everything as before regions.
- ``LORAREG_PRIMARY_REGION``: the primary store's (``LORAREG_STORAGE_URL``) name; default
  ``primary``. ``LORAREG_REGION``: where this process is (default: the primary).
  ``LORAREG_REGION_FALLBACK``: comma-separated regions tried after the reader's own; the
  primary is always last. ``LORAREG_REGION_LEASE_S``, ``LORAREG_REGION_INTERVAL_S``: the
  replication workers' lease and idle pause. ``Settings.replica_regions``: the names
  every new blob needs a copy in; ``Settings.region_names``: all, primary first.

Interface (for the API, CLI, dashboard, lifecycle gate, fsck and erasure):

- ``open_regions(settings, primary_store) -> RegionSet``: ``.primary``, ``.replicas()``,
  ``.get(name)`` (``UnknownRegion``, 422, lists the regions), ``.names``, ``.enabled``,
  ``.order_for(reader)``, iteration over ``Region(name, mode, url, store)``; ``.close()``.
- Catalog (``registry.regions.copies``): ``record_needed``, ``adopt_unrecorded``,
  ``claim_due``, ``mark_present``, ``mark_failed``, ``mark_missing_again`` (fsck found a
  bad copy), ``present_in(session, shas, regions)``, ``missing_files(session,
  version_id, regions)`` (the promotion gate: per region, the paths it lacks),
  ``version_regions(db, version_id, regions) -> VersionRegions``, ``region_stats(db,
  regions) -> list[RegionStats]`` (backlog blobs/bytes, failures, lag p50/p99, last
  error), ``failures(db, region=, limit=) -> list[ReplicaFailure]``.
- Reads (``registry.regions.router``): ``ReadRouter(regions, db, health)``:
  ``reader_region(explicit, token_default=)`` (explicit > token > LORAREG_REGION >
  primary), ``choose(reader, shas) -> {sha: ReadChoice(region, fallback)}``,
  ``store_for``, ``next_after`` (a read broke: mark the region down, choose again);
  ``RegionHealth`` (``probe(region)``, ``is_up``). Every fallback increments
  ``lorareg_region_fallbacks_total{region,reason}``.
- Replication (``registry.regions.worker``): ``ReplicationWorker(regions, db, ...)``:
  ``run_once() -> int`` (copies handled), ``run_forever()`` until ``.stop`` is set. Runs
  in ``lorareg worker`` (beside merges; ``--regions-only`` without them) and in the
  embedded ``lorareg serve``. ``copies.backoff_s(attempts, base_s=, cap_s=)``.
- Edges already wired: ``app.state.regions`` (RegionSet) and ``app.state.read_router``
  (ReadRouter, its ``.health`` probed in the background by ``lorareg serve``);
  ``registry.api.regions`` (``request_region``, ``streaming_store``); ``?region=`` on
  resolve, downloads and the Hub file routes; ``/readyz`` answers ``degraded`` with a
  ``regions`` map; ``LocalClient.router`` / ``reader_store``; ``pull(region=)`` and
  ``resolve(region=)`` on both clients (default ``LORAREG_REGION``).

Rows: ``blob_replicas`` (``registry.db.models.BlobReplica``): one per (blob, non-primary
region), ``state`` missing|present|failed, ``needed_since`` (push), ``present_since``,
``attempts``, ``last_error``, ``next_try_at``, lease columns. Deleting a ``blobs`` row
cascades to its copies' rows: an eraser must read the copies it will delete from the
regional stores first. ``tokens.default_region``: a token's region when a request names
none (``Principal.default_region``).
"""

from __future__ import annotations

from registry.config import RegionConfig
from registry.regions.models import RegionStats, ReplicaFailure, VersionRegions
from registry.regions.stores import Region, RegionSet, open_regions

__all__ = [
    "Region",
    "RegionConfig",
    "RegionSet",
    "RegionStats",
    "ReplicaFailure",
    "VersionRegions",
    "open_regions",
]

"""The operator's view of the regions, once for every edge: which regions there are and
whether each store answers, and per region the backlog, lag and failures of replication
(``lorareg regions [status]``, ``/api/v1/regions``, the dashboard's Regions page).

Tenancy (see ``region_models``): the list is for every reader; the figures span every
namespace's blobs and name blobs by hash, so they need an unscoped admin; a version's
presence is shown to whoever sees the version.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, wait

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from registry.catalog.queries import ref_row
from registry.catalog.refs import parse_ref
from registry.db import models as m
from registry.errors import LoraregError
from registry.principal import Principal
from registry.regions import copies
from registry.regions.stores import RegionSet, open_regions
from registry.runtime import Runtime
from registry.services.region_models import (
    FilePresence,
    RegionStatus,
    RegionStatusReport,
    RegionView,
    VersionPresence,
)
from registry.storage.base import BlobStore

PROBE_S = 5.0  # a store that has not answered by then is reported degraded


def region_set(rt: Runtime, regions: RegionSet | None = None) -> RegionSet:
    """``regions`` (a server's, opened once) or the runtime's, opened now (no I/O)."""
    return regions if regions is not None else open_regions(rt.settings, rt.store)


def regional_stores(rt: Runtime) -> dict[str, BlobStore]:
    """name -> store of every non-primary region (empty without ``LORAREG_REGIONS``)."""
    if not rt.settings.regions:
        return {}
    return {r.name: r.store for r in region_set(rt).replicas()}


def list_regions(rt: Runtime, *, regions: RegionSet | None = None) -> list[RegionView]:
    """Every region, the primary first, each probed (in parallel, bounded by PROBE_S)."""
    listed = list(region_set(rt, regions))
    pool = ThreadPoolExecutor(max_workers=max(1, len(listed)))
    futures = [pool.submit(r.store.check) for r in listed]
    wait(futures, timeout=PROBE_S)
    pool.shutdown(wait=False)
    out = []
    for region, fut in zip(listed, futures, strict=True):
        error: str | None = None
        if not fut.done():
            error = f"no answer within {PROBE_S:g}s"
        elif fut.exception() is not None:
            exc = fut.exception()
            error = exc.message if isinstance(exc, LoraregError) else type(exc).__name__
        out.append(
            RegionView(
                name=region.name,
                mode=region.mode,
                primary=region.is_primary,
                reachable=error is None,
                state="ok" if error is None else "degraded",
                error=error,
            )
        )
    return out


FAILURES_LISTED = 5


def region_status(
    rt: Runtime,
    *,
    principal: Principal,
    ref: str | None = None,
    regions: RegionSet | None = None,
) -> RegionStatusReport:
    """Backlog, lag and failures per region (unscoped admins), and with ``ref`` which
    regions hold that version."""
    principal.require("admin")
    principal.require_unscoped("replication figures")
    configured = region_set(rt, regions)
    out = []
    with rt.db.read() as s:  # the primary holds every blob the catalog has
        held = int(s.scalar(select(func.count()).select_from(m.Blob)) or 0)
    for stats in copies.region_stats(rt.db, configured):
        primary = stats.name == configured.primary.name
        if primary:
            stats = stats.model_copy(update={"present_blobs": held})
        failed = (
            copies.failures(rt.db, region=stats.name, limit=FAILURES_LISTED)
            if stats.failed_blobs
            else []
        )
        out.append(RegionStatus(**stats.model_dump(), primary=primary, failures=failed))
    version = version_presence(rt, ref, principal=principal) if ref is not None else None
    return RegionStatusReport(regions=out, version=version)


def version_presence(rt: Runtime, ref: str, *, principal: Principal) -> VersionPresence:
    """Which regions hold every file of the version ``ref`` names (whoever sees it)."""
    parsed = parse_ref(ref)
    principal.require_namespace(parsed.repo.namespace)
    with rt.db.read() as s:
        row = ref_row(s, parsed)
        return presence_of(
            s, row, primary=rt.settings.primary_region, replicas=list(rt.settings.replica_regions)
        )


def presence_of(
    s: Session, row: m.AdapterVersion, *, primary: str, replicas: list[str]
) -> VersionPresence:
    """The presence of ``row``'s files, read in the caller's session."""
    files = sorted(row.files, key=lambda f: f.path)
    missing = copies.missing_files(s, row.id, replicas)
    incomplete = sorted(r for r, paths in missing.items() if paths)
    return VersionPresence(
        ref=f"{row.adapter.namespace.name}/{row.adapter.name}:{row.number}",
        complete_in=[primary, *(r for r in replicas if r not in incomplete)],
        incomplete_in=incomplete,
        files=[
            FilePresence(
                path=f.path,
                sha256=f.sha256,
                size=f.size,
                missing_in=sorted(r for r, paths in missing.items() if f.path in paths),
            )
            for f in files
        ],
    )

"""The catalog's use cases, once for every edge: committing a push (the version from stored
blobs, then, when its base model is registered, the automatic compatibility check), and
the reads: adapter lists, versions, events and lineage."""

from __future__ import annotations

from dataclasses import replace

from pydantic import BaseModel, ConfigDict

from registry.catalog import browse, queries, uploads
from registry.catalog.browse import AdapterFilter, AdapterItem, Page
from registry.catalog.lineage import Lineage, lineage
from registry.catalog.push import PushRequest, commit_version
from registry.catalog.refs import Ref, Repo
from registry.compat.version_checks import check_after_push, refuse_failing_push
from registry.db.database import Database
from registry.domain import AdapterSummary, EventInfo, PushResult, VersionInfo
from registry.runtime import Runtime

Visible = frozenset[str] | None


def commit_push(
    rt: Runtime, req: PushRequest, *, strict: bool, visible: Visible, claim: bool
) -> PushResult:
    """Create the version ``req`` describes (or find the identical one) and check it.

    ``strict`` refuses a version whose check fails, before anything is recorded; with
    ``claim`` the blobs are first claimed for ``visible`` (a server must never read, and
    report on, bytes the caller may not use; the local client wrote them itself)."""
    limit = rt.settings.max_header_bytes
    req = replace(req, regions=rt.settings.replica_regions)  # copies every region needs
    if strict:
        if claim:
            uploads.claim_blobs(rt.db, rt.store, files=req.files, visible=visible)
        refuse_failing_push(rt.db, rt.store, req, max_header_bytes=limit)
    result = commit_version(rt.db, rt.store, req, max_header_bytes=limit, visible=visible)
    if not result.created:
        return result
    check = check_after_push(
        rt.db, rt.store, result.version, actor=req.author, max_header_bytes=limit
    )
    return result.model_copy(update={"check": check})


def list_adapters(
    db: Database,
    namespace: str | None = None,
    *,
    limit: int = 1000,
    after: str | None = None,
    visible: Visible = None,
) -> list[AdapterSummary]:
    """Adapters by ``ns/name`` after ``after``, each with its version count and newest
    version; only the ``visible`` namespaces (None: all)."""
    with db.read() as s:
        return queries.list_adapters(s, namespace, limit=limit, after=after, visible=visible)


def adapter_page(
    db: Database,
    flt: AdapterFilter,
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int = 50,
) -> Page[AdapterItem]:
    """The filtered adapter list (keyset pages on ``ns/name``) with stage and alias badges."""
    with db.read() as s:
        return browse.adapter_page(s, flt, after=after, before=before, limit=limit)


def namespace_names(
    db: Database,
    *,
    prefix: str = "",
    visible: Visible = None,
    limit: int = browse.NAMESPACE_SUGGESTIONS,
) -> list[str]:
    """The first namespaces by name that start with ``prefix``: a picker's suggestions."""
    with db.read() as s:
        return browse.namespace_names(s, prefix=prefix, visible=visible, limit=limit)


def get_version(db: Database, ref: Ref, *, base: str | None = None) -> VersionInfo:
    with db.read() as s:
        return queries.get_version(s, ref, base=base)


def version_at(db: Database, repo: Repo, revision: str) -> VersionInfo:
    """The version a revision names: ``3``, ``v3``, a stage, an alias or ``latest``."""
    with db.read() as s:
        return queries.to_info(s, queries.version_row(s, repo, revision))


def version_page(
    db: Database,
    repo: Repo,
    *,
    older_than: int | None = None,
    newer_than: int | None = None,
    limit: int = 50,
) -> Page[VersionInfo]:
    """An adapter's versions, newest first, a keyset page; AdapterNotFound if none."""
    with db.read() as s:
        return browse.version_page(
            s, repo, older_than=older_than, newer_than=newer_than, limit=limit
        )


class VersionDetail(BaseModel):
    """One version with what its page shows beside it."""

    model_config = ConfigDict(frozen=True)

    version: VersionInfo
    lineage: Lineage  # only links into the viewer's namespaces
    events: Page[EventInfo]  # the adapter's events, newest first


def version_detail(
    db: Database,
    repo: Repo,
    revision: str,
    *,
    visible: Visible = None,
    events_before: int | None = None,
    events: int = 50,
) -> VersionDetail:
    """A version, its merge lineage both ways and a page of its adapter's events, read in
    one transaction."""
    with db.read() as s:
        row = queries.version_row(s, repo, revision)
        return VersionDetail(
            version=queries.to_info(s, row),
            lineage=lineage(s, row.id, visible=visible),
            events=browse.event_page(s, repo, before_id=events_before, limit=events),
        )

"""Committing a push, once for both clients: the version from stored blobs, then (when its
base model is registered) the automatic compatibility check."""

from __future__ import annotations

from dataclasses import replace

from registry.catalog import uploads
from registry.catalog.push import PushRequest, commit_version
from registry.compat.version_checks import check_after_push, refuse_failing_push
from registry.domain import PushResult
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

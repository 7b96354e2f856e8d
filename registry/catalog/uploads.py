"""Which blobs a push may use: tenant-safe deduplication.

A version may reference a blob only when the caller can read it already (a version in a
namespace the caller sees references it) or the caller proved it holds the bytes: it
uploaded them, verified, from a namespace it sees (an ``uploads`` row). Anything else is
answered exactly as a blob nobody ever uploaded: the same error, no size, and the upload
plan says "upload it", so a hash of another tenant's weights reveals nothing.

Presigned uploads land at a per-upload staging key; ``claim_blobs`` verifies them and moves
them to the blob's key at commit, so a stale URL can never rewrite a stored blob. Upload
rows also carry freshness for gc (a reused orphan's row is touched; the object never is).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, true, update
from sqlalchemy.orm import Session

from registry.db import models as m
from registry.db.database import Database
from registry.domain import FileEntry, UploadPlan
from registry.errors import BlobNotFound, ChecksumMismatch, TooManyUploads
from registry.storage.base import BlobStore

# The namespace of an upload by a caller with no namespace scope (sees every namespace).
ANY_NAMESPACE = "*"
MAX_STAGED_TRIES = 3

Visible = frozenset[str] | None
"""The namespaces a caller sees; None for every namespace."""


def _seen(visible: Visible):  # type: ignore[no-untyped-def]
    """An upload row the caller may claim: by a namespace it sees."""
    if visible is None:
        return true()
    return m.Upload.namespace.in_(sorted(visible))


def readable_blobs(session: Session, shas: Iterable[str], visible: Visible) -> set[str]:
    """The blobs among ``shas`` that a version in a namespace the caller sees references."""
    q = (
        select(m.VersionFile.sha256)
        .join(m.AdapterVersion, m.AdapterVersion.id == m.VersionFile.version_id)
        .where(m.VersionFile.sha256.in_(sorted(set(shas))))
    )
    if visible is not None:
        q = (
            q.join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
            .join(m.Namespace, m.Namespace.id == m.Adapter.namespace_id)
            .where(m.Namespace.name.in_(sorted(visible)))
        )
    return set(session.scalars(q.distinct()))


def _held(session: Session, shas: Iterable[str], visible: Visible) -> set[str]:
    """Blobs among ``shas`` whose verified upload belongs to a namespace the caller sees."""
    return set(
        session.scalars(
            select(m.Upload.sha256)
            .where(
                m.Upload.sha256.in_(sorted(set(shas))),
                m.Upload.staging_key.is_(None),
                _seen(visible),
            )
            .distinct()
        )
    )


def plan_upload(
    db: Database,
    store: BlobStore,
    *,
    namespace: str,
    files: list[FileEntry],
    visible: Visible,
    expires_s: int,
    max_open: int,
) -> UploadPlan:
    """Which blobs the caller must upload, and where (a staging URL, or None: through the
    server). Blobs it cannot read are always "upload it", whether stored or not.

    TooManyUploads when the plan would leave ``namespace`` more than ``max_open`` presigned
    uploads younger than their URLs' lifetime (each is a row until gc)."""
    wanted = {f.sha256: f for f in files}
    with db.read() as s:
        readable = readable_blobs(s, wanted, visible)
        held = _held(s, set(wanted) - readable, visible)
    missing: list[str] = []
    urls: dict[str, str | None] = {}
    staged: list[m.Upload] = []
    reused_held: list[str] = []
    for sha, f in wanted.items():
        if (sha in readable or sha in held) and store.exists(sha):
            if sha not in readable:
                reused_held.append(sha)
            continue
        missing.append(sha)
        upload_id = secrets.token_hex(16)
        urls[sha] = store.presign_staged_put(upload_id, f.size, expires_s=expires_s)
        if urls[sha] is not None:
            staged.append(
                m.Upload(namespace=namespace, sha256=sha, size=f.size, staging_key=upload_id)
            )
    if staged or reused_held:
        with db.write() as s:
            if staged:
                _check_open(s, namespace, len(staged), expires_s=expires_s, max_open=max_open)
            s.add_all(staged)
            _touch(s, reused_held, visible)
    return UploadPlan(missing=missing, upload_urls=urls)


def _check_open(
    session: Session, namespace: str, adding: int, *, expires_s: int, max_open: int
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=expires_s)
    open_now = session.scalar(
        select(func.count())
        .select_from(m.Upload)
        .where(
            m.Upload.namespace == namespace,
            m.Upload.staging_key.is_not(None),
            m.Upload.touched_at > since,
        )
    )
    if (open_now or 0) + adding > max_open:
        raise TooManyUploads(
            f"namespace {namespace!r} has {open_now} open uploads; at most {max_open} may be"
            f" open at once: commit or abandon pushes in flight, or retry in {expires_s} s"
            " when their URLs expire"
        )


def record_upload(db: Database, *, sha256: str, size: int, visible: Visible) -> None:
    """The caller uploaded these bytes, verified: it may reference them from any namespace
    it sees (or an existing row of theirs is touched)."""
    scope = [ANY_NAMESPACE] if visible is None else sorted(visible)
    with db.write() as s:
        known = set(
            s.scalars(
                select(m.Upload.namespace).where(
                    m.Upload.sha256 == sha256,
                    m.Upload.staging_key.is_(None),
                    m.Upload.namespace.in_(scope),
                )
            )
        )
        s.add_all(
            m.Upload(namespace=ns, sha256=sha256, size=size) for ns in scope if ns not in known
        )
        _touch(s, [sha256], frozenset(known) if known else frozenset())


def _touch(session: Session, shas: list[str], visible: Visible) -> None:
    """Restart gc's grace period for blobs a push is about to reference."""
    if not shas or visible == frozenset():
        return
    # Lock the rows first, skipping those a concurrent push is touching right now (they are
    # fresh anyway): one UPDATE over several rows locks them in no set order, and two
    # pushes of the same files deadlocked on PostgreSQL.
    ids = session.scalars(
        select(m.Upload.id)
        .where(m.Upload.sha256.in_(sorted(shas)), m.Upload.staging_key.is_(None), _seen(visible))
        .order_by(m.Upload.id)
        .with_for_update(skip_locked=True)
    ).all()
    if ids:
        session.execute(
            update(m.Upload).where(m.Upload.id.in_(ids)).values(touched_at=datetime.now(UTC))
        )


def not_uploaded(f: FileEntry) -> BlobNotFound:
    """The one answer for a blob the caller may not use, whether or not it is stored."""
    return BlobNotFound(f"{f.path}: blob {f.sha256[:12]} was not uploaded; push again to upload it")


def claim_blobs(
    db: Database, store: BlobStore, *, files: list[FileEntry], visible: Visible
) -> None:
    """Before a commit: every blob is one the caller may use, stored with the manifest's
    size and readable. Staged uploads are verified and stored here (network work outside
    any transaction); bytes that do not hash to their name are discarded."""
    wanted = {f.sha256: f for f in files}
    with db.read() as s:
        readable = readable_blobs(s, wanted, visible)
        others = set(wanted) - readable
        held = _held(s, others, visible)
        staged = list(
            s.execute(
                select(m.Upload.id, m.Upload.sha256, m.Upload.size, m.Upload.staging_key)
                .where(
                    m.Upload.sha256.in_(sorted(others - held)),
                    m.Upload.staging_key.is_not(None),
                    _seen(visible),
                )
                .order_by(m.Upload.id.desc())
            ).all()
        )
        registered = set(s.scalars(select(m.Blob.sha256).where(m.Blob.sha256.in_(sorted(wanted)))))
    tried: dict[str, int] = {}
    for row_id, sha, size, key in staged:
        # The newest few staged uploads of a blob: repeated plans cost no unbounded reads.
        if sha in held or key is None or tried.get(sha, 0) >= MAX_STAGED_TRIES:
            continue
        tried[sha] = tried.get(sha, 0) + 1
        if _store_staged(db, store, wanted[sha], row_id, key, size):
            held.add(sha)
    for f in wanted.values():
        if f.sha256 not in readable and f.sha256 not in held:
            raise not_uploaded(f)
    for f in wanted.values():
        try:
            stored = store.size(f.sha256)
        except BlobNotFound:
            raise not_uploaded(f) from None
        if stored != f.size:
            raise ChecksumMismatch(
                f"{f.path}: stored blob {f.sha256[:12]} has {stored} bytes, manifest says {f.size}"
            )
        if f.sha256 not in registered and f.size:
            # A reused orphan must read back through this very client before a version
            # that names it becomes visible (an object an S3 server cannot serve is damaged).
            store.read_range(f.sha256, 0, 1)


def _store_staged(
    db: Database, store: BlobStore, f: FileEntry, row_id: int, key: str, size: int
) -> bool:
    """True when the staged bytes were verified and stored (the row now proves them)."""
    try:
        store.store_staged(key, f.sha256, size)
    except BlobNotFound:
        return False  # never PUT (or taken by a concurrent commit): no proof
    except ChecksumMismatch:
        # The staged bytes are gone; the row proves nothing now and gc expires it.
        raise ChecksumMismatch(
            f"{f.path}: uploaded bytes do not hash to {f.sha256[:12]}; the upload was"
            " discarded, push again"
        ) from None
    with db.write() as s:
        s.execute(
            update(m.Upload)
            .where(m.Upload.id == row_id)
            .values(staging_key=None, touched_at=datetime.now(UTC))
        )
    return True

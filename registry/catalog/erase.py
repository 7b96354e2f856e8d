"""Offboarding: erase a version, an adapter or a whole namespace, weights included.

One write transaction removes the catalog rows: versions with their files, tags, evals,
checks, aliases and merge lineage; for an adapter or a namespace the adapter rows, the
policies set on them and the merge jobs that name them; for a namespace also its
webhooks, the tokens scoped to it alone (tokens scoped to several namespaces lose this
one), its quota and the namespace row. Blob rows no remaining version references go in
the same transaction; a blob another version still uses (in any namespace) stays.

The audit log keeps who, when and what kind of change for every earlier event of what is
erased, with the payload (content ids, file lists, eval values, reasons) replaced by
``{"erased": true}``, and gains one event per erased adapter or version with the eraser,
the time and the reason. The new event also moves the catalog's newest event id, which is
what every replica's resolve cache watches (``registry.api.version_cache``), so resolve and
the Hub routes answer 404 within a second everywhere.

Storage is changed only after the commit (no network call inside a transaction): each blob
is checked again, then deleted. A crash between the commit and the deletes leaves blobs no
version references, exactly what an interrupted push leaves: ``lorareg gc`` removes them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, exc, select
from sqlalchemy.orm import Session

from registry.catalog import erase_rows as related
from registry.catalog.refs import Repo, check_name
from registry.catalog.region_upkeep import delete_copies
from registry.db import models as m
from registry.db.database import Database
from registry.errors import (
    AdapterNotFound,
    InvalidInput,
    LoraregError,
    NotFound,
    VersionNotFound,
)
from registry.principal import Principal
from registry.storage.base import BlobStore

MAX_REASON = 2000
_CHUNK = related.CHUNK
_ATTEMPTS = 3  # a push racing the erasure can make its transaction fail: try again


class ErasureReport(BaseModel):
    """What an erasure removed (counts only: no file names or content ids)."""

    model_config = ConfigDict(frozen=True)

    target: str
    reason: str
    versions: list[str]
    adapters: list[str]
    blobs_deleted: int
    bytes_freed: int
    blobs_shared: int  # still used by versions that stay, so kept
    storage_pending: int  # storage deletes that failed: unreferenced now, ``gc`` removes them
    tokens_removed: int
    tokens_narrowed: int
    webhooks_removed: int
    policies_removed: int
    jobs_removed: int
    events_scrubbed: int
    # Merged models that stay although built from erased versions (their lineage row
    # goes); only those the eraser may see are named.
    derived_kept: list[str]
    # Copies of the deleted blobs removed from regional stores, and those left for gc.
    regional_deleted: int = 0
    regional_pending: int = 0


@dataclass(frozen=True)
class Target:
    """A namespace (``repo`` None), a whole adapter (``number`` None), or one version."""

    namespace: str
    repo: Repo | None = None
    number: int | None = None

    def __str__(self) -> str:
        if self.repo is None:
            return self.namespace
        return f"{self.repo}:{self.number}" if self.number is not None else str(self.repo)


@dataclass
class _Erased:
    versions: list[str] = field(default_factory=list)
    adapters: list[str] = field(default_factory=list)
    orphans: dict[str, int] = field(default_factory=dict)  # sha256 -> size
    shared: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    derived: list[str] = field(default_factory=list)


def target_of(text: str) -> Target:
    """``ns/name`` (the whole adapter) or ``ns/name:N`` (one version); labels are refused,
    so what is erased is exactly what was typed."""
    from registry.catalog.refs import parse_ref

    ref = parse_ref(text.strip())
    if ref.label is not None:
        raise InvalidInput(
            f"name what to delete exactly: {ref.repo} (every version) or {ref.repo}:N, not a"
            f" stage or alias ({ref.label})"
        )
    return Target(namespace=ref.repo.namespace, repo=ref.repo, number=ref.number)


def namespace_target(namespace: str) -> Target:
    return Target(namespace=check_name(namespace, what="namespace"))


def check_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidInput("say why (--reason): the audit log keeps who erased what and why")
    if len(text) > MAX_REASON or "\x00" in text:
        raise InvalidInput(f"the reason must be at most {MAX_REASON} characters, without NUL")
    return text


def erase(
    db: Database,
    store: BlobStore,
    target: Target,
    *,
    principal: Principal,
    reason: str | None,
    force: bool = False,
    regional: Mapping[str, BlobStore] | None = None,
) -> ErasureReport:
    """Erase ``target`` (admins only; a scoped admin only inside its namespaces).

    ``regional``: the regional stores (name -> store, the primary excepted); blobs deleted
    from the primary ``store`` are deleted from each of them too.

    Raises InvalidInput without a reason, NotFound for what does not exist (or cannot be
    seen), InProduction when a version is in production and ``force`` is not set. Nothing
    changes when it raises.
    """
    principal.require_namespace(target.namespace, "namespace")
    principal.require("admin")
    why = check_reason(reason)
    for attempt in range(_ATTEMPTS):
        try:
            with db.write() as s:
                done = _erase_rows(s, target, principal=principal, reason=why, force=force)
            break
        except (exc.IntegrityError, exc.OperationalError):
            # A push that committed a reference to a blob or adapter being erased (foreign
            # key), or a deadlock with it: the transaction rolled back; look again.
            if attempt == _ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    deleted, freed, pending, reused = _delete_blobs(db, store, done.orphans)
    copies = delete_copies(db, regional or {}, done.orphans)
    c = done.counts
    return ErasureReport(
        target=str(target),
        reason=why,
        versions=done.versions,
        adapters=done.adapters,
        blobs_deleted=deleted,
        bytes_freed=freed,
        blobs_shared=done.shared + reused,
        storage_pending=pending,
        tokens_removed=c.get("tokens_removed", 0),
        tokens_narrowed=c.get("tokens_narrowed", 0),
        webhooks_removed=c.get("webhooks", 0),
        policies_removed=c.get("policies", 0),
        jobs_removed=c.get("jobs", 0),
        events_scrubbed=c.get("events", 0),
        derived_kept=done.derived,
        regional_deleted=copies.deleted,
        regional_pending=sum(copies.pending.values()),
    )


def _erase_rows(
    s: Session, target: Target, *, principal: Principal, reason: str, force: bool
) -> _Erased:
    out = _Erased()
    ns_row = s.scalar(select(m.Namespace).where(m.Namespace.name == target.namespace))
    if ns_row is None and target.repo is None:
        raise NotFound(f"namespace {target.namespace} does not exist; `lorareg list` shows them")
    if ns_row is None:
        raise AdapterNotFound(f"adapter {target.repo} does not exist")
    adapters_q = select(m.Adapter.id, m.Adapter.name).where(m.Adapter.namespace_id == ns_row.id)
    if target.repo is not None:
        adapters_q = adapters_q.where(m.Adapter.name == target.repo.name)
    # Lock in id order (pushes lock an adapter, then its namespace): no deadlock with them.
    names: dict[int, str] = {
        aid: name for aid, name in s.execute(adapters_q.order_by(m.Adapter.id).with_for_update())
    }
    if target.repo is not None and not names:
        raise AdapterNotFound(f"adapter {target.repo} does not exist")
    adapter_ids = list(names)
    versions_q = select(m.AdapterVersion.id).where(m.AdapterVersion.adapter_id.in_(adapter_ids))
    if target.number is not None:
        versions_q = versions_q.where(m.AdapterVersion.number == target.number)
    rows = s.execute(
        select(m.AdapterVersion.id, m.AdapterVersion.adapter_id, m.AdapterVersion.number)
        .where(m.AdapterVersion.id.in_(versions_q))
        .order_by(m.AdapterVersion.adapter_id, m.AdapterVersion.number)
    ).all()
    if target.number is not None and not rows:
        raise VersionNotFound(f"{target.repo} has no version {target.number}")
    related.refuse_production(s, versions_q, names, force=force)
    out.versions = [f"{target.namespace}/{names[a]}:{n}" for _, a, n in rows]
    whole = target.number is None
    if whole:
        out.adapters = [f"{target.namespace}/{name}" for name in names.values()]

    candidates = set(
        s.scalars(select(m.VersionFile.sha256).where(m.VersionFile.version_id.in_(versions_q)))
    )
    out.derived = related.derived(s, versions_q, principal)
    related.delete_version_rows(s, versions_q)
    out.orphans, out.shared = related.drop_orphan_blobs(s, candidates)

    c = out.counts
    c["events"] = related.scrub_events(s, target)
    c["jobs"] = related.delete_jobs(s, target)
    if whole:
        s.execute(delete(m.Alias).where(m.Alias.adapter_id.in_(adapter_ids)))
        c["policies"] = related.delete_policies(s, target)
        s.execute(delete(m.Adapter).where(m.Adapter.id.in_(adapter_ids)))
    if target.repo is None:
        c["webhooks"] = related.changed(
            s.execute(delete(m.Webhook).where(m.Webhook.namespace == target.namespace))
        )
        c["tokens_removed"], c["tokens_narrowed"] = related.narrow_tokens(s, target.namespace)
        # A namespace re-created under this name must not inherit the old one's uploads.
        s.execute(delete(m.Upload).where(m.Upload.namespace == target.namespace))
        s.execute(delete(m.Namespace).where(m.Namespace.id == ns_row.id))
    per_adapter: dict[int, int] = {}
    for _, a, _n in rows:
        per_adapter[a] = per_adapter.get(a, 0) + 1
    _record(
        s,
        target,
        names,
        per_adapter,
        actor=principal.name,
        payload={"reason": reason, "force": force},
    )
    return out


def _record(
    s: Session,
    target: Target,
    names: dict[int, str],
    per_adapter: dict[int, int],
    *,
    actor: str,
    payload: dict[str, object],
) -> None:
    """The erasure's own events: who, when, why, how many; never names of files."""
    if target.number is not None:
        assert target.repo is not None
        s.add(
            m.Event(
                kind="version.deleted",
                namespace=target.namespace,
                adapter=target.repo.name,
                version=target.number,
                actor=actor,
                payload=payload,
            )
        )
        return
    # One event per adapter, so whatever follows the feed (lorareg sync) re-resolves each.
    for a, name in sorted(names.items()):
        s.add(
            m.Event(
                kind="adapter.deleted",
                namespace=target.namespace,
                adapter=name,
                actor=actor,
                payload={**payload, "versions": per_adapter.get(a, 0)},
            )
        )
    if target.repo is None:
        s.add(
            m.Event(
                kind="namespace.deleted",
                namespace=target.namespace,
                actor=actor,
                payload={
                    **payload,
                    "adapters": len(names),
                    "versions": sum(per_adapter.values()),
                },
            )
        )


def _delete_blobs(
    db: Database, store: BlobStore, orphans: dict[str, int]
) -> tuple[int, int, int, int]:
    """After the commit: (deleted, bytes freed, left for gc, re-used by a push since)."""
    deleted = freed = pending = reused = 0
    ordered = sorted(orphans)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        # A push of the same bytes may have registered a blob again since the commit.
        with db.read() as s:
            again = set(s.scalars(select(m.Blob.sha256).where(m.Blob.sha256.in_(chunk))))
        for sha in chunk:
            if sha in again:
                reused += 1
                continue
            try:
                store.delete(sha)
            except LoraregError:
                pending += 1  # unreferenced now: gc removes it once storage is back
                continue
            deleted += 1
            freed += orphans[sha]
    return deleted, freed, pending, reused

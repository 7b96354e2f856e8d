"""Push: turn a manifest of already-stored blobs into a new immutable version.

Order matters for "nothing is lost": every blob is stored (and its sha256 verified by the
store, or staged and verified here) before the version is written; this re-validates the
adapter from storage, then one transaction creates the version, its files, tags, evals
and an audit event. A crash before the commit leaves only unreferenced blobs, which
``lorareg gc`` removes after a grace period.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.catalog.manifest import content_id
from registry.catalog.push_request import (  # noqa: F401  (re-exported: the push's API)
    MAX_TAGS,
    PushRequest,
    check_eval,
    check_tags,
    check_text,
    validate_metadata,
)
from registry.catalog.queries import to_info
from registry.catalog.quotas import enforce_quota
from registry.catalog.refs import Repo, check_base_name
from registry.catalog.replicas import record_needed_copies
from registry.catalog.uploads import Visible, claim_blobs
from registry.db import models as m
from registry.db.database import Database
from registry.domain import FileEntry, PushResult
from registry.formats.adapter import (
    AdapterFile,
    inspect_adapter,
)
from registry.storage.base import BlobStore


def commit_version(
    db: Database,
    store: BlobStore,
    req: PushRequest,
    *,
    max_header_bytes: int,
    visible: Visible,
    on_commit: Callable[[Session, m.AdapterVersion], None] | None = None,
) -> PushResult:
    """Validate the stored adapter and record it as the adapter's next version.

    ``on_commit`` runs inside the recording transaction (lineage rows, a job's completion):
    if it raises, nothing is recorded.

    Identical content (same manifest and base as an existing version) creates nothing and
    returns that version with ``created=False``. ``visible`` is the caller's namespace
    scope (None: all): every blob must be one it can read or one it uploaded (see
    ``uploads.claim_blobs``); any other is refused exactly like a blob never uploaded.
    """
    validate_metadata(req)
    claim_blobs(db, store, files=req.files, visible=visible)
    files = {
        f.path: AdapterFile(path=f.path, size=f.size, read=_range_reader(store, f.sha256))
        for f in req.files
    }
    contents = inspect_adapter(files, max_header_bytes=max_header_bytes)
    base = req.base_model or contents.config.base_model_name_or_path
    if base is not None:
        base = check_base_name(base) if req.base_model is None else base

    cfg = contents.config
    fields = VersionFields(
        base_model=base,
        peft_type=cfg.peft_type.upper(),
        r=cfg.r,
        lora_alpha=float(cfg.lora_alpha),
        target_modules=cfg.target_list(),
        config=cfg.to_json_dict(),
    )
    with db.write() as session:
        row, created = record_version(session, req, fields)
        if on_commit is not None:
            on_commit(session, row)
        return PushResult(version=to_info(session, row), created=created)


@dataclass(frozen=True)
class VersionFields:
    """What a version records besides its files: from adapter_config.json for adapters,
    from the merge for merged models."""

    base_model: str | None
    peft_type: str
    r: int
    lora_alpha: float
    target_modules: list[str]
    config: dict[str, object]
    kind: str = "adapter"


def record_version(
    session: Session, req: PushRequest, fields: VersionFields
) -> tuple[m.AdapterVersion, bool]:
    """Inside a write transaction: the existing version with identical content and base,
    or a new one numbered next, with its files, tags, evals and a ``version.created`` event.
    """
    adapter = _get_or_create_adapter(session, req.repo)
    # Serialise pushes to this adapter: concurrent pushes wait here, then see each other.
    session.execute(select(m.Adapter.id).where(m.Adapter.id == adapter.id).with_for_update())
    session.refresh(adapter)
    cid = content_id(req.files)
    existing = session.scalar(
        select(m.AdapterVersion).where(
            m.AdapterVersion.adapter_id == adapter.id,
            m.AdapterVersion.content_id == cid,
            _same_base(fields.base_model),
        )
    )
    if existing is not None:
        return existing, False
    enforce_quota(session, adapter.namespace_id, adding_bytes=sum(f.size for f in req.files))
    parent_id = session.scalar(
        select(m.AdapterVersion.id)
        .where(m.AdapterVersion.adapter_id == adapter.id)
        .order_by(m.AdapterVersion.number.desc())
        .limit(1)
    )
    number = adapter.next_number
    session.execute(
        update(m.Adapter).where(m.Adapter.id == adapter.id).values(next_number=number + 1)
    )
    _insert_blobs(session, req.files)
    record_needed_copies(session, (f.sha256 for f in req.files), req.regions)
    row = m.AdapterVersion(
        adapter_id=adapter.id,
        number=number,
        content_id=cid,
        base_model=fields.base_model,
        peft_type=fields.peft_type,
        r=fields.r,
        lora_alpha=fields.lora_alpha,
        target_modules=fields.target_modules,
        config=fields.config,
        kind=fields.kind,
        size=sum(f.size for f in req.files),
        file_count=len(req.files),
        author=req.author,
        description=req.description,
        parent_id=parent_id,
        files=[m.VersionFile(path=f.path, sha256=f.sha256, size=f.size) for f in req.files],
        tags=[m.Tag(key=k, value=v) for k, v in sorted(req.tags.items())],
        evals=[
            m.EvalScore(
                metric=e.metric,
                value=e.value,
                dataset=e.dataset,
                higher_is_better=e.higher_is_better,
                recorded_by=req.author,
            )
            for e in req.evals
        ],
    )
    session.add(row)
    session.flush()
    session.add(
        m.Event(
            kind="version.created",
            namespace=req.repo.namespace,
            adapter=req.repo.name,
            version=number,
            actor=req.author,
            payload={
                "content_id": cid,
                "base_model": fields.base_model,
                "size": row.size,
                "kind": fields.kind,
            },
        )
    )
    session.flush()
    session.refresh(row)
    return row, True


def identical_version(
    session: Session, repo: Repo, files: list[FileEntry], base: str | None
) -> m.AdapterVersion | None:
    """The version of ``repo`` with exactly this manifest and base, when one exists: what
    ``record_version`` would answer (``created=False``) without writing anything."""
    adapter_id = session.scalar(
        select(m.Adapter.id)
        .join(m.Namespace, m.Namespace.id == m.Adapter.namespace_id)
        .where(m.Namespace.name == repo.namespace, m.Adapter.name == repo.name)
    )
    if adapter_id is None:
        return None
    return session.scalar(
        select(m.AdapterVersion).where(
            m.AdapterVersion.adapter_id == adapter_id,
            m.AdapterVersion.content_id == content_id(files),
            _same_base(base),
        )
    )


def _same_base(base: str | None):  # type: ignore[no-untyped-def]
    col = m.AdapterVersion.base_model
    return col.is_(None) if base is None else col == base


def _range_reader(store: BlobStore, sha256: str):  # type: ignore[no-untyped-def]
    def read(offset: int, length: int) -> bytes:
        return store.read_range(sha256, offset, length)

    return read


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _get_or_create_adapter(session: Session, repo: Repo) -> m.Adapter:
    """Create namespace and adapter if missing; safe when two pushes race to create them."""
    ins = _insert(session)
    session.execute(ins(m.Namespace).values(name=repo.namespace).on_conflict_do_nothing())
    ns_id = session.scalar(select(m.Namespace.id).where(m.Namespace.name == repo.namespace))
    session.execute(
        ins(m.Adapter)
        .values(namespace_id=ns_id, name=repo.name, next_number=1)
        .on_conflict_do_nothing()
    )
    adapter = session.scalar(
        select(m.Adapter).where(m.Adapter.namespace_id == ns_id, m.Adapter.name == repo.name)
    )
    assert adapter is not None
    return adapter


def _insert_blobs(session: Session, files: list[FileEntry]) -> None:
    ins = _insert(session)
    rows = {f.sha256: f.size for f in files}
    session.execute(
        ins(m.Blob)
        .values([{"sha256": s, "size": n} for s, n in sorted(rows.items())])
        .on_conflict_do_nothing()
    )

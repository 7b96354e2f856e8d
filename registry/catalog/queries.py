"""Read use-cases: resolve a reference, show, list, history."""

from __future__ import annotations

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from registry.catalog.paging import adapters_in_order
from registry.catalog.records import event_info, version_info
from registry.catalog.refs import Ref, Repo, parse_revision
from registry.db import models as m
from registry.domain import AdapterSummary, EventInfo, Stage, VersionInfo
from registry.errors import AdapterNotFound, InvalidReference, VersionNotFound


def adapter_row(session: Session, repo: Repo) -> m.Adapter:
    row = session.scalar(
        select(m.Adapter)
        .join(m.Namespace)
        .where(m.Namespace.name == repo.namespace, m.Adapter.name == repo.name)
    )
    if row is None:
        raise AdapterNotFound(f"adapter {repo} does not exist; `lorareg list` shows what does")
    return row


def version_row(
    session: Session, repo: Repo, revision: str, *, base: str | None = None
) -> m.AdapterVersion:
    """The version a revision names (see ``parse_revision``), optionally for one base model."""
    kind, value = parse_revision(revision)
    adapter = adapter_row(session, repo)
    q = select(m.AdapterVersion).where(m.AdapterVersion.adapter_id == adapter.id)
    if base is not None:
        q = q.where(m.AdapterVersion.base_model == base)
    if kind == "number":
        q = q.where(m.AdapterVersion.number == value)
    elif kind == "content":
        q = q.where(m.AdapterVersion.content_id == value)
    elif kind == "label":
        return label_row(session, adapter, str(value), base=base)
    row = session.scalar(q.order_by(m.AdapterVersion.number.desc()).limit(1))
    if row is None:
        on_base = f" for base {base}" if base else ""
        raise VersionNotFound(f"{repo} has no version {revision or 'latest'}{on_base}")
    return row


STAGES: tuple[str, ...] = tuple(Stage)


def label_row(
    session: Session, adapter: m.Adapter, label: str, *, base: str | None
) -> m.AdapterVersion:
    """The version a stage or alias names.

    ``production`` is unique per base model: without ``base`` it resolves only when one
    base has a production version. ``staging``/``archived`` give the newest in that stage.
    """
    repo = f"{adapter.namespace.name}/{adapter.name}"
    if label in STAGES:
        q = select(m.AdapterVersion).where(
            m.AdapterVersion.adapter_id == adapter.id, m.AdapterVersion.stage == label
        )
        if base is not None:
            q = q.where(m.AdapterVersion.base_model == base)
        rows = session.scalars(q.order_by(m.AdapterVersion.number.desc())).all()
        if not rows:
            on_base = f" for base {base}" if base else ""
            raise VersionNotFound(f"{repo} has no version in {label}{on_base}")
        if label == "production" and len({r.base_model for r in rows}) > 1:
            bases = ", ".join(sorted(str(r.base_model) for r in rows))
            raise InvalidReference(
                f"{repo} is in production for several base models ({bases}); pass --base"
                " (or ?base=) to pick one"
            )
        return rows[0]
    q = (
        select(m.AdapterVersion)
        .join(m.Alias, m.Alias.version_id == m.AdapterVersion.id)
        .where(m.Alias.adapter_id == adapter.id, m.Alias.name == label)
    )
    if base is not None:
        q = q.where(m.AdapterVersion.base_model == base)
    row = session.scalar(q)
    if row is None:
        raise VersionNotFound(f"{repo} has no version labelled {label!r}")
    return row


def ref_row(session: Session, ref: Ref, *, base: str | None = None) -> m.AdapterVersion:
    if ref.number is not None:
        revision = str(ref.number)
    elif ref.label is not None:
        revision = ref.label
    else:
        revision = "latest"
    return version_row(session, ref.repo, revision, base=base)


def to_info(session: Session, row: m.AdapterVersion) -> VersionInfo:
    parent = None
    if row.parent_id is not None:
        parent = session.scalar(
            select(m.AdapterVersion.number).where(m.AdapterVersion.id == row.parent_id)
        )
    aliases = list(session.scalars(select(m.Alias.name).where(m.Alias.version_id == row.id)))
    return version_info(row, parent_number=parent, aliases=aliases)


def get_version(session: Session, ref: Ref, *, base: str | None = None) -> VersionInfo:
    return to_info(session, ref_row(session, ref, base=base))


def list_versions(session: Session, repo: Repo) -> list[VersionInfo]:
    adapter = adapter_row(session, repo)
    rows = session.scalars(
        select(m.AdapterVersion)
        .where(m.AdapterVersion.adapter_id == adapter.id)
        .order_by(m.AdapterVersion.number.desc())
    ).all()
    return [to_info(session, r) for r in rows]


def _adapter_keys(
    session: Session,
    namespace: str | None,
    *,
    limit: int,
    after: str | None,
    visible: frozenset[str] | None,
) -> list[tuple[int, str, str]]:
    """(id, namespace, name) of the next ``limit`` adapters by ``ns/name`` after a key."""
    N = m.Namespace
    on_ns = []
    if namespace is not None:
        on_ns.append(N.name == namespace)
    if visible is not None:
        on_ns.append(N.name.in_(sorted(visible)))
    found = adapters_in_order(
        session, [m.Adapter.id], limit=limit, key=after or None, where_namespace=on_ns
    )
    return [(aid, ns_name, name) for ns_name, name, aid in found]


def list_adapters(
    session: Session,
    namespace: str | None = None,
    *,
    limit: int = 1000,
    after: str | None = None,
    visible: frozenset[str] | None = None,
) -> list[AdapterSummary]:
    """Adapters with their version count and newest version, ordered by ``ns/name``.

    The page of adapters is chosen first (keyset on ns/name), then versions are read for
    that page only, so the cost follows the page size, not the catalog's size: the counts
    and newest numbers from the ``(adapter_id, number)`` index alone, then one row per
    adapter (its newest version: base model, and when it was pushed). An adapter without
    versions (all erased) is left out and the page filled from the next ones: a client
    that stops at a short page must not miss every adapter after it.
    """
    out: list[AdapterSummary] = []
    while len(out) < limit:
        want = limit - len(out)
        keys = _adapter_keys(session, namespace, limit=want, after=after, visible=visible)
        out += _summaries(session, keys)
        if len(keys) < want:
            break
        after = f"{keys[-1][1]}/{keys[-1][2]}"
    return out


def _summaries(session: Session, keys: list[tuple[int, str, str]]) -> list[AdapterSummary]:
    if not keys:
        return []
    V = m.AdapterVersion
    counts = {
        aid: (n, latest)
        for aid, n, latest in session.execute(
            select(V.adapter_id, func.count(), func.max(V.number))
            .where(V.adapter_id.in_([k[0] for k in keys]))
            .group_by(V.adapter_id)
        )
    }
    if not counts:
        return []
    # (adapter, number) pairs, not "adapter IN .. AND number IN ..": that cross product
    # matched up to a page's worth of versions per adapter.
    newest = {
        aid: (base, created)
        for aid, base, created in session.execute(
            select(V.adapter_id, V.base_model, V.created_at).where(
                tuple_(V.adapter_id, V.number).in_(
                    sorted((aid, latest) for aid, (_, latest) in counts.items())
                )
            )
        )
    }
    out = []
    for aid, ns_name, name in keys:
        if aid not in counts or aid not in newest:
            continue  # no versions (or its newest erased since the counts were read)
        n, latest = counts[aid]
        base, updated = newest[aid]
        out.append(
            AdapterSummary(
                namespace=ns_name,
                name=name,
                versions=n,
                latest=latest,
                base_model=base,
                updated_at=updated,
            )
        )
    return out


def history(session: Session, repo: Repo, *, limit: int = 1000) -> list[EventInfo]:
    """Every event of an adapter, oldest first."""
    adapter_row(session, repo)
    rows = session.scalars(
        select(m.Event)
        .where(m.Event.namespace == repo.namespace, m.Event.adapter == repo.name)
        .order_by(m.Event.id)
        .limit(limit)
    ).all()
    return [event_info(r) for r in rows]

"""Quotas per namespace: the most bytes and versions a namespace may hold.

Usage is the sum of its versions' sizes (a file shared by two versions counts twice: the
number a client can predict from its own pushes, and one that says nothing about what
other namespaces store) and the count of its versions, merged models included. Both are
only computed for a namespace that has a limit, so unlimited namespaces pay nothing.

``enforce_quota`` runs inside the transaction that records a version, after taking the
namespace's row lock: two pushes racing to the last free bytes queue on that lock, and
the second sees the first's version (READ COMMITTED re-reads after the wait; SQLite's
write transactions are exclusive anyway), so both cannot pass.
"""

from __future__ import annotations

import re
from typing import Final

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from registry.catalog.refs import check_name
from registry.db import models as m
from registry.db.database import Database
from registry.errors import InvalidInput, NotFound, QuotaExceeded
from registry.principal import Principal

MAX_LIMIT: Final = 2**62  # what a BIGINT holds with room to add a push to it
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)b?\s*$", re.IGNORECASE)
_UNITS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


class _Keep:
    """Leave this limit as it is (``set_quota`` called without it)."""


KEEP: Final = _Keep()


class NamespaceInfo(BaseModel):
    """A namespace's usage and limits (None: no limit)."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    adapters: int
    versions: int
    bytes: int
    max_bytes: int | None
    max_versions: int | None


def parse_size(text: str) -> int:
    """Bytes from ``10G``, ``500MB``, ``1.5TiB`` or ``1234``: K/M/G/T/P are powers of 1000,
    Ki/Mi/Gi/Ti/Pi powers of 1024, as ``human_size`` prints them."""
    match = _SIZE_RE.match(text or "")
    if not match:
        raise InvalidInput(f"{text!r} is not a size; write it as 10G, 500M, 1.5TiB or bytes")
    number, unit, binary = match.groups()
    if binary and not unit:
        raise InvalidInput(f"{text!r} is not a size; write it as 10G, 500M, 1.5TiB or bytes")
    base = 1024 if binary else 1000
    value = int(float(number) * base ** _UNITS[unit.lower()])
    return check_limit(value, "max bytes")


def check_limit(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT:
        raise InvalidInput(f"{what} must be a whole number between 0 and {MAX_LIMIT}")
    return value


def usage(session: Session, namespace_id: int) -> tuple[int, int]:
    """(bytes, versions) the namespace holds now."""
    total, count = session.execute(
        select(func.coalesce(func.sum(m.AdapterVersion.size), 0), func.count())
        .select_from(m.AdapterVersion)
        .join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
        .where(m.Adapter.namespace_id == namespace_id)
    ).one()
    return int(total), int(count)


def enforce_quota(session: Session, namespace_id: int, *, adding_bytes: int) -> None:
    """Inside a write transaction about to add one version of ``adding_bytes``: raise
    QuotaExceeded (the transaction then rolls back) when it would pass a limit."""
    limits = select(m.Namespace.name, m.Namespace.max_bytes, m.Namespace.max_versions).where(
        m.Namespace.id == namespace_id
    )
    _, max_bytes, max_versions = session.execute(limits).one()
    if max_bytes is None and max_versions is None:
        return
    # Re-read under the row lock: a quota changed or a push committed while we waited.
    # NO KEY UPDATE: racing pushes queue here, yet it does not conflict with the KEY SHARE
    # lock a push's new adapter row takes on its namespace (FOR UPDATE would deadlock).
    locked = limits.with_for_update(key_share=True)
    name, max_bytes, max_versions = session.execute(locked).one()
    used_bytes, used_versions = usage(session, namespace_id)
    problems = []
    if max_versions is not None and used_versions + 1 > max_versions:
        problems.append(f"it would hold {used_versions + 1} versions, the limit is {max_versions}")
    if max_bytes is not None and used_bytes + adding_bytes > max_bytes:
        problems.append(
            f"it would hold {_size(used_bytes + adding_bytes)} (this version adds"
            f" {_size(adding_bytes)}), the limit is {_size(max_bytes)}"
        )
    if problems:
        raise QuotaExceeded(
            f"namespace {name} is at its quota: {'; '.join(problems)}. Delete versions it no"
            " longer needs (`lorareg delete`) or ask an admin to raise the quota"
            " (`lorareg namespace quota set`)",
            details={
                "namespace": name,
                "bytes": used_bytes,
                "versions": used_versions,
                "max_bytes": max_bytes,
                "max_versions": max_versions,
            },
        )


def namespace_info(db: Database, namespace: str, *, principal: Principal) -> NamespaceInfo:
    """Usage and limits of ``namespace``; NotFound when it holds nothing and has no quota."""
    check_name(namespace, what="namespace")
    principal.require_namespace(namespace, "namespace")
    with db.read() as s:
        row = s.scalar(select(m.Namespace).where(m.Namespace.name == namespace))
        if row is None:
            raise NotFound(f"namespace {namespace} does not exist; `lorareg list` shows them")
        return _info(s, row)


def set_quota(
    db: Database,
    namespace: str,
    *,
    principal: Principal,
    max_bytes: int | None | _Keep = KEEP,
    max_versions: int | None | _Keep = KEEP,
) -> NamespaceInfo:
    """Set (an int), clear (None) or keep (``KEEP``) each limit; admins only. A namespace
    that does not exist yet is created, so a quota can be in place before the first push.
    Lowering a limit below the current usage is allowed: it refuses further pushes."""
    check_name(namespace, what="namespace")
    principal.require_namespace(namespace, "namespace")
    principal.require("admin")
    values: dict[str, int | None] = {}
    if not isinstance(max_bytes, _Keep):
        values["max_bytes"] = None if max_bytes is None else check_limit(max_bytes, "max bytes")
    if not isinstance(max_versions, _Keep):
        values["max_versions"] = (
            None if max_versions is None else check_limit(max_versions, "max versions")
        )
    with db.write() as s:
        ins = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        s.execute(ins(m.Namespace).values(name=namespace).on_conflict_do_nothing())
        if values:
            s.execute(update(m.Namespace).where(m.Namespace.name == namespace).values(**values))
        row = s.scalar(select(m.Namespace).where(m.Namespace.name == namespace))
        assert row is not None
        s.refresh(row)
        s.add(
            m.Event(
                kind="namespace.quota_set",
                namespace=namespace,
                actor=principal.name,
                payload={"max_bytes": row.max_bytes, "max_versions": row.max_versions},
            )
        )
        s.flush()
        return _info(s, row)


def _info(s: Session, row: m.Namespace) -> NamespaceInfo:
    used_bytes, used_versions = usage(s, row.id)
    # Adapters with at least one version (an emptied adapter is listed nowhere either).
    adapters = s.scalar(
        select(func.count(func.distinct(m.AdapterVersion.adapter_id)))
        .join(m.Adapter, m.Adapter.id == m.AdapterVersion.adapter_id)
        .where(m.Adapter.namespace_id == row.id)
    )
    return NamespaceInfo(
        namespace=row.name,
        adapters=int(adapters or 0),
        versions=used_versions,
        bytes=used_bytes,
        max_bytes=row.max_bytes,
        max_versions=row.max_versions,
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"

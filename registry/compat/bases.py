"""Registered base models: the catalog's record of what a base model is (headers only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog.refs import check_base_name
from registry.compat.fingerprint import BaseModelInfo
from registry.compat.sources import check_server_source, inspect_base
from registry.config import Settings
from registry.db import models as m
from registry.db.database import Database
from registry.errors import AlreadyExists, BaseModelNotFound
from registry.timestamps import iso_z


def base_summary(row: m.BaseModel) -> dict[str, Any]:
    info = row.info or {}
    return {
        "name": row.name,
        "source": row.source,
        "structure_hash": row.structure_hash,
        "content_hash": row.content_hash,
        "architecture": row.architecture,
        "tensors": len(info.get("tensors", {})),
        "files": len(info.get("files", [])),
        "total_size": row.total_size,
        "created_by": row.created_by,
        "created_at": iso_z(row.created_at),
    }


def add_base(
    db: Database,
    settings: Settings,
    name: str,
    source: str,
    *,
    actor: str,
    hf_token: str | None = None,
    on_server: bool = False,
    caller_is_admin: bool = False,
) -> tuple[dict[str, Any], bool]:
    """Read ``source`` (folder, s3://, hf://repo@rev) and record it as base ``name``.

    ``on_server``: the request came over the network, so a folder or bucket source is
    read only for an admin and only under the configured roots and buckets (see
    ``check_server_source``); embedded use reads whatever its user can.

    Registering the same name again with the same fingerprint changes nothing (returns
    created=False); with another fingerprint it is refused: a base model's name must
    keep meaning the same weights, or earlier checks would silently lie.
    """
    check_base_name(name)
    if on_server:
        check_server_source(
            source,
            admin=caller_is_admin,
            roots=settings.base_roots,
            buckets=settings.base_buckets,
        )
    info = inspect_base(
        source,
        max_header_bytes=settings.max_header_bytes,
        s3_endpoint_url=settings.s3_endpoint_url,
        hf_token=hf_token,
    )
    with db.write() as s:
        row = s.scalar(select(m.BaseModel).where(m.BaseModel.name == name))
        if row is not None:
            same = row.structure_hash == info.structure_hash and (
                row.content_hash == info.content_hash or info.content_hash is None
            )
            if same:
                return base_summary(row), False
            raise AlreadyExists(
                f"base model {name} is already registered with other weights"
                f" (structure {row.structure_hash[:12] if row.structure_hash else '?'});"
                " register the new weights under a new name"
            )
        row = m.BaseModel(
            name=name,
            source=info.source or source,  # an hf:// source pinned to its commit
            structure_hash=info.structure_hash,
            content_hash=info.content_hash,
            architecture=info.architecture,
            info=info.to_json(),
            total_size=info.total_size,
            created_by=actor,
        )
        s.add(row)
        s.add(
            m.Event(
                kind="base.registered",
                actor=actor,
                payload={"name": name, "source": source, "structure_hash": info.structure_hash},
            )
        )
        s.flush()
        return base_summary(row), True


def list_bases(session: Session) -> list[dict[str, Any]]:
    return [
        base_summary(r) for r in session.scalars(select(m.BaseModel).order_by(m.BaseModel.name))
    ]


def base_headlines(
    session: Session, *, after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Bases by name after a key, on the unique name index, and whether more follow; the
    ``info`` JSON (every tensor's header) is left unread."""
    B = m.BaseModel
    q = select(B.name, B.source, B.architecture, B.total_size, B.structure_hash, B.created_at)
    if after:
        q = q.where(B.name > after)
    rows = session.execute(q.order_by(B.name).limit(limit + 1)).all()
    return [r._asdict() for r in rows[:limit]], len(rows) > limit


def base_names(session: Session, *, limit: int) -> list[str]:
    """Registered base model names by name: never a scan of the versions."""
    return list(session.scalars(select(m.BaseModel.name).order_by(m.BaseModel.name).limit(limit)))


def named_base_names(session: Session, *, visible: frozenset[str] | None, limit: int) -> list[str]:
    """Base models that the adapters of ``visible`` namespaces (None: all) name, registered
    or not."""
    V = m.AdapterVersion
    q = select(V.base_model).join(m.Adapter).join(m.Namespace).where(V.base_model.is_not(None))
    if visible is not None:
        q = q.where(m.Namespace.name.in_(sorted(visible)))
    return [b for b in session.scalars(q.distinct().limit(limit)) if b]


def base_row(session: Session, name: str) -> m.BaseModel:
    row = session.scalar(select(m.BaseModel).where(m.BaseModel.name == name))
    if row is None:
        raise BaseModelNotFound(
            f"base model {name} is not registered; register it with"
            f" `lorareg base add {name} SOURCE` (a folder, s3://... or hf://repo@rev)"
        )
    return row


def base_detail(session: Session, name: str) -> dict[str, Any]:
    row = base_row(session, name)
    doc = base_summary(row)
    doc["tensor_list"] = [
        {"name": k, "dtype": v[0], "shape": v[1]}
        for k, v in sorted((row.info or {}).get("tensors", {}).items())
    ]
    return doc


def base_info(session: Session, name: str) -> BaseModelInfo:
    row = base_row(session, name)
    return BaseModelInfo.from_json(row.info or {})

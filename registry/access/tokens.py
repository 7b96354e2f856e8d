"""API tokens: create, list, revoke, and authenticate a bearer token to a Principal.

Only a token's sha256 is stored; the plaintext is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from registry.catalog.refs import check_name
from registry.db import models as m
from registry.db.database import Database
from registry.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from registry.principal import ROLES, Principal

TOKEN_PREFIX = "lrg_"


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    prefix: str
    role: str
    namespaces: list[str] | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def token_digest(token: str) -> str:
    """What the catalog keeps of a token (and what caches key it by): its sha256."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role


def create_token(
    db: Database,
    *,
    name: str,
    role: str,
    actor: str,
    namespaces: list[str] | None = None,
    expires_in_days: float | None = None,
    creator: Principal | None = None,
) -> tuple[str, TokenInfo]:
    """Create a token; the plaintext is returned once and never stored. ``creator`` (the
    caller, None for the local operator) may only mint tokens within its own scope."""
    check_role(role)
    if not name or len(name) > 128:
        raise InvalidInput("a token needs a name of 1-128 characters")
    for ns in namespaces or []:
        check_name(ns, what="namespace")
    if creator is not None:
        creator.require_covers(namespaces or None, "a new token's namespaces")
    if expires_in_days is not None and not 0 < expires_in_days <= 36500:
        raise InvalidInput("--expires-in-days must be between 0 and 36500")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    with db.write() as s:
        row = m.Token(
            name=name,
            token_hash=token_digest(plaintext),
            prefix=plaintext[:10],
            role=role,
            namespaces=sorted(set(namespaces)) if namespaces else None,
            created_by=actor,
            expires_at=expires,
        )
        s.add(row)
        s.add(m.Event(kind="token.created", actor=actor, payload={"name": name, "role": role}))
        s.flush()
        return plaintext, _info(row)


def list_tokens(db: Database, *, viewer: Principal | None = None) -> list[TokenInfo]:
    """Every token, or for a scoped ``viewer`` those whose scope lies within its own."""
    with db.read() as s:
        rows = [_info(r) for r in s.scalars(select(m.Token).order_by(m.Token.id))]
    # Tokens are few (people make them by hand), and JSON scopes do not filter alike on
    # both backends: the whole table is read, so nothing is lost to a LIMIT.
    return [t for t in rows if viewer is None or viewer.covers(t.namespaces)]


def revoke_token(
    db: Database, token_id: int, *, actor: str, viewer: Principal | None = None
) -> TokenInfo:
    with db.write() as s:
        row = s.get(m.Token, token_id)
        outside = row is None or (viewer is not None and not viewer.covers(row.namespaces))
        if viewer is not None and viewer.namespaces is not None and outside:
            # One answer for "missing" and "someone else's": ids reveal nothing.
            raise Forbidden(f"token {token_id} is not one this token may manage")
        if row is None:
            raise NotFound(f"no token with id {token_id}; `lorareg token list` shows them")
        if row.revoked_at is None:
            row.revoked_at = datetime.now(UTC)
            s.add(m.Event(kind="token.revoked", actor=actor, payload={"name": row.name}))
        s.flush()
        return _info(row)


def authenticate(db: Database, token: str) -> Principal:
    """The principal for a bearer token; Unauthorized when unknown, revoked or expired."""
    digest = token_digest(token)
    with db.read() as s:
        row = s.scalar(select(m.Token).where(m.Token.token_hash == digest))
    # The lookup is by hash; compare again in constant time so timing reveals nothing.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        raise Unauthorized("invalid token; create one with `lorareg token create`")
    if row.revoked_at is not None:
        raise Unauthorized(f"token {row.name!r} was revoked")
    expires = row.expires_at
    if expires is not None:
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        if expires <= datetime.now(UTC):
            raise Unauthorized(f"token {row.name!r} expired at {expires:%Y-%m-%d %H:%M} UTC")
    scope = frozenset(row.namespaces) if row.namespaces else None
    return Principal(
        name=row.name,
        role=row.role,
        namespaces=scope,
        token_id=row.id,
        default_region=row.default_region,
        expires_at=expires,
    )


def _info(row: m.Token) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        role=row.role,
        namespaces=row.namespaces,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )

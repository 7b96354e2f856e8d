"""API tokens and webhooks, once for every edge. The caller's scope is checked here: a
scoped admin manages only tokens and webhooks within its namespaces."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from registry import access
from registry.db import models as m
from registry.db.database import Database
from registry.lifecycle import webhooks
from registry.principal import Principal
from registry.services.models import (
    TokenCreated,
    TokenView,
    WebhookCreated,
    WebhookDelivery,
    WebhookView,
)


def create_token(
    db: Database,
    *,
    name: str,
    role: str,
    principal: Principal,
    namespaces: list[str] | None = None,
    expires_in_days: float | None = None,
) -> TokenCreated:
    """A new token; this answer is the only time its secret is shown."""
    secret, info = access.create_token(
        db,
        name=name,
        role=role,
        actor=principal.name,
        namespaces=namespaces,
        expires_in_days=expires_in_days,
        creator=principal,
    )
    return TokenCreated(token=secret, **asdict(info))


def list_tokens(db: Database, *, principal: Principal) -> list[TokenView]:
    return [TokenView(**asdict(t)) for t in access.list_tokens(db, viewer=principal)]


def revoke_token(db: Database, token_id: int, *, principal: Principal) -> TokenView:
    info = access.revoke_token(db, token_id, actor=principal.name, viewer=principal)
    return TokenView(**asdict(info))


def create_webhook(
    db: Database,
    *,
    url: str,
    principal: Principal,
    namespace: str | None = None,
    kinds: list[str] | None = None,
    secret: str | None = None,
    allow_hosts: Collection[str] = (),
) -> WebhookCreated:
    """Subscribe ``url``; the signing secret is shown in this answer only."""
    # An unscoped webhook receives every namespace's events: for unscoped admins only.
    principal.require_covers([namespace] if namespace else None, "a webhook's namespace")
    info, signing = webhooks.create_webhook(
        db,
        url=url,
        actor=principal.name,
        namespace=namespace,
        kinds=kinds,
        secret=secret,
        allow_hosts=allow_hosts,
    )
    return WebhookCreated(secret=signing, **asdict(info))


def list_webhooks(db: Database, *, principal: Principal) -> list[WebhookView]:
    hooks = webhooks.list_webhooks(db)  # every row: no LIMIT to filter after
    return [
        WebhookView(**asdict(w))
        for w in hooks
        if principal.covers([w.namespace] if w.namespace else None)
    ]


def delete_webhook(db: Database, webhook_id: int, *, principal: Principal) -> None:
    access.require_webhook_scope(db, webhook_id, principal)
    webhooks.delete_webhook(db, webhook_id, actor=principal.name)


def webhook_deliveries(
    db: Database, webhook_id: int, *, principal: Principal
) -> list[WebhookDelivery]:
    access.require_webhook_scope(db, webhook_id, principal)
    return [WebhookDelivery.model_validate(d) for d in webhooks.deliveries(db, webhook_id)]


class SessionToken(BaseModel):
    """What a dashboard session needs of the token it stands for: the stored hash signs
    the session, so revoking the token ends it. Never sent to a client."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    role: str
    namespaces: list[str] | None
    token_hash: str
    expires_at: datetime | None
    revoked_at: datetime | None
    default_region: str | None = None


def session_token(db: Database, token_id: int) -> SessionToken | None:
    """The token with this id, revoked or expired ones included (None: no such token)."""
    with db.read() as s:
        row = s.get(m.Token, token_id)
        if row is None:
            return None
        return SessionToken(
            id=row.id,
            name=row.name,
            role=row.role,
            namespaces=list(row.namespaces) if row.namespaces else None,
            token_hash=row.token_hash,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
            default_region=row.default_region,
        )

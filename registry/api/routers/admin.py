"""Tokens and webhooks: ``/api/v1/tokens`` and ``/webhooks`` (the change feed is in ``events``).

None of these has a namespace in its path, so each checks the caller's scope itself: a
scoped admin manages only tokens and webhooks within its namespaces (403 ``forbidden``
otherwise).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from registry.api.deps import Admin, CurrentUser, IdPath, RuntimeDep
from registry.api.schemas import TokenRequest, WebhookRequest
from registry.lifecycle import access, webhooks

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.post("/tokens", status_code=201, dependencies=[Admin])
def create_token(rt: RuntimeDep, user: CurrentUser, body: TokenRequest) -> dict[str, Any]:
    """Create a token; the response is the only time its secret is shown. A scoped admin
    names namespaces within its own."""
    secret, info = access.create_token(
        rt.db,
        name=body.name,
        role=body.role,
        actor=user.name,
        namespaces=body.namespaces,
        expires_in_days=body.expires_in_days,
        creator=user,
    )
    return {"token": secret, **asdict(info)}


@router.get("/tokens", dependencies=[Admin])
def list_tokens(rt: RuntimeDep, user: CurrentUser) -> list[dict[str, Any]]:
    return [asdict(t) for t in access.list_tokens(rt.db, viewer=user)]


@router.delete("/tokens/{token_id}", dependencies=[Admin])
def revoke_token(rt: RuntimeDep, user: CurrentUser, token_id: IdPath) -> dict[str, Any]:
    return asdict(access.revoke_token(rt.db, token_id, actor=user.name, viewer=user))


@router.post("/webhooks", status_code=201, dependencies=[Admin])
def create_webhook(rt: RuntimeDep, user: CurrentUser, body: WebhookRequest) -> dict[str, Any]:
    # An unscoped webhook receives every namespace's events: for unscoped admins only.
    user.require_covers([body.namespace] if body.namespace else None, "a webhook's namespace")
    info, secret = webhooks.create_webhook(
        rt.db,
        url=body.url,
        actor=user.name,
        namespace=body.namespace,
        kinds=body.kinds,
        secret=body.secret,
        allow_hosts=rt.settings.webhook_allow_hosts,
    )
    return {"secret": secret, **asdict(info)}


@router.get("/webhooks", dependencies=[Admin])
def list_webhooks(rt: RuntimeDep, user: CurrentUser) -> list[dict[str, Any]]:
    hooks = webhooks.list_webhooks(rt.db)  # every row: no LIMIT to filter after
    return [asdict(w) for w in hooks if user.covers([w.namespace] if w.namespace else None)]


@router.delete("/webhooks/{webhook_id}", status_code=204, dependencies=[Admin])
def delete_webhook(rt: RuntimeDep, user: CurrentUser, webhook_id: IdPath) -> None:
    access.require_webhook_scope(rt.db, webhook_id, user)
    webhooks.delete_webhook(rt.db, webhook_id, actor=user.name)


@router.get("/webhooks/{webhook_id}/deliveries", dependencies=[Admin])
def webhook_deliveries(
    rt: RuntimeDep, user: CurrentUser, webhook_id: IdPath
) -> list[dict[str, Any]]:
    access.require_webhook_scope(rt.db, webhook_id, user)
    return webhooks.deliveries(rt.db, webhook_id)

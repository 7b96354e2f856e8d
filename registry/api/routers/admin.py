"""Tokens and webhooks: ``/api/v1/tokens`` and ``/webhooks`` (the change feed is in ``events``).

None of these has a namespace in its path, so each checks the caller's scope itself: a
scoped admin manages only tokens and webhooks within its namespaces (403 ``forbidden``
otherwise).
"""

from __future__ import annotations

from fastapi import APIRouter

from registry.api.deps import Admin, CurrentUser, IdPath, RuntimeDep
from registry.api.responses import ERRORS
from registry.api.schemas import TokenRequest, WebhookRequest
from registry.services import access as access_service
from registry.services.models import (
    TokenCreated,
    TokenView,
    WebhookCreated,
    WebhookDelivery,
    WebhookView,
)

router = APIRouter(prefix="/api/v1", tags=["admin"], responses=ERRORS)


@router.post("/tokens", status_code=201, response_model=TokenCreated, dependencies=[Admin])
def create_token(rt: RuntimeDep, user: CurrentUser, body: TokenRequest) -> TokenCreated:
    """Create a token; the response is the only time its secret is shown. A scoped admin
    names namespaces within its own."""
    return access_service.create_token(
        rt.db,
        name=body.name,
        role=body.role,
        principal=user,
        namespaces=body.namespaces,
        expires_in_days=body.expires_in_days,
    )


@router.get("/tokens", response_model=list[TokenView], dependencies=[Admin])
def list_tokens(rt: RuntimeDep, user: CurrentUser) -> list[TokenView]:
    return access_service.list_tokens(rt.db, principal=user)


@router.delete("/tokens/{token_id}", response_model=TokenView, dependencies=[Admin])
def revoke_token(rt: RuntimeDep, user: CurrentUser, token_id: IdPath) -> TokenView:
    return access_service.revoke_token(rt.db, token_id, principal=user)


@router.post("/webhooks", status_code=201, response_model=WebhookCreated, dependencies=[Admin])
def create_webhook(rt: RuntimeDep, user: CurrentUser, body: WebhookRequest) -> WebhookCreated:
    return access_service.create_webhook(
        rt.db,
        url=body.url,
        principal=user,
        namespace=body.namespace,
        kinds=body.kinds,
        secret=body.secret,
        allow_hosts=rt.settings.webhook_allow_hosts,
    )


@router.get("/webhooks", response_model=list[WebhookView], dependencies=[Admin])
def list_webhooks(rt: RuntimeDep, user: CurrentUser) -> list[WebhookView]:
    return access_service.list_webhooks(rt.db, principal=user)


@router.delete("/webhooks/{webhook_id}", status_code=204, dependencies=[Admin])
def delete_webhook(rt: RuntimeDep, user: CurrentUser, webhook_id: IdPath) -> None:
    access_service.delete_webhook(rt.db, webhook_id, principal=user)


@router.get(
    "/webhooks/{webhook_id}/deliveries", response_model=list[WebhookDelivery], dependencies=[Admin]
)
def webhook_deliveries(
    rt: RuntimeDep, user: CurrentUser, webhook_id: IdPath
) -> list[WebhookDelivery]:
    return access_service.webhook_deliveries(rt.db, webhook_id, principal=user)

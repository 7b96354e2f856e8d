"""Tokens, webhooks and the change feed: ``/api/v1/tokens``, ``/webhooks``, ``/events``.

None of these has a namespace in its path, so each checks the caller's scope itself: a
scoped admin manages only tokens and webhooks within its namespaces (403 ``forbidden``
otherwise), and the feed holds only events of the caller's namespaces.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from registry.api.deps import MAX_ID, Admin, CurrentUser, IdPath, Reader, RuntimeDep
from registry.api.schemas import TokenRequest, WebhookRequest
from registry.api.waits import WaitLimiter, wait_key
from registry.catalog.refs import check_name
from registry.domain import EventInfo
from registry.lifecycle import events
from registry.services import access as access_service
from registry.services.models import TokenCreated, TokenView, WebhookCreated, WebhookView

router = APIRouter(prefix="/api/v1", tags=["admin"])


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


@router.get("/webhooks/{webhook_id}/deliveries", dependencies=[Admin])
def webhook_deliveries(
    rt: RuntimeDep, user: CurrentUser, webhook_id: IdPath
) -> list[dict[str, Any]]:
    return access_service.webhook_deliveries(rt.db, webhook_id, principal=user)


@router.get("/events", response_model=list[EventInfo], dependencies=[Reader])
async def follow_events(
    request: Request,
    rt: RuntimeDep,
    user: CurrentUser,
    since: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    namespace: str | None = None,
    wait: Annotated[float, Query(ge=0, le=60)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventInfo]:
    """Events after ``since`` in the caller's namespaces (events of no namespace, such as
    token changes, only for unscoped tokens); with ``wait``, a long poll that answers as
    soon as one arrives (or with ``[]`` after ``wait`` seconds). A token holds at most
    ``LORAREG_MAX_WAITS_PER_TOKEN`` long polls at once: more is 429 ``too_many_waits``."""
    if namespace is not None:
        check_name(namespace, what="namespace")
        if not user.sees(namespace):
            return []

    def fetch() -> list[EventInfo]:
        return events.events_after(
            rt.db, since, namespaces=user.namespaces, namespace=namespace, limit=limit
        )

    found = await run_in_threadpool(fetch)
    if found or wait == 0:
        return found
    limiter: WaitLimiter = request.app.state.waits
    with limiter.hold(wait_key(user)):
        deadline = time.monotonic() + wait
        while not found and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            found = await run_in_threadpool(fetch)
    return found

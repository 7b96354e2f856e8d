"""Tokens, webhooks and the change feed: ``/api/v1/tokens``, ``/webhooks``, ``/events``."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from registry.api.deps import MAX_ID, Admin, CurrentUser, IdPath, Reader, RuntimeDep
from registry.api.schemas import TokenRequest, WebhookRequest
from registry.catalog.refs import check_name
from registry.domain import EventInfo
from registry.lifecycle import access, events, webhooks

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.post("/tokens", status_code=201, dependencies=[Admin])
def create_token(rt: RuntimeDep, user: CurrentUser, body: TokenRequest) -> dict[str, Any]:
    """Create a token; the response is the only time its secret is shown."""
    secret, info = access.create_token(
        rt.db,
        name=body.name,
        role=body.role,
        actor=user.name,
        namespaces=body.namespaces,
        expires_in_days=body.expires_in_days,
    )
    return {"token": secret, **asdict(info)}


@router.get("/tokens", dependencies=[Admin])
def list_tokens(rt: RuntimeDep) -> list[dict[str, Any]]:
    return [asdict(t) for t in access.list_tokens(rt.db)]


@router.delete("/tokens/{token_id}", dependencies=[Admin])
def revoke_token(rt: RuntimeDep, user: CurrentUser, token_id: IdPath) -> dict[str, Any]:
    return asdict(access.revoke_token(rt.db, token_id, actor=user.name))


@router.post("/webhooks", status_code=201, dependencies=[Admin])
def create_webhook(rt: RuntimeDep, user: CurrentUser, body: WebhookRequest) -> dict[str, Any]:
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
def list_webhooks(rt: RuntimeDep) -> list[dict[str, Any]]:
    return [asdict(w) for w in webhooks.list_webhooks(rt.db)]


@router.delete("/webhooks/{webhook_id}", status_code=204, dependencies=[Admin])
def delete_webhook(rt: RuntimeDep, user: CurrentUser, webhook_id: IdPath) -> None:
    webhooks.delete_webhook(rt.db, webhook_id, actor=user.name)


@router.get("/webhooks/{webhook_id}/deliveries", dependencies=[Admin])
def webhook_deliveries(rt: RuntimeDep, webhook_id: IdPath) -> list[dict[str, Any]]:
    return webhooks.deliveries(rt.db, webhook_id)


@router.get("/events", response_model=list[EventInfo], dependencies=[Reader])
async def follow_events(
    rt: RuntimeDep,
    user: CurrentUser,
    since: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    namespace: str | None = None,
    wait: Annotated[float, Query(ge=0, le=60)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventInfo]:
    """Events after ``since``; with ``wait``, a long poll that answers as soon as one
    arrives (or with ``[]`` after ``wait`` seconds)."""
    if namespace is not None:
        check_name(namespace, what="namespace")
        if not user.sees(namespace):
            return []
    deadline = time.monotonic() + wait
    while True:
        found = await run_in_threadpool(
            events.events_after,
            rt.db,
            since,
            namespaces=user.namespaces,
            namespace=namespace,
            limit=limit,
        )
        if found or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.1)

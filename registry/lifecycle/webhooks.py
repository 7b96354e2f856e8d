"""Webhooks: events POSTed to subscribers, signed with HMAC-SHA256, retried with backoff.

Signature header (Stripe-style, so receivers can reject replays):
    X-Lorareg-Signature: t=<unix seconds>,v1=<hex hmac_sha256(secret, f"{t}.{body}")>
Each event becomes one delivery per matching webhook; each attempt is recorded in the
delivery's ``attempt_log`` as a status code or a short failure code (``timeout``,
``connect_failed``), never transport error text: that would turn the log into a port
scanner. Sending happens outside any transaction: due rows are claimed in a short one
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several replicas can run the dispatcher, and
a lease pushes ``next_attempt_at`` forward so a claimed row is not picked twice), POSTed,
and each result recorded in another. A webhook's URL may hold credentials: events,
listings and delivery records name the webhook by id and host only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from registry.catalog.records import event_info
from registry.catalog.refs import check_name
from registry.db import models as m
from registry.db.database import Database
from registry.errors import NotFound
from registry.lifecycle.webhook_targets import (
    Resolver,
    host_of,
    resolve_target,
    system_resolver,
)
from registry.timestamps import iso_z

MAX_ATTEMPTS = 8
SIGNATURE_HEADER = "X-Lorareg-Signature"
# A claimed delivery is not due again for this long, so a replica that dies mid-send
# leaves it to be retried (at least once), never lost; longer than a whole batch of
# sends at the dispatcher's 10 s timeout, so no other replica sends it meanwhile.
CLAIM_LEASE_S = 600

# (url, body, headers) -> HTTP status; raises DeliveryFailed (or anything) on failure.
Sender = Callable[[str, bytes, dict[str, str]], int]


class DeliveryFailed(Exception):
    """A send that got no HTTP status; ``code`` is what the delivery log records."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class WebhookInfo:
    """A subscription as listings show it: the host only (the URL may hold credentials)."""

    id: int
    host: str
    namespace: str | None
    kinds: list[str] | None
    active: bool
    created_by: str
    created_at: datetime


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance_s: int = 300) -> bool:
    """What a receiver does: recompute and compare in constant time, reject stale stamps."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), header)


def create_webhook(
    db: Database,
    *,
    url: str,
    actor: str,
    namespace: str | None = None,
    kinds: list[str] | None = None,
    secret: str | None = None,
    allow_hosts: Collection[str] = (),
    resolve: Resolver = system_resolver,
) -> tuple[WebhookInfo, str]:
    """Subscribe ``url``; returns the webhook and its signing secret (shown once).

    The URL's host must resolve to public addresses only (see webhook_targets), unless
    it is listed in ``allow_hosts``; the URL itself is never shown again.
    """
    resolve_target(url, allow_hosts=allow_hosts, resolve=resolve)
    if namespace is not None:
        check_name(namespace, what="namespace")
    secret = secret or secrets.token_hex(32)
    with db.write() as s:
        # Start after the current tail: a new subscriber gets future events only.
        tail = s.scalar(select(m.Event.id).order_by(m.Event.id.desc()).limit(1)) or 0
        row = m.Webhook(
            url=url,
            secret=secret,
            namespace=namespace,
            kinds=kinds,
            created_by=actor,
            last_event_id=tail,
        )
        s.add(row)
        s.flush()
        s.add(
            m.Event(
                kind="webhook.created",
                namespace=namespace,
                actor=actor,
                payload={"id": row.id, "host": host_of(url)},
            )
        )
        return _info(row), secret


def list_webhooks(db: Database) -> list[WebhookInfo]:
    with db.read() as s:
        return [_info(r) for r in s.scalars(select(m.Webhook).order_by(m.Webhook.id))]


def delete_webhook(db: Database, webhook_id: int, *, actor: str) -> None:
    with db.write() as s:
        row = s.get(m.Webhook, webhook_id)
        if row is None:
            raise NotFound(f"no webhook with id {webhook_id}")
        s.delete(row)
        s.add(m.Event(kind="webhook.deleted", actor=actor, payload={"id": webhook_id}))


def deliveries(db: Database, webhook_id: int) -> list[dict[str, Any]]:
    with db.read() as s:
        rows = s.scalars(
            select(m.WebhookDelivery)
            .where(m.WebhookDelivery.webhook_id == webhook_id)
            .order_by(m.WebhookDelivery.id)
        )
        return [
            {
                "event_id": r.event_id,
                "state": r.state,
                "attempts": r.attempts,
                "last_status": r.last_status,
                "attempt_log": list(r.attempt_log or []),
            }
            for r in rows
        ]


def enqueue(db: Database) -> int:
    """Create deliveries for events newer than each webhook's cursor; returns how many."""
    created = 0
    with db.write() as s:
        hooks = s.scalars(
            select(m.Webhook).where(m.Webhook.active.is_(True)).with_for_update(skip_locked=True)
        ).all()
        for hook in hooks:
            q = select(m.Event).where(m.Event.id > hook.last_event_id).order_by(m.Event.id)
            events = s.scalars(q.limit(1000)).all()
            for ev in events:
                if hook.namespace is not None and ev.namespace != hook.namespace:
                    continue
                if hook.kinds and ev.kind not in hook.kinds:
                    continue
                s.add(m.WebhookDelivery(webhook_id=hook.id, event_id=ev.id))
                created += 1
            if events:
                hook.last_event_id = events[-1].id
    return created


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    url: str
    body: bytes
    headers: dict[str, str]


def deliver_due(db: Database, send: Sender, *, now: datetime | None = None, batch: int = 50) -> int:
    """Attempt every due delivery once; returns the number attempted.

    Claims in one short transaction, sends with no transaction open, records each result
    in its own: a slow receiver never holds a database lock.
    """
    now = now or datetime.now(UTC)
    claimed = _claim_due(db, now=now, batch=batch)
    for job in claimed:
        status, error = None, None
        try:
            status = send(job.url, job.body, job.headers)
        except DeliveryFailed as exc:
            error = exc.code
        except Exception:  # any other failure is a failed attempt too, retried
            error = "send_failed"
        _record(db, job.delivery_id, status=status, error=error, now=now)
    return len(claimed)


def _claim_due(db: Database, *, now: datetime, batch: int) -> list[_Claimed]:
    out: list[_Claimed] = []
    with db.write() as s:
        due = s.scalars(
            select(m.WebhookDelivery)
            .where(m.WebhookDelivery.state == "pending", m.WebhookDelivery.next_attempt_at <= now)
            .order_by(m.WebhookDelivery.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        for d in due:
            hook = s.get(m.Webhook, d.webhook_id)
            event = s.get(m.Event, d.event_id)
            if hook is None or event is None:
                continue
            d.next_attempt_at = now + timedelta(seconds=CLAIM_LEASE_S)
            body = json.dumps(event_info(event).model_dump(mode="json")).encode()
            ts = int(time.time())
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(hook.secret, ts, body),
                "X-Lorareg-Event": event.kind,
                "X-Lorareg-Delivery": str(d.id),
            }
            out.append(_Claimed(delivery_id=d.id, url=hook.url, body=body, headers=headers))
    return out


def _record(
    db: Database, delivery_id: int, *, status: int | None, error: str | None, now: datetime
) -> None:
    with db.write() as s:
        d = s.get(m.WebhookDelivery, delivery_id)
        if d is None:  # its webhook was deleted while the request was in flight
            return
        d.attempts += 1
        d.last_status = status
        d.last_error = error
        d.attempt_log = [
            *(d.attempt_log or []),
            {"at": iso_z(now), "status": status, "error": error},
        ]
        if status is not None and 200 <= status < 300:
            d.state = "delivered"
            d.delivered_at = now
        elif d.attempts >= MAX_ATTEMPTS:
            d.state = "failed"
        else:
            d.next_attempt_at = now + timedelta(seconds=min(3600, 2**d.attempts))


def _info(row: m.Webhook) -> WebhookInfo:
    return WebhookInfo(
        id=row.id,
        host=host_of(row.url),
        namespace=row.namespace,
        kinds=row.kinds,
        active=row.active,
        created_by=row.created_by,
        created_at=row.created_at,
    )

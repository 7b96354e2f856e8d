"""Namespace scopes beyond a single name: which webhooks and merge jobs a scoped caller
may manage or see. Checks on one namespace live on ``Principal`` itself."""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, select

from registry.db import models as m
from registry.db.database import Database
from registry.errors import Forbidden
from registry.principal import Principal


def require_webhook_scope(db: Database, webhook_id: int, viewer: Principal) -> None:
    """Forbidden unless a scoped ``viewer`` may manage webhook ``webhook_id`` (one of its
    namespaces); the same answer when it does not exist. Unscoped viewers pass through to
    the webhook service, which reports a missing id."""
    if viewer.namespaces is None:
        return
    with db.read() as s:
        namespace = s.scalar(select(m.Webhook.namespace).where(m.Webhook.id == webhook_id))
    if namespace is None or not viewer.sees(namespace):
        raise Forbidden(f"webhook {webhook_id} is not one this token may manage")


def visible_jobs(namespaces: frozenset[str] | None) -> ColumnElement[bool] | None:
    """A filter on ``jobs`` for a viewer scoped to ``namespaces`` (None: no filter): the
    output namespace is in scope (indexed) and no namespace the job touches lies outside."""
    if namespaces is None:
        return None
    scope = sorted(namespaces)
    JN = m.JobNamespace
    outside = exists().where(JN.job_id == m.Job.id, JN.namespace.not_in(scope))
    return m.Job.namespace.in_(scope) & ~outside

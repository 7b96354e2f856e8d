"""scrub_webhook_urls: old ``webhook.created`` events keep the host, not the whole URL

The first release wrote each subscribed URL into the ``webhook.created`` event, where
everyone who may read that namespace's feed could see it (URLs often carry a secret in
their path or query). Since then events record only the webhook id and host; this
migration rewrites the events written before that the same way. The downgrade cannot
bring the URLs back and leaves the scrubbed events as they are.

Revision ID: 0015_scrub_webhook_urls
Revises: 0013_regions
Create Date: 2026-12-03 16:10:00
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision = "0015_scrub_webhook_urls"
down_revision = "0013_regions"
branch_labels = None
depends_on = None

BATCH = 1000


def _host(url: object) -> str:
    try:
        return urlsplit(str(url)).hostname or "?"
    except ValueError:
        return "?"


def _scrubbed(payload: Any) -> dict[str, Any] | None:
    """The payload without its URL, or None when it holds none."""
    doc = json.loads(payload) if isinstance(payload, str) else payload
    if not isinstance(doc, dict) or "url" not in doc:
        return None
    return {"id": doc.get("id"), "host": _host(doc["url"])}


def upgrade() -> None:
    bind = op.get_bind()
    events = sa.table(
        "events", sa.column("id", sa.Integer), sa.column("kind"), sa.column("payload", sa.JSON)
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(events.c.id, events.c.payload)
            .where(events.c.kind == "webhook.created", events.c.id > last)
            .order_by(events.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for event_id, payload in rows:
            clean = _scrubbed(payload)
            if clean is not None:
                bind.execute(events.update().where(events.c.id == event_id).values(payload=clean))
        last = rows[-1][0]


def downgrade() -> None:
    pass  # the URLs are gone by design

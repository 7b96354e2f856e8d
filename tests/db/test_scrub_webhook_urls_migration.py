"""Migration 0015: ``webhook.created`` events written by the first release lose their URL
(which may carry a secret) and keep the id and host, on SQLite and PostgreSQL; other
events are untouched."""

from __future__ import annotations

import json

from sqlalchemy import text

from registry.db.database import Database
from registry.db.migrate import upgrade
from tests.db.test_migrations import empty_db  # noqa: F401  (the fixture)

AFTER = "0015_scrub_webhook_urls"
BEFORE = "0013_regions"


def test_old_webhook_events_keep_the_host_not_the_url(empty_db: Database) -> None:  # noqa: F811
    upgrade(empty_db, BEFORE)
    rows = [
        ("webhook.created", {"id": 1, "url": "https://hooks.example.com/T0/B0/s3cr3t?key=k"}),
        ("webhook.created", {"id": 2, "host": "new.example.com"}),  # already scrubbed
        ("webhook.created", {"id": 3, "url": "http://[::1"}),  # unparsable: host unknown
        ("version.created", {"url": "https://keep.example.com/x", "version": 1}),
    ]
    with empty_db.engine.begin() as c:
        for kind, payload in rows:
            c.execute(
                text(
                    "INSERT INTO events (kind, namespace, actor, payload, created_at)"
                    " VALUES (:kind, 'acme', 't', :payload, CURRENT_TIMESTAMP)"
                ),
                {"kind": kind, "payload": json.dumps(payload)},
            )
    upgrade(empty_db, AFTER)
    with empty_db.engine.connect() as c:
        stored = [
            json.loads(p) if isinstance(p, str) else p
            for (p,) in c.execute(text("SELECT payload FROM events ORDER BY id"))
        ]
    assert stored == [
        {"id": 1, "host": "hooks.example.com"},
        {"id": 2, "host": "new.example.com"},
        {"id": 3, "host": "?"},
        {"url": "https://keep.example.com/x", "version": 1},
    ]

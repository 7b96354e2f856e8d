"""Webhooks are sent outside any transaction: a slow receiver never holds a database lock."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.client.local import LocalClient
from registry.lifecycle import webhooks
from registry.runtime import Runtime


@pytest.fixture
def storage_backend() -> str:
    return "local"


def _idle_transactions(runtime: Runtime) -> int:
    """Sessions of this database left open in a transaction (PostgreSQL; 0 on SQLite,
    where the tag write above is the witness)."""
    if not runtime.settings.effective_database_url.startswith("postgresql"):
        return 0
    with runtime.db.read() as s:
        return int(
            s.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        )


def test_a_slow_receiver_does_not_block_a_tag_write(
    runtime: Runtime, adapter_library: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime.settings, "webhook_allow_hosts", ["127.0.0.1"])
    local = LocalClient(runtime)
    local.push(adapter_library["v1"], "acme/a", base="tiny-llama")
    hook = local.create_webhook("http://127.0.0.1:9/hook", namespace="acme")
    webhooks.enqueue(runtime.db)
    arrived, release = threading.Event(), threading.Event()

    def slow_receiver(url: str, body: bytes, headers: dict[str, str]) -> int:
        """A receiver that answers only when the test lets it (no timeout to run out)."""
        arrived.set()
        release.wait()
        return 200

    sender = threading.Thread(target=webhooks.deliver_due, args=(runtime.db, slow_receiver))
    sender.start()
    wrote = threading.Event()
    try:
        assert arrived.wait(30), "the delivery was never sent"

        def tag() -> None:
            local.tag("acme/a:1", {"owner": "ml"})
            wrote.set()

        writer = threading.Thread(target=tag)
        writer.start()
        # Before the fix the send ran inside the write transaction: on SQLite the tag
        # write queued behind it until the receiver answered (here: never, until released
        # below) and failed when the busy timeout ran out.
        wrote_while_receiver_waits = wrote.wait(30)
        open_transactions = _idle_transactions(runtime)
    finally:
        release.set()
        sender.join(60)
    writer.join(60)
    assert wrote_while_receiver_waits
    assert open_transactions == 0  # PostgreSQL: no session sits in a transaction meanwhile
    assert local.show("acme/a:1").tags == {"owner": "ml"}
    assert [d["state"] for d in webhooks.deliveries(runtime.db, hook["id"])] == ["delivered"]

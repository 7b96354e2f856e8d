"""Webhook addresses: internal targets refused in every spelling, at creation and again at
send time with the connection pinned to the checked address; the delivery log keeps
codes, not transport errors; the URL (credentials, secret paths) is never shown again."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from registry import errors
from registry.config import load_settings
from registry.db.database import Database
from registry.lifecycle import webhooks
from registry.lifecycle.dispatcher import WebhookDispatcher
from registry.lifecycle.webhook_targets import resolve_target
from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state
from tests.fixtures.s3 import free_port


@pytest.fixture
def storage_backend() -> str:
    """Webhooks never touch storage: the local store is enough."""
    return "local"


ISSUE_URLS = [
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://[::1]:22/",
    "http://127.0.0.1:5432/",
]
INTERNAL_SPELLINGS = [
    *ISSUE_URLS,
    "http://2130706433/",  # decimal 127.0.0.1
    "http://0177.0.0.1/",  # octal
    "http://0x7f000001/",  # hex
    "http://127.1/",  # short form
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
    "http://[::ffff:7f00:1]/",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[2002:a9fe:a9fe::1]/",  # 6to4 of 169.254.169.254
    "http://localhost:8080/",
    "http://LOCALHOST./",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://192.168.0.1/",
    "http://100.100.100.200/",  # Alibaba metadata (shared address space)
    "http://[fd00:ec2::254]/",  # AWS IPv6 metadata (unique local)
    "http://[fe80::1]/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "https://user:pw@127.0.0.1:443/x",
]


@pytest.mark.parametrize("url", INTERNAL_SPELLINGS)
def test_internal_addresses_are_refused_in_every_spelling(url: str) -> None:
    with pytest.raises(errors.WebhookTargetRefused) as info:
        resolve_target(url)
    assert info.value.code == "webhook_target_refused"


@pytest.mark.parametrize(
    "answers", [["10.0.0.7"], ["93.184.216.34", "127.0.0.1"], ["::1"], ["169.254.169.254"]]
)
def test_names_that_resolve_inside_are_refused(answers: list[str]) -> None:
    with pytest.raises(errors.WebhookTargetRefused, match="hooks.example.com") as info:
        resolve_target("https://hooks.example.com/x", resolve=lambda h, p: answers)
    assert "10.0.0.7" not in info.value.message  # the internal address is not revealed


def test_a_public_name_is_pinned_to_its_checked_address() -> None:
    target = resolve_target(
        "https://u:p@Hooks.Example.com:8443/a?b=1", resolve=lambda h, p: ["93.184.216.34"]
    )
    assert target.pinned_url() == "https://u:p@93.184.216.34:8443/a?b=1"
    assert (target.host, target.host_header) == ("hooks.example.com", "hooks.example.com:8443")


def test_allow_list_names_hosts_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LORAREG_WEBHOOK_ALLOW_HOSTS", "127.0.0.1, receiver.internal")
    allow = load_settings().webhook_allow_hosts
    assert allow == ["127.0.0.1", "receiver.internal"]
    assert resolve_target("http://127.0.0.1:9/", allow_hosts=allow).address == "127.0.0.1"
    with pytest.raises(errors.WebhookTargetRefused):  # another spelling is not on the list
        resolve_target("http://2130706433:9/", allow_hosts=allow)


@pytest.mark.parametrize("url", ISSUE_URLS)
def test_clients_refuse_internal_webhooks_and_store_nothing(
    client: Any, runtime: Runtime, url: str
) -> None:
    before = catalog_state(runtime)
    with pytest.raises(errors.WebhookTargetRefused):
        client.create_webhook(url)
    assert client.list_webhooks() == []
    assert catalog_state(runtime) == before


class _Receiver(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.calls.append({"headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver_port() -> Iterator[int]:
    _Receiver.calls = []
    port = free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield port
    srv.shutdown()
    srv.server_close()


def _event(db: Database) -> None:
    from registry.db import models as m

    with db.write() as s:
        s.add(m.Event(kind="stage.changed", namespace="acme", actor="t", payload={"to": "x"}))


def test_a_name_rebound_to_loopback_after_creation_is_not_delivered(
    db: Database, receiver_port: int
) -> None:
    public = {"hooks.example.test": ["93.184.216.34"]}
    hook, _ = webhooks.create_webhook(
        db,
        url=f"http://hooks.example.test:{receiver_port}/h",
        actor="admin",
        kinds=["stage.changed"],
        resolve=lambda h, p: public[h],
    )
    _event(db)
    rebound = WebhookDispatcher(db, resolve=lambda h, p: ["127.0.0.1"])
    try:
        assert rebound.tick() == 1
    finally:
        rebound.stop()
    assert _Receiver.calls == []
    [delivery] = webhooks.deliveries(db, hook.id)
    assert (delivery["state"], delivery["last_status"]) == ("pending", None)
    assert [a["error"] for a in delivery["attempt_log"]] == ["address_refused"]


def test_sends_connect_to_the_checked_address_with_the_original_host(
    db: Database, receiver_port: int
) -> None:
    # The name does not exist in DNS: only a connection pinned to the resolver's answer
    # can reach the receiver, and the receiver still sees the name in Host.
    def resolve(host: str, port: int) -> list[str]:
        assert host == "receiver.internal"
        return ["127.0.0.1"]

    allow = ["receiver.internal"]
    url = f"http://receiver.internal:{receiver_port}/h"
    hook, _ = webhooks.create_webhook(
        db, url=url, actor="a", kinds=["stage.changed"], allow_hosts=allow, resolve=resolve
    )
    _event(db)
    dispatcher = WebhookDispatcher(db, allow_hosts=allow, resolve=resolve)
    try:
        assert dispatcher.tick() == 1
    finally:
        dispatcher.stop()
    [call] = _Receiver.calls
    assert call["headers"]["Host"] == f"receiver.internal:{receiver_port}"
    assert webhooks.deliveries(db, hook.id)[0]["state"] == "delivered"


def test_delivery_log_keeps_codes_not_transport_errors(db: Database) -> None:
    closed = free_port()  # nothing listens here
    allow = ["127.0.0.1"]
    hook, _ = webhooks.create_webhook(
        db,
        url=f"http://127.0.0.1:{closed}/h",
        actor="a",
        kinds=["stage.changed"],
        allow_hosts=allow,
    )
    _event(db)
    dispatcher = WebhookDispatcher(db, allow_hosts=allow)
    try:
        assert dispatcher.tick() == 1
    finally:
        dispatcher.stop()
    [delivery] = webhooks.deliveries(db, hook.id)
    assert delivery["attempt_log"][0]["error"] == "connect_failed"
    text = json.dumps(delivery)
    assert "Errno" not in text and "refused" not in text.lower()


def test_webhook_url_with_credentials_is_shown_only_as_host(
    client: Any, runtime: Runtime, receiver_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listings, the event feed and other subscribers see the webhook id and host only."""
    monkeypatch.setattr(runtime.settings, "webhook_allow_hosts", ["127.0.0.1"])
    watcher = client.create_webhook(f"http://127.0.0.1:{receiver_port}/watch")
    secret_url = f"http://alice:s3cr3t-pw@127.0.0.1:{receiver_port}/hook/tok-5f2a9c"
    created = client.create_webhook(secret_url)
    assert created["host"] == "127.0.0.1" and created["secret"]
    shown = json.dumps(
        [
            created,
            client.list_webhooks(),
            [e.model_dump(mode="json") for e in client.events(0)],
        ],
        default=str,
    )
    dispatcher = WebhookDispatcher(runtime.db, allow_hosts=["127.0.0.1"])
    try:
        dispatcher.tick()
    finally:
        dispatcher.stop()
    sent = [c["body"].decode() for c in _Receiver.calls]
    assert any('"webhook.created"' in body for body in sent)  # the watcher heard of it
    for text in (shown, *sent):
        assert "s3cr3t-pw" not in text and "tok-5f2a9c" not in text and "alice" not in text
    assert [w["id"] for w in client.list_webhooks()] == [watcher["id"], created["id"]]

"""The change feed (long poll) and signed webhooks with retries."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry import errors
from registry.client.local import LocalClient
from registry.config import Settings
from registry.lifecycle import webhooks
from registry.lifecycle.dispatcher import WebhookDispatcher
from registry.runtime import Runtime
from tests.fixtures.s3 import free_port


def test_long_poll_answers_when_an_event_arrives(
    runtime: Runtime, server_url: str, adapter_library: dict[str, Path]
) -> None:
    local = LocalClient(runtime)
    local.push(adapter_library["v1"], "acme/a", base="tiny-llama")
    since = max(e.id for e in local.events(0))
    got: dict[str, Any] = {}

    def follow() -> None:
        t = time.monotonic()
        r = httpx.get(
            f"{server_url}/api/v1/events", params={"since": since, "wait": 20}, timeout=30
        )
        got.update(events=r.json(), seconds=time.monotonic() - t)

    th = threading.Thread(target=follow)
    th.start()
    time.sleep(0.5)
    local.promote("acme/a:1", to="production", reason="go")
    th.join(timeout=30)
    assert [e["kind"] for e in got["events"]] == ["stage.changed"]
    assert got["events"][0]["payload"]["to"] == "production"
    assert got["seconds"] < 15  # answered by the event, not by the timeout
    empty = httpx.get(
        f"{server_url}/api/v1/events", params={"since": 10**9, "wait": 0.2}, timeout=10
    )
    assert empty.json() == []


class _Receiver(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []
    fail_first = 1

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.calls.append({"headers": dict(self.headers), "body": body})
        status = 500 if len(_Receiver.calls) <= _Receiver.fail_first else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The receivers here listen on loopback: named, as an operator would, in the allow list."""
    return settings.model_copy(update={"webhook_allow_hosts": ["127.0.0.1"]})


@pytest.fixture
def receiver() -> Any:
    _Receiver.calls = []
    port = free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{port}/hook"
    srv.shutdown()
    srv.server_close()


def test_webhook_signed_retried_and_recorded(
    runtime: Runtime, adapter_library: dict[str, Path], receiver: str
) -> None:
    local = LocalClient(runtime)
    local.push(adapter_library["v1"], "acme/a", base="tiny-llama")
    hook = local.create_webhook(receiver, namespace="acme", kinds=["stage.changed"])
    local.push(adapter_library["v2"], "acme/a", base="tiny-llama")  # not a stage change
    local.promote("acme/a:1", to="production")
    dispatcher = WebhookDispatcher(runtime.db, allow_hosts=runtime.settings.webhook_allow_hosts)
    try:
        assert dispatcher.tick() == 1  # first attempt: the receiver answers 500
        assert webhooks.deliver_due(runtime.db, dispatcher.send) == 0  # backing off
        later = datetime.now(UTC) + timedelta(seconds=10)
        assert webhooks.deliver_due(runtime.db, dispatcher.send, now=later) == 1
    finally:
        dispatcher.stop()
    assert len(_Receiver.calls) == 2
    call = _Receiver.calls[-1]
    sig = call["headers"]["X-Lorareg-Signature"]
    assert webhooks.verify_signature(hook["secret"], sig, call["body"])
    assert not webhooks.verify_signature("wrong-secret", sig, call["body"])
    assert not webhooks.verify_signature(hook["secret"], sig, call["body"] + b" ")
    event = json.loads(call["body"])
    assert (event["kind"], event["version"], event["payload"]["to"]) == (
        "stage.changed",
        1,
        "production",
    )
    [delivery] = webhooks.deliveries(runtime.db, hook["id"])
    assert delivery["state"] == "delivered" and delivery["attempts"] == 2
    assert [a["status"] for a in delivery["attempt_log"]] == [500, 200]


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "not a url", "javascript:alert(1)"]
)
def test_webhook_url_must_be_http(runtime: Runtime, url: str) -> None:
    with pytest.raises(errors.InvalidInput, match="http"):
        LocalClient(runtime).create_webhook(url)
    assert LocalClient(runtime).list_webhooks() == []

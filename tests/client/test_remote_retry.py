"""The remote client sends a read again when a pooled connection was closed under it,
and never repeats a write."""

from __future__ import annotations

import httpx
import pytest

from registry.client.remote import RemoteClient
from registry.errors import Unavailable


class DropsFirst(httpx.BaseTransport):
    """Answers like a server whose keep-alive timer closed the connection as the first
    ``drops`` requests went out, then answers every request with an empty list."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.seen: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.method)
        if self.drops:
            self.drops -= 1
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(200, json={"items": [], "next": None}, request=request)


def test_a_read_on_a_closed_connection_is_sent_again() -> None:
    transport = DropsFirst(drops=2)
    client = RemoteClient("http://registry.test", transport=transport)

    resp = client._call("GET", "/api/v1/namespaces")

    assert resp.status_code == 200
    assert transport.seen == ["GET", "GET", "GET"]


def test_a_read_gives_up_after_its_retries_with_one_clear_error() -> None:
    transport = DropsFirst(drops=10)
    client = RemoteClient("http://registry.test", transport=transport)

    with pytest.raises(Unavailable, match="cannot reach lorareg at http://registry.test"):
        client._call("GET", "/api/v1/namespaces")
    assert transport.seen == ["GET", "GET", "GET"]


def test_a_write_is_never_sent_twice() -> None:
    transport = DropsFirst(drops=1)
    client = RemoteClient("http://registry.test", transport=transport)

    with pytest.raises(Unavailable):
        client._call("POST", "/api/v1/namespaces", json={"name": "acme"})
    assert transport.seen == ["POST"]

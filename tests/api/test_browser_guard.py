"""Issue 12, finding 9: what a hostile web page can make a visitor's browser send.

An open loopback server answers only to loopback Host names (DNS rebinding), and no server
acts on a write that a browser sent for another site, bodiless POSTs included. A server
that requires tokens leaves Host to its proxy, and keeps the write rule for requests that
a browser could authenticate with the dashboard cookie (no Authorization header).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from registry.access import create_token
from registry.api.origins import loopback_host, same_origin
from registry.merge import job_queue
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer, catalog_state


@pytest.fixture
def storage_backend() -> str:
    return "local"  # nothing here depends on the store


@pytest.fixture
def open_server(runtime: Runtime) -> Iterator[tuple[str, int]]:
    with LiveServer(create_app(runtime, require_auth=False, background=False)) as srv:
        yield srv.url, srv.port


def _code(resp: httpx.Response) -> str:
    return str(resp.json()["error"]["code"])


def test_open_server_answers_only_to_loopback_names(
    runtime: Runtime, open_server: tuple[str, int]
) -> None:
    url, port = open_server
    for host in (
        "localhost",
        f"localhost:{port}",
        f"127.0.0.1:{port}",
        f"[::1]:{port}",
        "LOCALHOST",
    ):
        r = httpx.get(f"{url}/api/v1/adapters", headers={"Host": host})
        assert r.status_code == 200, (host, r.status_code)
    before = catalog_state(runtime)
    for host in (
        "rebind.evil.example",
        f"rebind.evil.example:{port}",
        f"localhost:{port + 1}",  # another port: another server
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "[::1]x",
        "0.0.0.0",
    ):
        for method in ("GET", "POST"):
            r = httpx.request(
                method,
                f"{url}/api/v1/tokens",
                headers={"Host": host},
                json={"name": "x", "role": "admin"},
            )
            assert r.status_code == 421 and _code(r) == "host_not_allowed", (host, r.text)
            assert r.headers["x-error-code"] == "host_not_allowed"
    # Dashboard pages and the Hub routes too.
    for path in ("/ui/", "/api/models/acme/a", "/healthz"):
        r = httpx.get(url + path, headers={"Host": "rebind.evil.example"})
        assert r.status_code == 421, path
    assert catalog_state(runtime) == before


def test_cross_site_writes_are_refused(runtime: Runtime, open_server: tuple[str, int]) -> None:
    url, port = open_server
    job = job_queue.enqueue(runtime.db, {"output": "acme/x", "inputs": []}, actor="t")
    before = catalog_state(runtime)
    hostile = (
        {"Origin": "http://rebind.evil.example"},
        {"Origin": f"http://localhost:{port + 1}"},  # a dev server on another port
        {"Origin": "null"},  # sandboxed frames
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "cross-site"},
    )
    for headers in hostile:
        r = httpx.post(f"{url}/api/v1/tokens", headers=headers, json={"name": "x", "role": "admin"})
        assert r.status_code == 403 and _code(r) == "cross_site_request", (headers, r.text)
        # A bodiless POST: nothing for a content-type check to catch.
        r = httpx.post(f"{url}/api/v1/jobs/{job.id}/cancel", headers=headers)
        assert r.status_code == 403 and _code(r) == "cross_site_request", headers
        r = httpx.delete(f"{url}/api/v1/tokens/1", headers=headers)
        assert r.status_code == 403, headers
    assert catalog_state(runtime) == before
    # Reads stay open to pages (the Host rule guards them), and same-origin writes work.
    assert httpx.get(f"{url}/api/v1/jobs", headers=hostile[0]).status_code == 200
    same = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    r = httpx.post(f"{url}/api/v1/jobs/{job.id}/cancel", headers=same)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"


def test_servers_with_tokens_keep_only_the_write_rule(runtime: Runtime) -> None:
    token, _ = create_token(runtime.db, name="root", role="admin", actor="t")
    bearer = {"Authorization": f"Bearer {token}"}
    with LiveServer(create_app(runtime, require_auth=True, background=False)) as srv:
        # Behind a proxy the Host is the public name.
        r = httpx.get(f"{srv.url}/api/v1/adapters", headers={**bearer, "Host": "lorareg.example"})
        assert r.status_code == 200
        # A token in the header is no ambient credential: a cross-origin caller holding one
        # is served.
        r = httpx.post(
            f"{srv.url}/api/v1/tokens",
            headers={**bearer, "Origin": "https://tools.example"},
            json={"name": "ci", "role": "reader"},
        )
        assert r.status_code == 201
        # Without one, only the cookie could vouch for the request: refused before it runs.
        r = httpx.post(
            f"{srv.url}/ui/-/logout",
            headers={"Origin": "https://evil.example", "Cookie": "lorareg_session=1.2.3.4"},
        )
        assert r.status_code == 403 and _code(r) == "cross_site_request"


def test_host_and_origin_parsing() -> None:
    assert loopback_host(b"localhost", ("127.0.0.1", 8080))
    assert loopback_host(b"[::1]:8080", ("::1", 8080))
    assert not loopback_host(b"[::1]:8081", ("::1", 8080))
    assert not loopback_host(b"localhost:80x", None)
    assert loopback_host(b"127.0.0.1:9", None)  # no bound port known (a Unix socket)
    assert same_origin(b"https://a.example:8443", b"a.example:8443")
    assert not same_origin(b"null", b"null")
    assert not same_origin(b"http://a.example", None)


def test_json_routes_refuse_bodies_that_are_not_declared_json(
    runtime: Runtime, open_server: tuple[str, int]
) -> None:
    """A cross-site form can send text/plain, and fetch() a Blob with no Content-Type,
    without a CORS preflight: FastAPI >= 0.132 reads neither as JSON (the lower bound in
    pyproject.toml). Same-origin, so only this check stands between them and the route."""
    url, port = open_server
    before = catalog_state(runtime)
    body = b'{"name": "x", "role": "admin"}'
    for content_type in ("text/plain", None, "application/x-www-form-urlencoded"):
        headers = {"Origin": f"http://127.0.0.1:{port}"}
        if content_type:
            headers["Content-Type"] = content_type
        r = httpx.post(f"{url}/api/v1/tokens", headers=headers, content=body)
        assert 400 <= r.status_code < 500, (content_type, r.status_code)
    assert catalog_state(runtime) == before
    ok = httpx.post(
        f"{url}/api/v1/tokens", headers={"Content-Type": "application/json"}, content=body
    )
    assert ok.status_code == 201

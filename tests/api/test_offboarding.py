"""Offboarding and quotas over HTTP: the DELETE and quota routes, who may call them, and
what serving systems see afterwards (resolve and the Hub routes answer 404, on this
replica and on another whose cache was warm)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.access import create_token
from registry.client.local import LocalClient
from registry.client.remote import RemoteClient
from registry.config import Settings
from registry.errors import QuotaExceeded
from registry.runtime import Runtime, open_runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer, catalog_state

BASE = "tiny-llama"
REASON = {"reason": "client offboarded"}


@pytest.fixture
def locked(runtime: Runtime, adapter_library: dict[str, Path]) -> Iterator[dict[str, Any]]:
    """A server that requires tokens; acme/a (v1, v2) and beta/b, and a token per caller."""
    local = LocalClient(runtime)
    local.push(adapter_library["v1"], "acme/a", base=BASE)
    local.push(adapter_library["v2"], "acme/a", base=BASE)
    local.push(adapter_library["v1"], "beta/b", base=BASE)

    def token(role: str, *scope: str) -> dict[str, str]:
        secret = create_token(
            runtime.db, name=f"{role}-{'-'.join(scope)}", role=role, actor="t",
            namespaces=list(scope) or None,
        )[0]  # fmt: skip
        return {"Authorization": f"Bearer {secret}"}

    with LiveServer(create_app(runtime, require_auth=True, background=False)) as srv:
        yield {"url": srv.url, "token": token, "local": local}


def _status(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["x-error-code"] == code


def test_only_admins_of_the_namespace_may_erase(locked: dict[str, Any], runtime: Runtime) -> None:
    url, token = locked["url"], locked["token"]
    callers = [
        ({}, 401, "unauthorized"),
        (token("maintainer"), 403, "forbidden"),
        (token("admin", "beta"), 404, "adapter_not_found"),  # acme is not even visible
    ]
    admin = token("admin", "acme")
    before = catalog_state(runtime)
    for headers, status, code in callers:
        for path in ("/api/v1/adapters/acme/a", "/api/v1/adapters/acme/a/versions/1"):
            _status(httpx.request("DELETE", url + path, json=REASON, headers=headers), status, code)
        r = httpx.request("DELETE", f"{url}/api/v1/namespaces/acme", json=REASON, headers=headers)
        _status(r, status, code)
    r = httpx.request("DELETE", f"{url}/api/v1/adapters/acme/a", json={}, headers=admin)
    _status(r, 422, "invalid_request")  # a reason is required
    r = httpx.request(
        "DELETE", f"{url}/api/v1/adapters/acme/a", json={"reason": " "}, headers=admin
    )
    _status(r, 422, "invalid_input")
    assert catalog_state(runtime) == before

    r = httpx.request(
        "DELETE", f"{url}/api/v1/adapters/acme/a/versions/2", json=REASON, headers=admin
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["versions"] == ["acme/a:2"] and doc["blobs_deleted"] == 1
    assert "files" not in r.text and "adapter_model" not in r.text


def test_production_needs_force(locked: dict[str, Any]) -> None:
    url, admin, local = locked["url"], locked["token"]("admin"), locked["local"]
    local.promote("acme/a:1", to="production", reason="live")
    r = httpx.request("DELETE", f"{url}/api/v1/namespaces/acme", json=REASON, headers=admin)
    _status(r, 409, "in_production")
    r = httpx.request(
        "DELETE", f"{url}/api/v1/namespaces/acme", json={**REASON, "force": True}, headers=admin
    )
    assert r.status_code == 200 and r.json()["adapters"] == ["acme/a"]


def test_quota_routes(
    locked: dict[str, Any], adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    url, token = locked["url"], locked["token"]
    quota = f"{url}/api/v1/namespaces/acme/quota"
    _status(
        httpx.put(quota, json={"max_versions": 2}, headers=token("writer", "acme")),
        403,
        "forbidden",
    )
    _status(
        httpx.put(quota, json={"max_versions": 2}, headers=token("admin", "beta")),
        404,
        "adapter_not_found",
    )
    _status(
        httpx.put(quota, json={"max_versions": -1}, headers=token("admin")), 422, "invalid_request"
    )
    r = httpx.put(
        quota, json={"max_versions": 2, "max_bytes": 10**9}, headers=token("admin", "acme")
    )
    assert r.status_code == 200 and r.json()["max_versions"] == 2
    r = httpx.put(quota, json={"max_bytes": None}, headers=token("admin"))  # clears one, keeps one
    assert (r.json()["max_bytes"], r.json()["max_versions"]) == (None, 2)
    shown = httpx.get(f"{url}/api/v1/namespaces/acme", headers=token("reader", "acme")).json()
    assert (shown["versions"], shown["max_versions"], shown["adapters"]) == (2, 2, 1)
    _status(
        httpx.get(f"{url}/api/v1/namespaces/acme", headers=token("reader", "beta")),
        404,
        "adapter_not_found",
    )
    secret = token("writer", "acme")["Authorization"].split()[1]
    writer = RemoteClient(url, token=secret, cache_dir=tmp_path / "c")
    try:
        with pytest.raises(QuotaExceeded):
            writer.push(adapter_library["r8"], "acme/c", base=BASE)
    finally:
        writer.close()
    r = httpx.post(
        f"{url}/api/v1/adapters/acme/c/versions",
        json={"files": [f.model_dump() for f in locked["local"].show("acme/a:1").files]},
        headers=token("writer", "acme"),
    )
    _status(r, 403, "quota_exceeded")


def _gone_within(deadline_s: float, check: Callable[[], bool]) -> None:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < deadline_s, "the erased adapter is still served"
        time.sleep(0.02)


def test_serving_routes_answer_404_after_an_erasure_on_every_replica(
    settings: Settings, runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    LocalClient(runtime).push(adapter_library["v1"], "acme/a", base=BASE)
    other = open_runtime(settings)  # a second replica: its own engine and caches
    paths = (
        "/api/v1/resolve/acme/a",
        "/api/v1/resolve/acme/a?ref=1",
        "/api/models/acme/a",
        "/api/models/acme/a/tree/main",
        "/acme/a/resolve/main/adapter_config.json",
        "/_export/acme/a/resolve/main/adapter_config.json",
    )
    try:
        with (
            LiveServer(create_app(runtime, background=False)) as a,
            LiveServer(create_app(other, background=False)) as b,
        ):
            presigned = []
            for srv in (a, b):
                for path in paths:  # warm both caches
                    warm = httpx.get(srv.url + path)
                    assert warm.status_code in (200, 302), path
                    if warm.status_code == 302:  # S3: a presigned URL to the bytes
                        presigned.append(warm.headers["location"])
                        assert httpx.get(presigned[-1]).status_code == 200
            r = httpx.request("DELETE", f"{a.url}/api/v1/adapters/acme/a", json=REASON)
            assert r.status_code == 200, r.text
            for path in paths:
                assert httpx.get(a.url + path).status_code == 404, path
                _gone_within(5, lambda p=path: httpx.get(b.url + p).status_code == 404)  # type: ignore[misc]
            for link in presigned:  # the bytes themselves are gone, not only the rows
                assert httpx.get(link).status_code in (403, 404), link  # S3: 403 without List
            hub = httpx.get(f"{b.url}/api/models/acme/a")
            assert hub.headers["x-error-code"] == "RepoNotFound"
    finally:
        other.close()


def test_a_name_pushed_again_after_an_erasure_never_serves_the_old_version(
    runtime: Runtime, adapter_library: dict[str, Path], server_url: str
) -> None:
    """Erasing an adapter frees its name; the next push is version 1 again. Resolve must
    describe the new version 1, not a cached rendering of the erased one."""
    local = LocalClient(runtime)
    old = local.push(adapter_library["v1"], "acme/a", base=BASE).version
    assert (
        httpx.get(f"{server_url}/api/v1/resolve/acme/a?ref=1").json()["content_id"]
        == old.content_id
    )
    local.delete("acme/a", reason="offboarding")
    new = local.push(adapter_library["r8"], "acme/a", base=BASE).version
    assert (new.number, new.content_id != old.content_id) == (1, True)
    doc = httpx.get(f"{server_url}/api/v1/resolve/acme/a?ref=1").json()
    assert doc["content_id"] == new.content_id
    assert {f["sha256"] for f in doc["files"]} == {f.sha256 for f in new.files}

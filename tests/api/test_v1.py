"""The v1 HTTP API against a live server: contract, errors, resolve, downloads."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.client.local import LocalClient
from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state


@pytest.fixture
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=30) as c:
        yield c


@pytest.fixture
def pushed(runtime: Runtime, adapter_library: dict[str, Path]) -> LocalClient:
    c = LocalClient(runtime)
    c.push(adapter_library["v1"], "acme/a", base="tiny-llama")
    c.push(adapter_library["v2"], "acme/a", base="tiny-llama")
    return c


def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code
    assert resp.headers["x-error-code"] == code
    return str(body["error"]["message"])


def test_health_and_docs(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "database": "ok",
        "storage": "ok",
    }
    assert http.get("/docs").status_code == 200
    paths = http.get("/openapi.json").json()["paths"]
    assert "/api/v1/resolve/{namespace}/{name}" in paths


def test_list_and_show(http: httpx.Client, pushed: LocalClient) -> None:
    assert [a["name"] for a in http.get("/api/v1/adapters").json()] == ["a"]
    v = http.get("/api/v1/adapters/acme/a/versions/1").json()
    assert v["number"] == 1 and v["base_model"] == "tiny-llama"
    assert [v["number"] for v in http.get("/api/v1/adapters/acme/a/versions").json()] == [2, 1]
    assert http.get("/api/v1/adapters/acme/a/versions/v2").json()["number"] == 2
    cid = v["content_id"]
    assert http.get(f"/api/v1/adapters/acme/a/versions/{cid}").json()["number"] == 1


def test_not_found_errors_have_codes(http: httpx.Client, pushed: LocalClient) -> None:
    _error(http.get("/api/v1/adapters/acme/zzz/versions/1"), 404, "adapter_not_found")
    _error(http.get("/api/v1/adapters/acme/a/versions/9"), 404, "version_not_found")
    _error(
        http.get("/api/v1/resolve/acme/a", params={"ref": "production"}), 404, "version_not_found"
    )
    _error(http.get("/api/v1/nothing-here"), 404, "not_found")
    _error(http.get("/api/v1/adapters/ACME/a/versions/1"), 422, "invalid_name")
    _error(http.get("/api/v1/resolve/acme/a", params={"ref": "???"}), 422, "invalid_reference")


def test_resolve_with_etag(http: httpx.Client, pushed: LocalClient) -> None:
    r = http.get("/api/v1/resolve/acme/a", params={"ref": "1", "base": "tiny-llama"})
    assert r.status_code == 200
    doc = r.json()
    assert doc["version"] == 1 and doc["config"]["r"] == 4
    assert r.headers["etag"] == f'"{doc["content_id"]}"'
    again = http.get(
        "/api/v1/resolve/acme/a", params={"ref": "1"}, headers={"If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
    latest = http.get("/api/v1/resolve/acme/a", headers={"If-None-Match": r.headers["etag"]})
    assert latest.status_code == 200 and latest.json()["version"] == 2
    # Every URL serves the exact bytes (presigned S3 or the server's own route).
    for f in doc["files"]:
        body = httpx.get(f["url"], follow_redirects=True, timeout=30).content
        assert hashlib.sha256(body).hexdigest() == f["sha256"]


def test_download_route_and_ranges(http: httpx.Client, pushed: LocalClient) -> None:
    v = pushed.show("acme/a:1")
    weights = next(f for f in v.files if f.path == "adapter_model.safetensors")
    url = "/api/v1/adapters/acme/a/versions/1/files/adapter_model.safetensors"
    full = http.get(url, follow_redirects=True)
    assert hashlib.sha256(full.content).hexdigest() == weights.sha256
    part = http.get(url, headers={"Range": "bytes=8-15"}, follow_redirects=True)
    assert part.status_code == 206 and part.content == full.content[8:16]
    _error(http.get("/api/v1/adapters/acme/a/versions/1/files/nope.bin"), 404, "not_found")


def test_commit_refuses_unsafe_manifests(
    http: httpx.Client, runtime: Runtime, pushed: LocalClient
) -> None:
    good = [f.model_dump() for f in pushed.show("acme/a:1").files]
    before = catalog_state(runtime)
    for path in ("../escape.json", "/etc/passwd", "a/../../b", "a\\b"):
        files = good + [{"path": path, "sha256": good[0]["sha256"], "size": good[0]["size"]}]
        resp = http.post("/api/v1/adapters/acme/a/versions", json={"files": files})
        assert "not allowed" in _error(resp, 422, "unsafe_path")
    bad_sha = [{**good[0], "sha256": "XYZ"}]
    _error(
        http.post("/api/v1/adapters/acme/a/versions", json={"files": bad_sha}), 422, "invalid_input"
    )
    missing = good + [{"path": "extra.txt", "sha256": "0" * 64, "size": 3}]
    _error(
        http.post("/api/v1/adapters/acme/a/versions", json={"files": missing}),
        404,
        "blob_not_found",
    )
    _error(
        http.post("/api/v1/adapters/acme/a/versions", json={"files": "nope"}),
        422,
        "invalid_request",
    )
    assert catalog_state(runtime) == before


def test_server_revalidates_adapter_at_commit(
    http: httpx.Client, runtime: Runtime, pushed: LocalClient
) -> None:
    """A client that skips validation still cannot create a broken version."""
    files = [f.model_dump() for f in pushed.show("acme/a:1").files]
    bad_cfg = b'{"r": 16, "lora_alpha": 8, "target_modules": ["q_proj"], "peft_type": "LORA"}'
    sha = hashlib.sha256(bad_cfg).hexdigest()
    plan = http.post(
        "/api/v1/adapters/acme/a/uploads",
        json={"files": [{"path": "adapter_config.json", "sha256": sha, "size": len(bad_cfg)}]},
    ).json()
    assert plan["missing"] == [sha]
    url = plan["upload_urls"][sha]
    if url is None:
        assert http.put(f"/api/v1/blobs/{sha}", content=bad_cfg).status_code == 201
    else:
        assert httpx.put(url, content=bad_cfg).status_code == 200
    files = [
        f if f["path"] != "adapter_config.json" else {**f, "sha256": sha, "size": len(bad_cfg)}
        for f in files
    ]
    rows_before = catalog_state(runtime)["rows"]
    msg = _error(
        http.post("/api/v1/adapters/acme/a/versions", json={"files": files}), 422, "invalid_adapter"
    )
    assert "rank" in msg
    assert catalog_state(runtime)["rows"] == rows_before


def test_upload_through_server_verifies_sha256(http: httpx.Client, runtime: Runtime) -> None:
    """The route clients use when the store has no presigned uploads (works on any store)."""
    data = b"some bytes"
    wrong = hashlib.sha256(b"other").hexdigest()
    _error(http.put(f"/api/v1/blobs/{wrong}", content=data), 409, "integrity_error")
    assert not runtime.store.exists(wrong)
    right = hashlib.sha256(data).hexdigest()
    assert http.put(f"/api/v1/blobs/{right}", content=data).json() == {
        "sha256": right,
        "created": True,
    }
    assert runtime.store.exists(right)


def test_planted_bytes_under_a_foreign_sha256_are_refused(
    http: httpx.Client, runtime: Runtime, pushed: LocalClient
) -> None:
    """A client that PUTs other bytes to a presigned URL cannot create a version with them."""
    files = [f.model_dump() for f in pushed.show("acme/a:1").files]
    honest = b"# model card\n"
    evil = b"# evil card!\n"  # same length, other bytes
    sha = hashlib.sha256(honest).hexdigest()
    files = [f for f in files if f["path"] != "README.md"] + [
        {"path": "README.md", "sha256": sha, "size": len(honest)}
    ]
    plan = http.post("/api/v1/adapters/acme/a/uploads", json={"files": files}).json()
    assert plan["missing"] == [sha]
    url = plan["upload_urls"][sha]
    if url is None:  # the server route hashes what it receives
        _error(http.put(f"/api/v1/blobs/{sha}", content=evil), 409, "integrity_error")
    else:
        assert httpx.put(url, content=evil).status_code == 200
        rows = catalog_state(runtime)["rows"]
        msg = _error(
            http.post("/api/v1/adapters/acme/a/versions", json={"files": files}),
            409,
            "integrity_error",
        )
        assert "push again" in msg
        assert catalog_state(runtime)["rows"] == rows
    assert not runtime.store.exists(sha)

"""Another tenant's weights by their sha256: a foreign hash looks exactly like one never
uploaded (issue 12, finding 2), on SQLite and PostgreSQL, local store and S3."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.access import create_token
from registry.client.local import LocalClient
from registry.client.remote import RemoteClient
from registry.domain import VersionInfo
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer

WEIGHTS = "adapter_model.safetensors"


@pytest.fixture
def tenants(runtime: Runtime, adapter_library: dict[str, Path]) -> Iterator[dict[str, Any]]:
    """acme holds a version; a writer of beta and a writer of acme talk to a server that
    requires tokens."""
    acme_v1 = LocalClient(runtime).push(adapter_library["v1"], "acme/secret").version
    beta = create_token(runtime.db, name="beta", role="writer", actor="t", namespaces=["beta"])[0]
    acme = create_token(runtime.db, name="acme", role="writer", actor="t", namespaces=["acme"])[0]
    app = create_app(runtime, require_auth=True, background=False)
    with LiveServer(app) as srv:
        auth = {"b": f"Bearer {beta}", "a": f"Bearer {acme}"}
        with (
            httpx.Client(base_url=srv.url, headers={"Authorization": auth["b"]}, timeout=30) as b,
            httpx.Client(base_url=srv.url, headers={"Authorization": auth["a"]}, timeout=30) as a,
        ):
            yield {"url": srv.url, "beta": b, "acme": a, "v1": acme_v1, "beta_token": beta}


def _files(v: VersionInfo) -> list[dict[str, Any]]:
    return [f.model_dump() for f in v.files]


def _never_uploaded(entry: dict[str, Any]) -> dict[str, Any]:
    fake = hashlib.sha256(b"never uploaded " + entry["sha256"].encode()).hexdigest()
    return {**entry, "sha256": fake}


def _shape(resp: httpx.Response, entry: dict[str, Any]) -> tuple[int, str, str]:
    """Status, code and message with the file's own sha256 blanked out."""
    err = resp.json()["error"]
    return resp.status_code, err["code"], err["message"].replace(entry["sha256"][:12], "<sha>")


def test_a_foreign_sha256_answers_like_one_never_uploaded(
    tenants: dict[str, Any], runtime: Runtime
) -> None:
    beta: httpx.Client = tenants["beta"]
    v1: VersionInfo = tenants["v1"]
    files = _files(v1)
    weights = next(f for f in files if f["path"] == WEIGHTS)
    fake = _never_uploaded(weights)

    # The plan says "upload it" for both: whether acme's hash is stored is not told.
    plan = beta.post("/api/v1/adapters/beta/stolen/uploads", json={"files": files}).json()
    assert sorted(plan["missing"]) == sorted({f["sha256"] for f in files})
    alt = beta.post("/api/v1/adapters/beta/stolen/uploads", json={"files": [fake]}).json()
    assert alt["missing"] == [fake["sha256"]]
    assert (plan["upload_urls"][weights["sha256"]] is None) == (
        alt["upload_urls"][fake["sha256"]] is None
    )

    # Committing acme's manifest: the same error as for a hash nobody uploaded, with the
    # right size or a wrong one, and never the stored size.
    others = [f for f in files if f["path"] != WEIGHTS]
    answers = set()
    for entry in (weights, {**weights, "size": weights["size"] + 1}, fake):
        resp = beta.post("/api/v1/adapters/beta/stolen/versions", json={"files": [*others, entry]})
        message = resp.json()["error"]["message"]
        assert str(weights["size"]) not in message and str(weights["size"] + 1) not in message
        answers.add(_shape(resp, entry))
    assert len(answers) == 1, answers
    [(status, code, _)] = answers
    assert (status, code) == (404, "blob_not_found")

    # Bytes that are not acme's, PUT under acme's hash, are refused like any mismatch.
    put = beta.put(f"/api/v1/blobs/{weights['sha256']}", content=b"x" * weights["size"])
    put_fake = beta.put(f"/api/v1/blobs/{fake['sha256']}", content=b"x" * weights["size"])
    assert (put.status_code, put.json()["error"]["code"]) == (409, "integrity_error")
    assert (put_fake.status_code, put_fake.json()["error"]["code"]) == (409, "integrity_error")

    # Nothing was created, and beta can download nothing of acme's.
    assert beta.get("/api/v1/adapters/beta/stolen/versions").status_code == 404
    path = f"/api/v1/adapters/acme/secret/versions/1/files/{WEIGHTS}"
    assert beta.get(path).status_code == 404
    assert [v.number for v in LocalClient(runtime).versions("acme/secret")] == [1]


def test_a_tenant_that_holds_the_bytes_still_pushes_them(
    tenants: dict[str, Any], runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    """Proof of possession: beta uploading the same files (a shared base card, say) pushes
    them, stored once; acme's own writer reuses what acme holds without uploading."""
    beta = RemoteClient(tenants["url"], token=tenants["beta_token"], cache_dir=tmp_path / "c")
    try:
        pushed = beta.push(adapter_library["v1"], "beta/same")
        assert pushed.blobs_uploaded == len({f.sha256 for f in tenants["v1"].files})
        out = beta.pull("beta/same", dest=tmp_path / "out")
        for f in pushed.version.files:
            assert hashlib.sha256((Path(out.path) / f.path).read_bytes()).hexdigest() == f.sha256
    finally:
        beta.close()
    assert len({b.sha256 for b in runtime.store.list_blobs()}) == len(tenants["v1"].files)
    plan = tenants["acme"].post(
        "/api/v1/adapters/acme/other/uploads", json={"files": _files(tenants["v1"])}
    )
    assert plan.json()["missing"] == []


def test_earlier_uploads_count_only_for_their_namespace(
    tenants: dict[str, Any], runtime: Runtime
) -> None:
    """An upload beta made (no version yet) is beta's to reuse; acme may not name it."""
    data = b"# beta's own card\n"
    entry = {"path": "README.md", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    beta: httpx.Client = tenants["beta"]
    plan = beta.post("/api/v1/adapters/beta/x/uploads", json={"files": [entry]}).json()
    url = plan["upload_urls"][entry["sha256"]]
    if url is None:
        assert beta.put(f"/api/v1/blobs/{entry['sha256']}", content=data).status_code == 201
    else:
        assert httpx.put(url, content=data).status_code == 200
    # A commit verifies (and on S3 stores) the upload, then refuses the folder itself.
    resp = beta.post("/api/v1/adapters/beta/x/versions", json={"files": [entry]})
    assert resp.json()["error"]["code"] == "invalid_adapter"
    again = beta.post("/api/v1/adapters/beta/y/uploads", json={"files": [entry]}).json()
    assert again["missing"] == []
    acme = tenants["acme"].post("/api/v1/adapters/acme/y/uploads", json={"files": [entry]})
    assert acme.json()["missing"] == [entry["sha256"]]

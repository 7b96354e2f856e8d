"""Every role against every API route, namespace scopes, and bad tokens.

The table names the least role of each route; a route missing from it fails the test, so
a new route must be classified before it can land.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from registry.access import ROLES, create_token
from registry.client.local import LocalClient
from registry.db import models as m
from registry.runtime import Runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer

SHA = hashlib.sha256(b"x").hexdigest()
ADAPTER = "/api/v1/adapters/acme/a"
HF_PREFIXES = ("", "/_export")

# (method, path) -> least role; "public" needs no token at all.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/api/v1/adapters"): "reader",
    ("GET", f"{ADAPTER}/versions"): "reader",
    ("POST", f"{ADAPTER}/versions"): "writer",
    ("GET", f"{ADAPTER}/versions/1"): "reader",
    ("GET", f"{ADAPTER}/history"): "reader",
    ("POST", f"{ADAPTER}/uploads"): "writer",
    ("PUT", f"/api/v1/blobs/{SHA}"): "writer",
    ("PATCH", f"{ADAPTER}/versions/1/tags"): "writer",
    ("GET", f"{ADAPTER}/versions/1/files/adapter_config.json"): "reader",
    ("POST", f"{ADAPTER}/versions/1/promote"): "maintainer",
    ("PUT", f"{ADAPTER}/aliases/champion"): "maintainer",
    ("DELETE", f"{ADAPTER}/aliases/champion"): "maintainer",
    ("POST", f"{ADAPTER}/versions/1/evals"): "writer",
    ("GET", f"{ADAPTER}/diff?a=1&b=1"): "reader",
    ("GET", "/api/v1/policies/acme"): "reader",
    ("PUT", "/api/v1/policies/acme"): "admin",
    ("GET", "/api/v1/policies/acme/a"): "reader",
    ("PUT", "/api/v1/policies/acme/a"): "admin",
    ("GET", "/api/v1/namespaces/acme/history"): "reader",
    ("GET", "/api/v1/tokens"): "admin",
    ("POST", "/api/v1/tokens"): "admin",
    ("DELETE", "/api/v1/tokens/999"): "admin",
    ("GET", "/api/v1/webhooks"): "admin",
    ("POST", "/api/v1/webhooks"): "admin",
    ("DELETE", "/api/v1/webhooks/999"): "admin",
    ("GET", "/api/v1/webhooks/999/deliveries"): "admin",
    ("GET", "/api/v1/events"): "reader",
    ("GET", "/api/v1/bases"): "reader",
    ("POST", "/api/v1/bases"): "maintainer",
    ("GET", "/api/v1/bases/tiny-llama"): "reader",
    ("GET", f"{ADAPTER}/versions/1/checks"): "reader",
    ("POST", f"{ADAPTER}/versions/1/checks"): "writer",
    ("GET", "/api/v1/resolve/acme/a"): "reader",
    ("POST", "/api/v1/merges"): "writer",
    ("GET", "/api/v1/jobs"): "reader",
    ("GET", "/api/v1/jobs/999"): "reader",
    ("POST", "/api/v1/jobs/999/cancel"): "writer",
    # Offboarding and quotas; no body, so an admin's call is a 422 that erases nothing.
    ("DELETE", ADAPTER): "admin",
    ("DELETE", f"{ADAPTER}/versions/2"): "admin",
    ("DELETE", "/api/v1/namespaces/acme"): "admin",
    ("GET", "/api/v1/namespaces/acme"): "reader",
    ("PUT", "/api/v1/namespaces/acme/quota"): "admin",
    ("GET", "/api/v1/workers"): "reader",
    # A/B experiments ("ab" does not exist: past the role check it is a 404 or a 422).
    ("POST", f"{ADAPTER}/experiments"): "maintainer",
    ("GET", f"{ADAPTER}/experiments"): "reader",
    ("GET", f"{ADAPTER}/experiments/ab"): "reader",
    ("GET", f"{ADAPTER}/experiments/ab/assign?subject=client-1"): "reader",
    ("POST", f"{ADAPTER}/experiments/ab/ramp"): "maintainer",
    ("POST", f"{ADAPTER}/experiments/ab/outcomes"): "writer",
    ("GET", f"{ADAPTER}/experiments/ab/preview?winner=x"): "reader",
    # Concluding asks the adapter's promotion policy for its role, past the body check.
    ("POST", f"{ADAPTER}/experiments/ab/conclude"): "reader",
    ("GET", f"{ADAPTER}/versions/1/experiments"): "reader",
    ("GET", "/api/v1/experiments"): "reader",
    # The adapter library.
    ("POST", "/api/v1/compositions"): "writer",
    ("GET", "/api/v1/interference?ref=acme/a:1"): "reader",
    ("GET", f"{ADAPTER}/analysis?ref=1"): "reader",
    ("POST", f"{ADAPTER}/compressions"): "writer",
    # Regions: the list describes the deployment; the figures span every tenant.
    ("GET", "/api/v1/regions"): "reader",
    ("GET", "/api/v1/regions/status"): "admin",
    ("GET", f"{ADAPTER}/versions/1/regions"): "reader",
}
for prefix in HF_PREFIXES:
    ROUTES.update(
        {
            ("GET", f"{prefix}/api/models/acme/a"): "reader",
            ("GET", f"{prefix}/api/models/acme/a/revision/main"): "reader",
            ("GET", f"{prefix}/api/models/acme/a/tree/main"): "reader",
            ("GET", f"{prefix}/api/models/acme/a/tree/main/sub"): "reader",
            ("POST", f"{prefix}/api/models/acme/a/paths-info/main"): "reader",
            ("GET", f"{prefix}/acme/a/resolve/main/adapter_config.json"): "reader",
            ("HEAD", f"{prefix}/acme/a/resolve/main/adapter_config.json"): "reader",
        }
    )

BODIES: dict[str, Any] = {
    "POST /api/v1/tokens": {"name": "t", "role": "reader"},
    "POST /api/v1/webhooks": {"url": "http://127.0.0.1:9/hook"},
    "PUT /api/v1/policies/acme": {},
    "PUT /api/v1/policies/acme/a": {},
    f"POST {ADAPTER}/versions/1/promote": {"to": "staging"},
    f"PUT {ADAPTER}/aliases/champion": {"version": 1},
    f"POST {ADAPTER}/versions/1/evals": {"evals": [{"metric": "m", "value": 1}]},
    f"PATCH {ADAPTER}/versions/1/tags": {"tags": {"k": "v"}},
    "POST /api/v1/merges": {"adapters": ["acme/a:1"], "base": "tiny-llama"},
}


def _template(path: str) -> str:
    """The OpenAPI path a concrete test path exercises."""
    import re

    p = path.split("?")[0]
    p = re.sub(r"^(/_export)?/api/models/acme/a", r"\1/api/models/{namespace}/{name}", p)
    p = re.sub(
        r"^(/_export)?/acme/a/resolve/main/.*",
        r"\1/{namespace}/{name}/resolve/{revision}/{path}",
        p,
    )
    p = p.replace("/revision/main", "/revision/{revision}").replace(
        "/paths-info/main", "/paths-info/{revision}"
    )
    p = re.sub(r"/tree/main/sub$", "/tree/{revision}/{path}", p).replace(
        "/tree/main", "/tree/{revision}"
    )
    p = p.replace("/adapters/acme/a", "/adapters/{namespace}/{name}")
    p = p.replace("/resolve/acme/a", "/resolve/{namespace}/{name}")
    p = p.replace("/policies/acme/a", "/policies/{namespace}/{name}").replace(
        "/policies/acme", "/policies/{namespace}"
    )
    p = p.replace("/namespaces/acme/", "/namespaces/{namespace}/")
    p = re.sub(r"/namespaces/acme$", "/namespaces/{namespace}", p)
    p = re.sub(r"/versions/2$", "/versions/{number}", p)
    p = re.sub(r"/versions/1/(promote|evals|tags|experiments|regions)", r"/versions/{number}/\1", p)
    p = re.sub(r"/experiments/ab\b", "/experiments/{experiment}", p)
    p = re.sub(r"/versions/1/files/.*", "/versions/{revision}/files/{path}", p)
    p = re.sub(r"/versions/1(/checks)?$", r"/versions/{revision}\1", p)
    p = p.replace("/aliases/champion", "/aliases/{label}").replace(
        f"/blobs/{SHA}", "/blobs/{sha256}"
    )
    p = re.sub(r"/tokens/\d+", "/tokens/{token_id}", p)
    p = re.sub(r"/webhooks/\d+", "/webhooks/{webhook_id}", p)
    p = re.sub(r"/jobs/\d+", "/jobs/{job_id}", p)
    return p.replace("/bases/tiny-llama", "/bases/{base}")


@pytest.fixture
def secured(
    runtime: Runtime, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> Iterator[dict[str, Any]]:
    local = LocalClient(runtime)
    local.push(adapter_library["v1"], "acme/a", base="tiny-llama")
    local.push(adapter_library["v1"], "beta/b", base="tiny-llama")
    local.add_base("tiny-llama", str(base_library["tiny"]))
    tokens = {role: create_token(runtime.db, name=role, role=role, actor="t")[0] for role in ROLES}
    tokens["scoped-admin"] = create_token(
        runtime.db, name="s", role="admin", actor="t", namespaces=["beta"]
    )[0]
    with LiveServer(create_app(runtime, require_auth=True, background=False)) as srv:
        yield {"url": srv.url, "tokens": tokens, "runtime": runtime}


def _call(url: str, method: str, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = BODIES.get(f"{method} {path.split('?')[0]}")
    kw: dict[str, Any] = {"json": body} if body is not None else {}
    if method == "PUT" and "/blobs/" in path:
        kw = {"content": b"x"}
    if "paths-info" in path:
        kw = {"data": {"paths": ["adapter_config.json"]}}
    return httpx.request(method, url + path, headers=headers, timeout=30, **kw)


def test_every_route_is_classified(secured: dict[str, Any]) -> None:
    schema = httpx.get(secured["url"] + "/openapi.json", timeout=30).json()
    documented = {(meth.upper(), path) for path, ops in schema["paths"].items() for meth in ops}
    covered = {(meth, _template(path)) for meth, path in ROUTES}
    assert documented - covered == set(), "classify new routes in ROUTES"


def test_role_matrix(secured: dict[str, Any]) -> None:
    url, tokens = secured["url"], secured["tokens"]
    failures = []
    for (method, path), least in ROUTES.items():
        for role in (None, *ROLES):
            resp = _call(url, method, path, tokens[role] if role else None)
            if least == "public":
                allowed = True
            elif role is None:
                allowed = False
                if resp.status_code != 401:
                    failures.append(f"{method} {path} without a token: {resp.status_code}")
                continue
            else:
                allowed = ROLES.index(role) >= ROLES.index(least)
            if allowed and resp.status_code in (401, 403):
                failures.append(f"{method} {path} as {role}: {resp.status_code} {resp.text[:120]}")
            if not allowed and resp.status_code != 403:
                failures.append(f"{method} {path} as {role}: expected 403, got {resp.status_code}")
            if not allowed:
                assert resp.json()["error"]["code"] == "forbidden"
            assert resp.status_code < 500, (
                f"{method} {path} as {role}: {resp.status_code} {resp.text}"
            )
    assert failures == []


def test_scoped_token_sees_nothing_outside_its_namespace(secured: dict[str, Any]) -> None:
    url, tok = secured["url"], secured["tokens"]["scoped-admin"]
    h = {"Authorization": f"Bearer {tok}"}
    names = [a["namespace"] for a in httpx.get(f"{url}/api/v1/adapters", headers=h).json()]
    assert names == ["beta"]
    for path in (
        "/api/v1/adapters/acme/a/versions/1",
        "/api/v1/resolve/acme/a",
        "/api/v1/adapters/acme/a/versions/1/files/adapter_config.json",
        "/api/models/acme/a",
        "/acme/a/resolve/main/adapter_config.json",
    ):
        r = httpx.get(url + path, headers=h)
        assert r.status_code == 404, (path, r.status_code)
    assert httpx.get(f"{url}/api/v1/resolve/beta/b", headers=h).status_code == 200
    feed = httpx.get(f"{url}/api/v1/events", headers=h).json()
    assert feed and {e["namespace"] for e in feed} == {"beta"}


def test_revoked_and_expired_tokens(secured: dict[str, Any]) -> None:
    url, rt = secured["url"], secured["runtime"]
    local = LocalClient(rt)
    doc = local.create_token("temp", "reader")
    h = {"Authorization": f"Bearer {doc['token']}"}
    assert httpx.get(f"{url}/api/v1/adapters", headers=h).status_code == 200
    local.revoke_token(doc["id"])
    r = httpx.get(f"{url}/api/v1/adapters", headers=h)
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]
    doc = local.create_token("soon", "reader", expires_in_days=1)
    with rt.db.write() as s:
        s.execute(
            update(m.Token)
            .where(m.Token.id == doc["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    r = httpx.get(f"{url}/api/v1/adapters", headers={"Authorization": f"Bearer {doc['token']}"})
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    forged = httpx.get(f"{url}/api/v1/adapters", headers={"Authorization": "Bearer lrg_forged"})
    assert forged.status_code == 401 and forged.headers["x-error-code"] == "unauthorized"
    assert (
        httpx.get(f"{url}/api/v1/adapters", headers={"Authorization": "Basic abc"}).status_code
        == 401
    )
    with rt.db.read() as s:
        stored = [t.token_hash for t in s.query(m.Token)]
    assert doc["token"] not in stored and all(len(h) == 64 for h in stored)

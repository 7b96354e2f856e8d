"""Role x route x tenant: a token scoped to ``beta`` aims every route at ``acme``.

The routes come from the app itself: every operation of its OpenAPI document, and every
dashboard page (not in the document). Path parameters are filled with acme's real names
and ids (the adapter, a version, an alias, a file, a blob, the base model its versions use,
a token, a webhook, a job); bodies name acme wherever they can name a namespace. For each
of the four roles, no answer may succeed at a write, and no successful read may carry
anything of acme's (its namespace, its adapter's name, its blob's sha256 or content id).
Afterwards every row of every table is what it was before.

A new route needs no classification here to be covered; one with a body needs an entry
in ``BODIES`` (the test says so), since a body is where a route names what it acts on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from registry.client.local import LocalClient
from registry.db.models import Base
from registry.principal import ROLES
from registry.runtime import Runtime
from registry.server import create_app
from registry.web.csrf import FIELD
from tests.api.tenants import ACME_ADAPTER, TINY, Tenants, build_tenants
from tests.fixtures.catalog import LiveServer

SAFE = {"GET", "HEAD"}
# POSTs that change only the browser's cookies (sign in as oneself, sign out), and the
# Hub's paths-info, a read sent as a POST.
NOT_WRITES = ("/ui/-/login", "/ui/-/logout", "/paths-info/")
DASHBOARD_QUERIES = {
    "/ui/-/promote": {"ref": f"acme/{ACME_ADAPTER}:1", "to": "production"},
    "/ui/{namespace}/{name}/compare": {"a": "1", "b": "1"},
}


@pytest.fixture
def storage_backend() -> str:
    return "local"  # the question is who may reach what, not where bytes live


def _bodies(t: Tenants, tiny: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Request bodies per (method, path template): each aims at acme, one way or another."""
    files = [{"path": "adapter_model.safetensors", "sha256": t.acme_sha256, "size": 1}]
    adapter = "/api/v1/adapters/{namespace}/{name}"
    return {
        ("POST", f"{adapter}/versions"): [{"files": files}],
        ("POST", f"{adapter}/uploads"): [{"files": files}],
        ("PATCH", f"{adapter}/versions/{{number}}/tags"): [{"tags": {"owner": "beta"}}],
        ("POST", f"{adapter}/versions/{{number}}/promote"): [{"to": "production"}],
        ("PUT", f"{adapter}/aliases/{{label}}"): [{"version": 1}],
        ("POST", f"{adapter}/versions/{{number}}/evals"): [
            {"evals": [{"metric": "acc", "value": 1.0}]}
        ],
        ("POST", f"{adapter}/versions/{{revision}}/checks"): [{"base": TINY}],
        ("PUT", "/api/v1/policies/{namespace}"): [{}],
        ("PUT", "/api/v1/policies/{namespace}/{name}"): [{}],
        ("POST", "/api/v1/tokens"): [
            {"name": "escape", "role": "admin"},
            {"name": "escape", "role": "admin", "namespaces": ["acme"]},
            {"name": "escape", "role": "reader", "namespaces": ["beta", "acme"]},
        ],
        ("POST", "/api/v1/webhooks"): [
            {"url": "https://93.184.215.14/all"},
            {"url": "https://93.184.215.14/acme", "namespace": "acme"},
        ],
        ("POST", "/api/v1/bases"): [
            {"name": TINY, "source": str(tiny)},
            {"name": "acme-base", "source": str(tiny)},
        ],
        # Offboarding and quotas: an admin of beta tries to erase acme or lift its quota.
        ("DELETE", adapter): [{"reason": "escape", "force": True}],
        ("DELETE", f"{adapter}/versions/{{number}}"): [{"reason": "escape", "force": True}],
        ("DELETE", "/api/v1/namespaces/{namespace}"): [{"reason": "escape", "force": True}],
        ("PUT", "/api/v1/namespaces/{namespace}/quota"): [{"max_bytes": 1, "max_versions": 1}],
        ("POST", f"{adapter}/experiments"): [
            {
                "name": "ab",
                "variants": [{"name": "control", "ref": "1"}, {"name": "b", "ref": "1"}],
                "split": "50,50",
                "metric": "ctr",
            }
        ],
        ("POST", f"{adapter}/experiments/{{experiment}}/ramp"): [{"split": "50,50"}],
        ("POST", f"{adapter}/experiments/{{experiment}}/outcomes"): [
            {"variant": "b", "successes": 1, "trials": 2}
        ],
        ("POST", f"{adapter}/experiments/{{experiment}}/conclude"): [{"winner": "b"}],
        ("POST", "/api/v1/merges"): [
            {"adapters": [f"acme/{ACME_ADAPTER}:1"], "base": TINY},
            {"adapters": ["beta/b:1"], "base": TINY, "output": f"acme/{ACME_ADAPTER}"},
        ],
        ("POST", "/api/v1/compositions"): [
            {"adapters": [f"acme/{ACME_ADAPTER}:1"], "output": "beta/stolen"},
            {"adapters": ["beta/b:1"], "output": f"acme/{ACME_ADAPTER}"},
        ],
        ("POST", f"{adapter}/compressions"): [{"rank": 1}, {"rank": 1, "output": "beta/stolen"}],
    }


def _params(t: Tenants) -> dict[str, str]:
    return {
        "namespace": "acme",
        "name": ACME_ADAPTER,
        "revision": "1",
        "number": "1",
        "label": "champion",
        "path": "adapter_model.safetensors",
        "sha256": t.acme_sha256,
        "base": TINY,
        "token_id": str(t.acme_token_id),
        "webhook_id": str(t.acme_webhook_id),
        "job_id": str(t.acme_job_id),
        "experiment": "ab",
    }


def _fill(template: str, params: dict[str, str]) -> str:
    def value(found: re.Match[str]) -> str:
        key = found.group(1)
        assert key in params, f"no acme value for path parameter {key!r} of {template}"
        return params[key]

    return re.sub(r"\{(\w+)(?::\w+)?\}", value, template)


def _dashboard_routes(app: Any) -> list[tuple[str, str]]:
    """(method, path) of every dashboard page, walking included routers."""
    out: list[tuple[str, str]] = []

    def walk(routes: list[Any]) -> None:
        for r in routes:
            inner = getattr(r, "original_router", None)  # FastAPI >= 0.150 nests routers
            if inner is not None:
                walk(list(inner.routes))
                continue
            path, methods = getattr(r, "path", ""), getattr(r, "methods", None)
            if methods and (path == "/" or path.startswith("/ui/")) and "/-/static" not in path:
                out.extend((m, path) for m in sorted(methods) if m != "HEAD")

    walk(list(app.routes))
    return out


def _rows(rt: Runtime) -> dict[str, list[str]]:
    """Every row of every table, as text: 'nothing changed' compares these."""
    with rt.db.read() as s:
        return {
            t.name: sorted(repr(tuple(r)) for r in s.execute(text(f'SELECT * FROM "{t.name}"')))
            for t in Base.metadata.sorted_tables
        }


@pytest.fixture
def matrix(
    runtime: Runtime, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> Iterator[tuple[Tenants, Any, str]]:
    t = build_tenants(runtime, adapter_library, base_library)
    # A running experiment of acme's, so the experiment routes have something to leak.
    LocalClient(runtime).experiment_create(
        f"acme/{ACME_ADAPTER}",
        "ab",
        variants=[("control", "1"), ("b", "1")],
        split="50,50",
        metric="ctr",
    )
    app = create_app(runtime, require_auth=True, background=False)
    with LiveServer(app) as srv:
        yield t, app, srv.url


def test_no_role_of_another_namespace_reaches_acme(
    matrix: tuple[Tenants, Any, str], base_library: dict[str, Path]
) -> None:
    t, app, url = matrix
    bodies = _bodies(t, base_library["tiny"])
    params = _params(t)
    api = [
        (method.upper(), path, op)
        for path, ops in app.openapi()["paths"].items()
        for method, op in ops.items()
    ]
    missing = [f"{m} {p}" for m, p, op in api if "requestBody" in op and (m, p) not in bodies]
    missing = [x for x in missing if "paths-info" not in x]  # a form, filled below
    assert missing == [], "give these routes an acme-aimed body in BODIES"
    dashboard = _dashboard_routes(app)
    assert ("GET", "/ui/-/jobs/{job_id}") in dashboard and ("POST", "/ui/-/promote") in dashboard

    before = _rows(t.runtime)
    failures: list[str] = []
    requests = 0
    with httpx.Client(base_url=url, timeout=30) as http:
        for role in ROLES:
            auth = {"Authorization": f"Bearer {t.beta[role]}"}
            # The dashboard's forms need a CSRF pair; a real one, so the handlers run.
            form = http.get("/ui/-/login", headers=auth)
            csrf = re.search(rf'name="{FIELD}" value="([^"]+)"', form.text)
            assert csrf is not None
            calls: list[tuple[str, str, dict[str, Any]]] = []
            for method, template, _op in api:
                path = _fill(template, params)
                query = (
                    {"namespace": "acme"}
                    if template
                    in (
                        "/api/v1/adapters",
                        "/api/v1/events",
                        "/api/v1/experiments",
                    )
                    else {}
                )
                if template.endswith("/diff"):
                    query = {"a": "1", "b": "1"}
                if template == "/api/v1/regions/status":
                    query = {"ref": f"acme/{ACME_ADAPTER}:1"}
                if "paths-info" in template:
                    calls.append((method, path, {"data": {"paths": [params["path"]]}}))
                elif template == "/api/v1/blobs/{sha256}":
                    calls.append((method, path, {"content": b"not acme's bytes"}))
                else:
                    for body in bodies.get((method, template), [None]):
                        kw: dict[str, Any] = {"params": query}
                        if body is not None:
                            kw["json"] = body
                        calls.append((method, path, kw))
                # The event feed without a namespace filter, too.
                if template in ("/api/v1/events", "/api/v1/adapters", "/api/v1/experiments"):
                    calls.append((method, path, {}))
            for method, template in dashboard:
                path = _fill(template, params)
                kw = {"params": DASHBOARD_QUERIES.get(template, {})}
                if method == "POST":
                    kw = {
                        "data": {
                            FIELD: csrf.group(1),
                            "ref": f"acme/{ACME_ADAPTER}:1",
                            "to": "production",
                            "reason": "x",
                            "token": t.beta[role],
                        },
                        "headers": {"Cookie": f"lorareg_csrf={csrf.group(1)}"},
                    }
                calls.append((method, path, kw))
            for method, path, kw in calls:
                headers = {**auth, **kw.pop("headers", {})}
                resp = http.request(method, path, headers=headers, **kw)
                requests += 1
                what = f"{role} {method} {path} {kw}: {resp.status_code}"
                if resp.status_code >= 500:
                    failures.append(f"{what} {resp.text[:200]}")
                if resp.status_code >= 400:
                    continue
                if method not in SAFE and not any(x in path for x in NOT_WRITES):
                    failures.append(f"{what}: a write aimed at acme succeeded")
                shown = resp.text + " ".join(f"{k}={v}" for k, v in resp.headers.items())
                leaked = [s for s in t.acme_strings if s and s in shown]
                if leaked:
                    at = shown.find(leaked[0])
                    context = shown[max(0, at - 80) : at + 40]
                    failures.append(f"{what}: the answer holds {leaked}: ...{context}...")
    assert failures == [], "\n".join(failures)
    assert requests > 200
    assert _rows(t.runtime) == before, "a refused request changed the catalog"

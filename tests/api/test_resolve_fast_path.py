"""The resolve fast path answers exactly what the route answers, and only while it is true.

``ResolveFastPath`` serves repeated lookups from bytes the route encoded; these tests count
the route's renderings to know which path answered, and compare its answers with a fresh
server's (no caches at all).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.api.routers import resolve as resolve_router
from registry.api.version_cache import VersionCache
from registry.client.local import LocalClient
from registry.runtime import Runtime
from registry.server import create_app
from registry.services.models import ResolveDocument
from tests.fixtures.catalog import LiveServer

REPO = "acme/fast"
URL = f"/api/v1/resolve/{REPO}"
SAME = ("etag", "content-type", "content-length", "cache-control")


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The versions the route rendered, in order (the fast path renders nothing)."""
    seen: list[str] = []
    real = resolve_router._render

    def counting(request, rt, version):  # type: ignore[no-untyped-def]
        seen.append(version.ref)
        return real(request, rt, version)

    monkeypatch.setattr(resolve_router, "_render", counting)
    return seen


@pytest.fixture
def http(runtime: Runtime) -> Iterator[httpx.Client]:
    app = create_app(runtime, background=False)
    # Checks only on this process's commits: which path answers must not depend on how
    # slowly this machine runs the test (the background check is covered elsewhere).
    app.state.version_cache = VersionCache(runtime.db, check_interval_s=600, max_stale_s=600)
    with (
        LiveServer(app) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def fresh_answer(runtime: Runtime, params: dict[str, str], *, seen_at: str) -> httpx.Response:
    """The route's answer on a new app (nothing cached anywhere), its download URLs
    rewritten to the server at ``seen_at``."""
    with (
        LiveServer(create_app(runtime, background=False)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        r = client.get(URL, params=params)
    body = r.content.replace(server.url.encode(), seen_at.rstrip("/").encode())
    headers = {**r.headers, "content-length": str(len(body))}
    return httpx.Response(r.status_code, headers=headers, content=body)


def same_document(a: httpx.Response, b: httpx.Response) -> bool:
    """Same status, ETag and document; download URLs compared only where not presigned
    (a presigned URL carries its signing time)."""

    def plain(r: httpx.Response) -> object:
        if r.status_code != 200:
            return r.json()
        doc = r.json()
        for f in doc["files"]:
            if "X-Amz-Signature" in f["url"]:
                f["url"] = f["url"].split("?", 1)[0]
        return doc

    same_headers = [a.headers.get(h) for h in SAME[:2]] == [b.headers.get(h) for h in SAME[:2]]
    return a.status_code == b.status_code and same_headers and plain(a) == plain(b)


def same_answer(a: httpx.Response, b: httpx.Response) -> bool:
    return (a.status_code, a.content, [a.headers.get(h) for h in SAME]) == (
        b.status_code,
        b.content,
        [b.headers.get(h) for h in SAME],
    )


def test_repeats_are_served_from_the_routes_bytes(
    runtime: Runtime, http: httpx.Client, renders: list[str], adapter_library: dict[str, Path]
) -> None:
    LocalClient(runtime).push(adapter_library["v1"], REPO)
    first = http.get(URL)  # the first check of the catalog: rendered, not kept
    second = http.get(URL)  # rendered and kept
    again = [http.get(URL) for _ in range(3)]
    assert first.status_code == 200 and first.json()["version"] == 1
    assert all(same_answer(first, r) for r in [second, *again])
    assert renders == [f"{REPO}:1"] * 2  # the repeats came from the fast path
    # The route's documented model describes the bytes both paths send, member for member.
    documented = ResolveDocument.model_validate_json(first.content)
    assert documented.model_dump(mode="json", exclude_unset=True) == first.json()
    not_modified = http.get(URL, headers={"If-None-Match": first.headers["etag"]})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == first.headers["etag"]
    assert renders == [f"{REPO}:1"] * 2
    assert same_document(first, fresh_answer(runtime, {}, seen_at=str(http.base_url)))


def test_a_promotion_drops_the_cached_bytes(
    runtime: Runtime, http: httpx.Client, renders: list[str], adapter_library: dict[str, Path]
) -> None:
    client = LocalClient(runtime)
    client.push(adapter_library["v1"], REPO)
    client.push(adapter_library["v2"], REPO)
    client.promote(f"{REPO}:1", to="production")
    before = [http.get(URL, params={"ref": "production"}) for _ in range(3)]
    client.promote(f"{REPO}:2", to="production")  # a commit in this process: seen at once
    after = http.get(URL, params={"ref": "production"})
    again = http.get(URL, params={"ref": "production"})
    assert [r.json()["version"] for r in before] == [1, 1, 1]
    assert after.json()["version"] == again.json()["version"] == 2
    assert same_answer(after, again)
    # The commit's first check drops what was rendered before it, then 2 is kept.
    assert renders == [f"{REPO}:1"] * 2 + [f"{REPO}:2"] * 2
    assert same_document(
        after, fresh_answer(runtime, {"ref": "production"}, seen_at=str(http.base_url))
    )


def test_what_it_does_not_understand_goes_to_the_route(
    runtime: Runtime, http: httpx.Client, renders: list[str], adapter_library: dict[str, Path]
) -> None:
    LocalClient(runtime).push(adapter_library["v1"], REPO)
    plain = [http.get(URL, params={"ref": "latest"}) for _ in range(2)]
    odd = [http.get(URL, params={"ref": "latest", "other": "1"}) for _ in range(2)]
    assert all(same_answer(plain[0], r) for r in [plain[1], *odd])
    assert len(renders) == 4  # the unknown parameter is the route's to judge, every time
    blank = http.get(URL, params={"ref": ""})  # not "latest": the route decides what it is
    assert same_document(blank, fresh_answer(runtime, {"ref": ""}, seen_at=str(http.base_url)))
    missing = http.get("/api/v1/resolve/acme/absent")
    assert missing.status_code == 404 and missing.json()["error"]["code"]


@pytest.fixture
def secured_http(runtime: Runtime) -> Iterator[httpx.Client]:
    app = create_app(runtime, require_auth=True, background=False)
    app.state.version_cache = VersionCache(runtime.db, check_interval_s=600, max_stale_s=600)
    with (
        LiveServer(app) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def test_tokens_the_route_authenticated_take_the_fast_path(
    runtime: Runtime,
    secured_http: httpx.Client,
    renders: list[str],
    adapter_library: dict[str, Path],
) -> None:
    local = LocalClient(runtime)
    local.push(adapter_library["v1"], REPO)
    local.push(adapter_library["v1"], "beta/other")
    reader = local.create_token("node", "reader", namespaces=["acme"])
    other = local.create_token("node2", "reader", namespaces=["acme"])
    outsider = local.create_token("beta-node", "reader", namespaces=["beta"])

    def get(token: str | None, url: str = URL) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return secured_http.get(url, headers=headers)

    first, second, third = get(reader["token"]), get(reader["token"]), get(reader["token"])
    assert first.status_code == 200 and same_answer(first, second) and same_answer(first, third)
    assert renders == [f"{REPO}:1"] * 2  # the third came from the fast path
    # The bytes serve every token that sees the adapter: the second token is authenticated
    # by the route once (its first request), then answered from the same bytes.
    assert same_answer(first, get(other["token"])) and same_answer(first, get(other["token"]))
    assert len(renders) == 3
    # What the fast path may not answer is the route's, every time, with the route's error.
    for _ in range(2):
        assert get(None).status_code == 401
        assert get("lrg_forged").status_code == 401
        hidden = get(outsider["token"])  # another tenant's token: as if it did not exist
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "adapter_not_found"
    assert get(outsider["token"], "/api/v1/resolve/beta/other").status_code == 200
    assert same_document(first, fresh_answer(runtime, {}, seen_at=str(secured_http.base_url)))
    # A revocation is an event: the kept principal goes with it, at once on this process.
    local.revoke_token(reader["id"])
    revoked = get(reader["token"])
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
    assert get(other["token"]).status_code == 200


def test_a_kept_principal_is_not_served_past_its_expiry(runtime: Runtime) -> None:
    from datetime import UTC, datetime, timedelta

    from registry.principal import Principal

    cache = VersionCache(runtime.db, check_interval_s=600, max_stale_s=600)
    cache.refresh()  # the first check: fresh for 600 s
    now, gen = datetime.now(UTC), cache.generation
    cache.keep_principal(
        "a", Principal("a", "reader", expires_at=now + timedelta(hours=1)), generation=gen
    )
    cache.keep_principal(
        "b", Principal("b", "reader", expires_at=now - timedelta(seconds=1)), generation=gen
    )
    cache.keep_principal("c", Principal("c", "reader"), generation=gen - 1)
    assert cache.peek_principal("a") is not None
    assert cache.peek_principal("b") is None  # expired: authenticate again (and be refused)
    assert cache.peek_principal("c") is None  # authenticated before a change: not kept

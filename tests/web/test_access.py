"""The dashboard shows what the caller's token may read, like the API: nothing without a
token on a server that requires one, and only its namespaces for a scoped token."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from registry.access import create_token
from registry.client.local import LocalClient
from registry.runtime import Runtime
from registry.server import create_app

# Access rules do not touch blobs: both catalogs, the local store only.
pytestmark = pytest.mark.parametrize("storage_backend", ["local"])


@pytest.fixture
def locked(runtime: Runtime, catalog: LocalClient) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, require_auth=True, background=False)) as c:
        yield c


def bearer(runtime: Runtime, **kw: object) -> dict[str, str]:
    token, _ = create_token(runtime.db, name="t", actor="admin", **kw)  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}


def test_no_token_no_pages(locked: TestClient) -> None:
    for url in ("/ui/", "/ui/acme/brand-voice", "/ui/acme/brand-voice/v1"):
        r = locked.get(url)
        assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
        assert "needs a token" in r.text and "Log in with an API token" in r.text
        assert f'href="/ui/-/login?next={url.replace("/", "%2F")}"' in r.text
        assert "brand-voice</a>" not in r.text
    # Static files and the redirect carry no catalog data.
    assert locked.get("/ui/-/static/style.css").status_code == 200
    assert locked.get("/", follow_redirects=False).status_code == 307


def test_scoped_token_sees_its_namespaces_only(runtime: Runtime, locked: TestClient) -> None:
    h = bearer(runtime, role="reader", namespaces=["beta"])
    index = locked.get("/ui/", headers=h).text
    assert "/ui/beta/summarizer" in index and "/ui/acme/" not in index
    assert ">acme<" not in index  # not even in the namespace filter
    assert locked.get("/ui/beta/summarizer/v1", headers=h).status_code == 200
    for url in (
        "/ui/acme/brand-voice",
        "/ui/acme/brand-voice/v1",
        "/ui/acme/brand-voice/compare",
        "/ui/beta/summarizer/compare?a=acme/brand-voice:1",
    ):
        r = locked.get(url, headers=h)
        assert r.status_code == 404 and "does not exist" in r.text, url
    everything = locked.get("/ui/", headers=bearer(runtime, role="reader")).text
    assert "/ui/acme/brand-voice" in everything and "/ui/beta/summarizer" in everything

"""Offboarding from the dashboard on a server that requires tokens: the confirmation page
says what goes, only a CSRF-checked POST by an admin of that namespace that types the name
again erases anything, and every refusal is an HTML page that leaves the catalog as it was."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from registry.client.local import LocalClient
from registry.runtime import Runtime
from registry.server import create_app
from registry.web.csrf import FIELD
from tests.fixtures.catalog import catalog_state
from tests.web.test_login import login

pytestmark = pytest.mark.parametrize("storage_backend", ["local"])


@pytest.fixture
def locked(runtime: Runtime, catalog: LocalClient) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, require_auth=True, background=False)) as c:
        yield c


def hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def submit(client: TestClient, html: str, **fields: str) -> tuple[int, str]:
    r = client.post("/ui/-/delete", data={**hidden(html), **fields}, follow_redirects=False)
    return r.status_code, r.text


def test_admin_erases_a_version_after_typing_its_name(
    locked: TestClient, catalog: LocalClient, runtime: Runtime, token_for: Callable[..., str]
) -> None:
    login(locked, token_for("admin", name="ops", namespaces=["acme"]))
    version_page = locked.get("/ui/acme/brand-voice/v2").text
    assert 'href="/ui/-/delete?ref=acme%2Fbrand-voice%3A2"' in version_page
    html = locked.get("/ui/-/delete?ref=acme/brand-voice:2").text
    assert "Delete version acme/brand-voice:2" in html and "<strong>1</strong> version(s)" in html
    assert 'href="/ui/-/delete?namespace=acme"' in html  # the wider options

    before = catalog_state(runtime)
    status, page = submit(locked, html, reason="client offboarded", confirm="acme/brand-voice")
    assert status == 422 and "type acme/brand-voice:2 exactly" in page and "Nothing changed" in page
    status, page = submit(locked, html, reason="", confirm="acme/brand-voice:2")
    assert status == 422
    r = locked.post(
        "/ui/-/delete",
        data={"ref": "acme/brand-voice:2", "reason": "x", "confirm": "acme/brand-voice:2"},
    )
    assert r.status_code == 403  # no CSRF token
    assert catalog_state(runtime) == before

    status, page = submit(locked, html, reason="client offboarded", confirm="acme/brand-voice:2")
    assert status == 200 and "Erased acme/brand-voice:2" in page, page[:3000]
    assert [v.number for v in catalog.versions("acme/brand-voice")] == [3, 1]
    assert locked.get("/ui/acme/brand-voice/v2").status_code == 404
    gone = catalog.history("acme/brand-voice")[-1]
    assert (gone.kind, gone.actor, gone.payload["reason"]) == (
        "version.deleted",
        "ops",
        "client offboarded",
    )


def test_namespace_offboarding_needs_force_for_production(
    locked: TestClient, catalog: LocalClient, token_for: Callable[..., str]
) -> None:
    catalog.promote("acme/brand-voice:3", to="production", reason="live")
    login(locked, token_for("admin"))
    html = locked.get("/ui/-/delete?namespace=acme").text
    assert "In production now: acme/brand-voice:3" in html and 'name="force"' in html
    status, page = submit(locked, html, reason="contract ended", confirm="acme")
    assert status == 409 and "--force" in page
    assert len(catalog.list_adapters("acme")) == 2
    status, page = submit(locked, html, reason="contract ended", confirm="acme", force="yes")
    assert status == 200 and "Erased acme" in page
    assert catalog.list_adapters("acme") == [] and len(catalog.list_adapters("beta")) == 1


def test_who_may_not_erase(
    locked: TestClient, catalog: LocalClient, runtime: Runtime, token_for: Callable[..., str]
) -> None:
    maintainer, beta_admin = (
        token_for("maintainer", name="m"),
        token_for("admin", name="b", namespaces=["beta"]),
    )
    before = catalog_state(runtime)
    login(locked, maintainer)
    assert "/ui/-/delete" not in locked.get("/ui/acme/brand-voice/v2").text
    assert locked.get("/ui/-/delete?ref=acme/brand-voice:2").status_code == 403
    other = TestClient(locked.app)
    login(other, beta_admin)
    r = other.get("/ui/-/delete?namespace=acme")
    assert r.status_code == 404 and "acme/" not in r.text
    form = other.get("/ui/-/delete?namespace=beta").text
    data = {**hidden(form), "namespace": "acme", "reason": "x", "confirm": "acme"}
    assert other.post("/ui/-/delete", data=data).status_code == 404
    assert catalog_state(runtime) == before
    assert FIELD in hidden(form)

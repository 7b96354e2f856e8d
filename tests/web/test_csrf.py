"""The dashboard's CSRF protection, on a small app with one form, as the promote form will use
it: the page renders ``csrf_token()`` in a hidden field, the POST route depends on
``require_csrf``. No database needed."""

from __future__ import annotations

import re

import jinja2
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from registry.api.errors import install_error_handlers
from registry.web.csrf import COOKIE, FIELD, CsrfProtect, require_csrf
from registry.web.templating import build_assets, render

FORM = (
    '<form method="post" action="/promote">'
    '<input type="hidden" name="{{ csrf_field_name }}" value="{{ csrf_token() }}">'
    "</form>"
)


def make_app(secret: bytes | None = None) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    assets = build_assets(csrf_secret=secret)
    # A test-only template next to the real ones: a page with a POST form.
    loader = assets.templates.env.loader
    assert loader is not None
    assets.templates.env.loader = jinja2.ChoiceLoader(
        [jinja2.DictLoader({"form.html": FORM}), loader]
    )
    app.state.web = assets
    app.state.csrf = assets.csrf

    @app.get("/form")
    def form(request: Request) -> HTMLResponse:
        return render(request, "form.html", {})

    @app.get("/plain")
    def plain(request: Request) -> HTMLResponse:
        return render(request, "error.html", {"status": 404, "message": "no form here"})

    @app.post("/promote", dependencies=[Depends(require_csrf)])
    def promote() -> dict[str, bool]:
        return {"promoted": True}

    return app


def token_of(html: str) -> str:
    found = re.search(rf'name="{FIELD}" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


@pytest.fixture(params=[None, b"server-secret"], ids=["plain", "signed"])
def client(request: pytest.FixtureRequest) -> TestClient:
    return TestClient(make_app(request.param))


def test_form_round_trip(client: TestClient) -> None:
    r = client.get("/form")
    token = token_of(r.text)
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}={token}" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert client.post("/promote", data={FIELD: token}).json() == {"promoted": True}
    # The same visitor keeps the same token (several tabs keep working); no new cookie.
    again = client.get("/form")
    assert token_of(again.text) == token and "set-cookie" not in again.headers
    # fetch() callers may send the header instead of a form field.
    assert client.post("/promote", headers={"X-CSRF-Token": token}).status_code == 200


def test_pages_without_forms_set_no_cookie(client: TestClient) -> None:
    r = client.get("/plain")
    assert "no form here" in r.text and "set-cookie" not in r.headers


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Origin": "http://evil.example"}, "another origin"),
        ({"Origin": "null"}, "another origin"),
        ({"Referer": "https://evil.example/page"}, "another origin"),
        ({"Sec-Fetch-Site": "cross-site"}, "cross-site"),
        ({"Sec-Fetch-Site": "same-site"}, "cross-site"),
    ],
)
def test_cross_origin_posts_are_refused(
    client: TestClient, headers: dict[str, str], message: str
) -> None:
    token = token_of(client.get("/form").text)
    r = client.post("/promote", data={FIELD: token}, headers=headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert message in r.json()["error"]["message"]


def test_same_origin_headers_pass(client: TestClient) -> None:
    token = token_of(client.get("/form").text)
    headers = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/promote", data={FIELD: token}, headers=headers).status_code == 200


def test_missing_or_wrong_tokens_are_refused(client: TestClient) -> None:
    r = client.post("/promote", data={FIELD: "x" * 43})
    assert r.status_code == 403 and "cookie is missing" in r.json()["error"]["message"]
    token = token_of(client.get("/form").text)
    for data in ({}, {FIELD: ""}, {FIELD: token[:-1] + ("A" if token[-1] != "A" else "B")}):
        r = client.post("/promote", data=data)
        assert r.status_code == 403, data
    # An attacker's own valid pair does not help: the victim's cookie is what counts.
    other = TestClient(client.app)
    attacker = token_of(other.get("/form").text)
    assert client.post("/promote", data={FIELD: attacker}).status_code == 403


def test_signed_tokens_are_bound_to_secret_and_binding() -> None:
    signed = CsrfProtect(secret=b"one")
    minted = signed._mint("alice")
    assert signed._valid(minted, "alice")
    assert not signed._valid(minted, "bob")  # another user's token
    assert not CsrfProtect(secret=b"two")._valid(minted, "alice")  # another server's
    assert not signed._valid(CsrfProtect()._mint(""), "alice")  # unsigned
    # A forged cookie+field pair without the server's signature is refused.
    client = TestClient(make_app(b"one"))
    forged = "A" * 43
    client.cookies.set(COOKIE, forged)
    r = client.post("/promote", data={FIELD: forged})
    assert r.status_code == 403

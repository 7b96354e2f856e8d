"""Signing in to the dashboard with an API token, on a server that requires tokens: the token
goes in a POST body once and comes back as a signed session cookie, never as itself."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from registry.access import list_tokens, revoke_token
from registry.client.local import LocalClient
from registry.runtime import Runtime
from registry.server import create_app
from registry.web.csrf import FIELD
from registry.web.session import COOKIE

# Sign-in rules do not touch blobs: both catalogs, the local store only.
pytestmark = pytest.mark.parametrize("storage_backend", ["local"])


@pytest.fixture
def locked(runtime: Runtime, catalog: LocalClient) -> Iterator[TestClient]:
    with TestClient(create_app(runtime, require_auth=True, background=False)) as c:
        yield c


def csrf_of(html: str) -> str:
    found = re.search(rf'name="{FIELD}" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


def login(client: TestClient, token: str, next_url: str = "") -> tuple[int, dict[str, str], str]:
    form = client.get("/ui/-/login", params={"next": next_url} if next_url else None).text
    r = client.post(
        "/ui/-/login",
        data={FIELD: csrf_of(form), "token": token, "next": next_url},
        follow_redirects=False,
    )
    return r.status_code, dict(r.headers), r.text


def test_login_gives_a_session_cookie_not_the_token(
    locked: TestClient, token_for: Callable[..., str]
) -> None:
    token = token_for("maintainer", name="alice")
    assert locked.get("/ui/").status_code == 401
    form = locked.get("/ui/-/login?next=/ui/acme/brand-voice").text
    # A POST form with a password field: the token is never part of a URL.
    assert re.search(r'<form method="post" action="/ui/-/login"', form)
    assert 'type="password"' in form and 'name="next" value="/ui/acme/brand-voice"' in form
    r = locked.post(
        "/ui/-/login",
        data={FIELD: csrf_of(form), "token": token, "next": "/ui/acme/brand-voice"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/ui/acme/brand-voice"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(COOKIE))
    # itsdangerous TimestampSigner: "<token id>.<expires>.<timestamp>.<signature>".
    assert re.match(rf"{COOKIE}=\d+\.\d+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{{43}};", cookie)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Max-Age=43200" in cookie and "Secure" not in cookie  # plain http here
    assert token not in cookie and token not in r.headers["location"]
    # The CSRF cookie is dropped, so forms get a token tied to the new session.
    assert any(c.startswith('lorareg_csrf=""') for c in r.headers.get_list("set-cookie"))

    html = locked.get("/ui/acme/brand-voice").text
    assert "Signed in as <strong>alice</strong>" in html
    assert '<span class="badge role">maintainer</span>' in html
    # The cookie authenticates reads of the API (the jobs page polls it) ...
    assert locked.get("/api/v1/jobs").status_code == 200
    # ... but never an API write: those need the bearer header, so no page can forge one.
    r = locked.post("/api/v1/merges", json={"adapters": ["acme/brand-voice:1"], "base": "x"})
    assert r.status_code == 401

    out = locked.post("/ui/-/logout", data={FIELD: csrf_of(html)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/-/login?signed_out=1"
    assert any(c.startswith(f'{COOKIE}=""') for c in out.headers.get_list("set-cookie"))
    assert "You are signed out" in locked.get(out.headers["location"]).text
    assert locked.get("/ui/").status_code == 401


def test_bad_tokens_are_refused_with_a_page(
    runtime: Runtime, locked: TestClient, token_for: Callable[..., str]
) -> None:
    status, headers, html = login(locked, "lrg_not-a-real-token")
    assert status == 401 and "invalid token" in html
    assert COOKIE not in headers.get("set-cookie", "")
    status, _, html = login(locked, "   ")
    assert status == 422 and "Paste an API token" in html
    # A revoked token's name is user-written: it shows as text.
    token = token_for("maintainer", name="<b>eve</b>")
    (info,) = [t for t in list_tokens(runtime.db) if t.name == "<b>eve</b>"]
    revoke_token(runtime.db, info.id, actor="admin")
    status, _, html = login(locked, token)
    assert status == 401 and "&lt;b&gt;eve&lt;/b&gt;" in html and "<b>eve" not in html
    assert locked.get("/ui/").status_code == 401


def test_login_form_needs_its_csrf_token(locked: TestClient, token_for: Callable[..., str]) -> None:
    token = token_for("admin")
    r = locked.post("/ui/-/login", data={"token": token}, follow_redirects=False)
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert COOKIE not in r.headers.get("set-cookie", "")
    csrf = csrf_of(locked.get("/ui/-/login").text)
    r = locked.post(
        "/ui/-/login",
        data={FIELD: csrf, "token": token},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    # Refused by the app's cross-site rule before the form's own check runs.
    assert r.status_code == 403 and r.json()["error"]["code"] == "cross_site_request"
    assert COOKIE not in r.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    "target",
    ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/ui/-/logout", "/api/v1/x"],
)
def test_next_never_leaves_the_dashboard(
    locked: TestClient, token_for: Callable[..., str], target: str
) -> None:
    status, headers, _ = login(locked, token_for("reader"), next_url=target)
    assert status == 303 and headers["location"] == "/ui/"


def test_a_session_ends_with_its_token(
    runtime: Runtime, locked: TestClient, token_for: Callable[..., str]
) -> None:
    login(locked, token_for("reader", name="short-lived"))
    assert locked.get("/ui/").status_code == 200
    (info,) = [t for t in list_tokens(runtime.db) if t.name == "short-lived"]
    revoke_token(runtime.db, info.id, actor="admin")
    r = locked.get("/ui/")
    assert r.status_code == 401 and "Log in with an API token" in r.text
    assert "Your browser session has ended" in r.text
    # A forged cookie (another signature) is no session either.
    locked.cookies.set(COOKIE, "1.99999999999.axE4aa." + "A" * 43)
    assert locked.get("/ui/").status_code == 401


def test_a_bearer_header_wins_over_the_cookie(
    locked: TestClient, token_for: Callable[..., str]
) -> None:
    login(locked, token_for("maintainer", name="alice"))
    reader = token_for("reader", name="bob")
    html = locked.get("/ui/", headers={"Authorization": f"Bearer {reader}"}).text
    assert "<strong>bob</strong>" in html and "Signed in as" not in html


def test_scoped_session_sees_its_namespaces(
    locked: TestClient, token_for: Callable[..., str]
) -> None:
    login(locked, token_for("reader", namespaces=["beta"]))
    index = locked.get("/ui/").text
    assert "/ui/beta/summarizer" in index and "/ui/acme/" not in index
    assert locked.get("/ui/acme/brand-voice").status_code == 404


def test_secure_cookie_over_https(
    runtime: Runtime, catalog: LocalClient, token_for: Callable[..., str]
) -> None:
    app = create_app(runtime, require_auth=True, background=False)
    with TestClient(app, base_url="https://testserver") as client:
        status, headers, _ = login(client, token_for("reader"))
    assert status == 303 and "; Secure" in headers["set-cookie"]


def test_secure_cookies_behind_an_https_proxy(
    runtime: Runtime, catalog: LocalClient, token_for: Callable[..., str]
) -> None:
    """LORAREG_BEHIND_HTTPS: the proxy speaks plain http to us, the cookies are Secure all
    the same (session and CSRF alike); without the setting, plain http gets none."""
    behind = runtime.settings.model_copy(update={"behind_https": True})
    for settings, secure in ((behind, True), (runtime.settings, False)):
        app = create_app(Runtime(settings, db=runtime.db, store=runtime.store), require_auth=True)
        with TestClient(app, base_url="http://testserver") as client:
            form = client.get("/ui/-/login")
            csrf = csrf_of(form.text)
            # By hand: the client keeps Secure cookies off plain http, as a browser would.
            client.cookies.clear()
            r = client.post(
                "/ui/-/login",
                data={FIELD: csrf, "token": token_for("reader")},
                headers={"Cookie": f"lorareg_csrf={csrf}"},
                follow_redirects=False,
            )
        assert r.status_code == 303
        cookies = [*form.headers.get_list("set-cookie"), *r.headers.get_list("set-cookie")]
        assert {c.split("=")[0] for c in cookies} >= {COOKIE, "lorareg_csrf"}
        assert all(("; Secure" in c) is secure for c in cookies), cookies


def test_links_from_other_sites_reload_once_with_the_cookie(locked: TestClient) -> None:
    # SameSite=Strict keeps the cookie off a cross-site navigation: the 401 page reloads
    # itself once (a same-origin request, which carries it).
    cross = locked.get("/ui/acme/brand-voice", headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 401 and '<meta http-equiv="refresh" content="0">' in cross.text
    same = locked.get("/ui/acme/brand-voice", headers={"Sec-Fetch-Site": "same-origin"})
    assert 'http-equiv="refresh"' not in same.text


def test_server_secret_signs_sessions(
    runtime: Runtime, catalog: LocalClient, token_for: Callable[..., str]
) -> None:
    """With LORAREG_SECRET_KEY, a session minted from the tokens table alone (no secret)
    is refused, and two replicas with the same secret accept each other's cookies."""
    from pydantic import SecretStr

    from registry.access import authenticate
    from registry.services.access import session_token
    from registry.web.session import SessionCodec

    token = token_for("reader", name="bob")
    keyed = runtime.settings.model_copy(update={"secret_key": SecretStr("s" * 32)})
    rt = Runtime(keyed, db=runtime.db, store=runtime.store)
    with (
        TestClient(create_app(rt, require_auth=True, background=False)) as one,
        TestClient(create_app(rt, require_auth=True, background=False)) as two,
    ):
        status, headers, _ = login(one, token)
        assert status == 303
        cookie = headers["set-cookie"].split(";")[0].split("=", 1)[1]
        two.cookies.set(COOKIE, cookie)
        assert "Signed in as <strong>bob</strong>" in two.get("/ui/").text
        signed_in = authenticate(runtime.db, token)
        assert signed_in.token_id is not None
        found = session_token(runtime.db, signed_in.token_id)
        assert found is not None
        forged = SessionCodec().issue(found)
        two.cookies.set(COOKIE, forged)
        assert two.get("/ui/").status_code == 401

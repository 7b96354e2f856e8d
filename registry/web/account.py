"""Sign-in with an API token, and sign-out: ``/ui/-/login``, ``/ui/-/logout``.

The token travels once, in the body of a CSRF-checked POST (never in a URL), is checked
with ``authenticate``, and is exchanged for a signed session cookie (see ``session.py``).
Both directions also drop the CSRF cookie, so the next form gets a token tied to the new
identity.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from registry.access import authenticate
from registry.errors import Unauthorized
from registry.http_deps import RuntimeDep
from registry.services.access import session_token
from registry.web.csrf import require_csrf
from registry.web.pages import PageRoute
from registry.web.session import clear_session_cookie, set_session_cookie
from registry.web.templating import PREFIX, WebAssets, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

LOGIN = f"{PREFIX}/-/login"
LOGOUT = f"{PREFIX}/-/logout"
MAX_TOKEN_CHARS = 512  # real tokens are ~47; a megabyte pasted by mistake is refused early


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a dashboard page, never another site (``//evil``,
    ``/\\evil`` and absolute URLs all fall back to the adapter list)."""
    if (
        value
        and value.startswith(PREFIX + "/")
        and "\\" not in value
        and not any(c in value for c in "\r\n\t")
        and not value.startswith((LOGIN, LOGOUT))
    ):
        return value
    return f"{PREFIX}/"


def _login_page(
    request: Request, *, next_url: str, error: str | None = None, status: int = 200
) -> HTMLResponse:
    signed_out = request.query_params.get("signed_out") == "1"
    return render(
        request,
        "login.html",
        {"next_url": next_url, "error": error, "signed_out": signed_out},
        status=status,
    )


@router.get(LOGIN)
def login_form(
    request: Request, next_url: Annotated[str, Query(alias="next")] = ""
) -> HTMLResponse:
    return _login_page(request, next_url=safe_next(next_url))


@router.post(LOGIN, dependencies=[Depends(require_csrf)])
def login(
    request: Request,
    rt: RuntimeDep,
    token: Annotated[str, Form()] = "",
    next_url: Annotated[str, Form(alias="next")] = "",
) -> Response:
    target = safe_next(next_url)
    token = token.strip()
    if not token:
        return _login_page(request, next_url=target, error="Paste an API token.", status=422)
    if len(token) > MAX_TOKEN_CHARS:
        return _login_page(request, next_url=target, error="That is not a token.", status=422)
    try:
        principal = authenticate(rt.db, token)
    except Unauthorized as exc:
        # The message names no secret: "invalid token", or the token's name when revoked.
        return _login_page(request, next_url=target, error=exc.message, status=401)
    assets: WebAssets = request.app.state.web
    found = session_token(rt.db, principal.token_id) if principal.token_id else None
    if found is None:  # authenticate() names a token it found, unless it vanished since
        return _login_page(request, next_url=target, error="invalid token", status=401)
    value = assets.sessions.issue(found)
    expires = assets.sessions.expiry(value)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, value, max_age=max(1, expires - int(time.time())))
    assets.csrf.clear_cookie(request, response)
    return response


@router.get(LOGOUT)
def logout_form(request: Request) -> HTMLResponse:
    # Signing out changes state, so it is a POST; this page holds the button for a
    # browser that followed a link here.
    return render(request, "logout.html", {})


@router.post(LOGOUT, dependencies=[Depends(require_csrf)])
def logout(request: Request) -> Response:
    assets: WebAssets = request.app.state.web
    response = RedirectResponse(f"{LOGIN}?signed_out=1", status_code=303)
    clear_session_cookie(request, response)
    assets.csrf.clear_cookie(request, response)
    return response

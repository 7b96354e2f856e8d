"""CSRF protection for the dashboard's forms: a double-submit cookie, optionally signed.

Every page that renders a form gets a token in an HttpOnly, SameSite=Strict cookie and the
same token in a hidden field. A POST passes only if the submitted field (or the
``X-CSRF-Token`` header, for ``fetch``) equals the cookie, and the request did not come
from another origin (``Sec-Fetch-Site`` / ``Origin`` / ``Referer``). A cross-site page can
make the browser send the cookie but cannot read it to fill the field.

Tokens are ``itsdangerous`` ``URLSafeTimedSerializer`` values (a random nonce, salted for
CSRF, good for ``MAX_AGE_S``) keyed by the server secret and ``binding`` (the browser's
session cookie): tokens minted elsewhere are refused, and a token is tied to one session,
which closes the cookie-injection gap of the plain scheme. Without a server secret a
signed-in browser's tokens are keyed by its session cookie alone (HttpOnly, so no page can
read it), with the same effect; only the sign-in form itself, before any session, is plain
double-submit plus the origin checks. Stateless either way, so it works across N replicas.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import urlsplit

from itsdangerous import BadData, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from registry.errors import Forbidden
from registry.web.session import cookies_secure

COOKIE = "lorareg_csrf"
FIELD = "csrf_token"
HEADER = "x-csrf-token"
SALT = "lorareg.csrf.v2"
MAX_AGE_S = 24 * 3600  # a form left open longer asks for a reload
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_SIGNED_RE = re.compile(r"^[A-Za-z0-9_.-]{60,160}$")
_SAFE_SITES = {"same-origin", "none"}  # "none": typed URL or bookmark, not a page


class CsrfProtect:
    def __init__(self, *, secret: bytes | None = None, cookie_name: str = COOKIE) -> None:
        self.secret = secret
        self.cookie_name = cookie_name

    def _serializer(self, binding: str) -> URLSafeTimedSerializer | None:
        """The signer: keyed by the server secret and the binding, which for a signed-in
        browser is its HttpOnly session cookie: a secret no other site can read, so tokens
        are tied to the session even on a server configured without a secret. None when
        there is neither (the sign-in form of such a server)."""
        if self.secret is None and not binding:
            return None
        return URLSafeTimedSerializer(
            (self.secret or b"") + b"\x00" + binding.encode(),
            salt=SALT,
            signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
        )

    def _mint(self, binding: str) -> str:
        nonce = secrets.token_urlsafe(32)
        signer = self._serializer(binding)
        return signer.dumps(nonce) if signer is not None else nonce

    def _valid(self, token: str | None, binding: str) -> bool:
        if not token:
            return False
        signer = self._serializer(binding)
        if signer is None:
            return bool(_NONCE_RE.match(token))
        if not _SIGNED_RE.match(token):
            return False
        try:
            nonce = signer.loads(token, max_age=MAX_AGE_S)
        except BadData:
            return False
        return isinstance(nonce, str) and bool(_NONCE_RE.match(nonce))

    def token(self, request: Request, *, binding: str = "") -> str:
        """The token for this visitor: the cookie's if it is valid, else a fresh one that
        ``set_cookie`` must then send. Stable across pages so several tabs keep working."""
        cached = getattr(request.state, "csrf_token", None)
        if cached:
            return str(cached)
        current = request.cookies.get(self.cookie_name)
        fresh = not self._valid(current, binding)
        value = self._mint(binding) if fresh or current is None else current
        request.state.csrf_token = value
        request.state.csrf_fresh = fresh
        return value

    def set_cookie(self, request: Request, response: Response) -> None:
        """Send the cookie when ``token`` had to mint one for this request."""
        if not getattr(request.state, "csrf_fresh", False):
            return
        response.set_cookie(
            self.cookie_name,
            request.state.csrf_token,
            httponly=True,
            samesite="strict",
            secure=cookies_secure(request),
            path="/",
        )

    def clear_cookie(self, request: Request, response: Response) -> None:
        """Drop the token when the signed-in identity changes (login, logout), so a token
        planted before sign-in is never good for the session's forms."""
        response.delete_cookie(
            self.cookie_name,
            httponly=True,
            samesite="strict",
            secure=cookies_secure(request),
            path="/",
        )

    def verify(self, request: Request, submitted: str | None, *, binding: str = "") -> None:
        """Raise Forbidden unless ``submitted`` matches this visitor's cookie, same-origin."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in _SAFE_SITES:
            raise Forbidden(f"refused a cross-site form submission (Sec-Fetch-Site: {site})")
        origin = request.headers.get("origin")
        source = origin if origin is not None else request.headers.get("referer")
        host = request.headers.get("host", "")
        # Hosts only: a TLS-terminating proxy makes the scheme differ legitimately. An opaque
        # "null" origin (sandboxed frames) can be forced by any page, so it is refused.
        if source is not None and (source == "null" or urlsplit(source).netloc != host):
            raise Forbidden("refused a form submitted from another origin")
        cookie = request.cookies.get(self.cookie_name)
        if not self._valid(cookie, binding) or cookie is None:
            raise Forbidden(
                "the form's security cookie is missing or stale; reload the page and try again"
            )
        if not submitted or not hmac.compare_digest(submitted.encode(), cookie.encode()):
            raise Forbidden("the form's security token does not match; reload the page")


def binding_of(request: Request) -> str:
    """The identity a signed token is tied to: the browser session, set by the session
    middleware (empty before sign-in)."""
    return str(getattr(request.state, "csrf_binding", ""))


async def require_csrf(request: Request) -> None:
    """FastAPI dependency for dashboard POST routes: ``dependencies=[Depends(require_csrf)]``."""
    protect: CsrfProtect = request.app.state.csrf
    submitted = request.headers.get(HEADER)
    if submitted is None:
        form = await request.form()
        value = form.get(FIELD)
        submitted = value if isinstance(value, str) else None
    protect.verify(request, submitted, binding=binding_of(request))

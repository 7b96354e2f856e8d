"""Dashboard sign-in: a signed, expiring session cookie that stands for an API token.

The login form checks a token with ``authenticate`` once; the browser then keeps
``<token id>.<expires>.<timestamp>.<signature>`` (an ``itsdangerous`` ``TimestampSigner``
value, salted for sessions) in an HttpOnly, SameSite=Strict cookie (Secure over https, or
always with ``LORAREG_BEHIND_HTTPS``), never the token itself, so a stolen cookie is not a
token that works forever with the CLI, and the token never sits in the browser's cookie
store.

The signing key is the token's stored hash, mixed with the server secret when one is set
(``LORAREG_SECRET_KEY``), which makes sessions:

- stateless: any of N replicas verifies a cookie with one primary-key lookup, no session
  table;
- bound to their token: revoking or expiring the token ends every session made from it at
  the next request, and a session never outlives the token;
- short: ``LIFETIME_S`` at most, whatever the token's own lifetime.

Logout drops the cookie; without server-side state a copied cookie stays valid until it
expires, which the short lifetime bounds (revoke the token to end it at once). Without a
server secret, anyone who can read the tokens table can mint sessions for its tokens; the
secret closes that.

``SessionAuth`` reads the cookie when a request has no ``Authorization`` header and puts
the principal where ``registry.http_deps.get_principal`` looks first, so pages (and the
dashboard's JSON polling of ``GET /api/v1/jobs/{id}``) act as the signed-in token. The
cookie authenticates only reads anywhere, and dashboard form POSTs, which all check CSRF:
an API write always needs the bearer header, so no other page can make one with it.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from fastapi.concurrency import run_in_threadpool
from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from registry.access import Principal
from registry.errors import LoraregError
from registry.services.access import SessionToken, session_token

COOKIE = "lorareg_session"
LIFETIME_S = 12 * 3600
SALT = "lorareg.session.v2"
MAX_COOKIE_CHARS = 256  # real values are ~80: anything longer is refused unread
_TOKEN_ID_RE = re.compile(r"^[1-9][0-9]{0,18}$")
_SAFE_METHODS = {"GET", "HEAD"}

# The token a session names, by id: ``functools.partial(session_token, db)``.
TokenLookup = Callable[[int], SessionToken | None]


@dataclass(frozen=True)
class Session:
    token_id: int
    expires: int  # unix seconds
    # The cookie value: CSRF tokens are signed with it, so they are good for this session
    # only. Never rendered into a page.
    binding: str = field(repr=False, default="")


def cookies_secure(request: Request) -> bool:
    """Cookies carry ``Secure`` over https, and always when the server is told it sits
    behind a TLS-terminating proxy (whatever that proxy forwards)."""
    return request.url.scheme == "https" or bool(getattr(request.app.state, "behind_https", False))


class SessionCodec:
    def __init__(self, *, secret: bytes | None = None, lifetime_s: int = LIFETIME_S) -> None:
        self.secret = secret
        self.lifetime_s = lifetime_s

    def _signer(self, token_hash: str) -> TimestampSigner:
        return TimestampSigner(
            (self.secret or b"") + token_hash.encode(),
            salt=SALT,
            key_derivation="hmac",
            digest_method=hashlib.sha256,
        )

    def issue(self, token: SessionToken, *, now: float | None = None) -> str:
        """A cookie value for ``token``, which ``authenticate`` just accepted."""
        t = int(now if now is not None else time.time())
        expires = t + self.lifetime_s
        if token.expires_at is not None:
            expires = min(expires, int(_aware(token.expires_at).timestamp()))
        return self._signer(token.token_hash).sign(f"{token.id}.{expires}").decode()

    @staticmethod
    def expiry(value: str) -> int:
        """When a value that ``issue`` just made expires (unix seconds)."""
        return int(value.split(".")[1])

    def resolve(
        self, value: str, tokens: TokenLookup, *, now: float | None = None
    ) -> tuple[Session, Principal] | None:
        """The session and its principal, or None when the cookie is malformed, forged,
        expired, or its token was revoked or has expired."""
        if len(value) > MAX_COOKIE_CHARS:
            return None
        head = value.split(".", 1)[0]
        if not _TOKEN_ID_RE.match(head):
            return None
        t = now if now is not None else time.time()
        row = tokens(int(head))
        if row is None:
            return None
        try:
            # max_age bounds the signing time too: a value never lives past one lifetime.
            signed = self._signer(row.token_hash).unsign(value, max_age=self.lifetime_s)
        except BadSignature:
            return None
        token_id, _, expires_text = signed.decode().partition(".")
        if token_id != head or not expires_text.isdigit():
            return None
        expires = int(expires_text)
        if expires <= t:
            return None
        # The same refusals as authenticate(), which needs the plaintext we do not keep.
        if row.revoked_at is not None:
            return None
        if row.expires_at is not None and _aware(row.expires_at).timestamp() <= t:
            return None
        scope = frozenset(row.namespaces) if row.namespaces else None
        principal = Principal(
            name=row.name,
            role=row.role,
            namespaces=scope,
            token_id=row.id,
            default_region=row.default_region,
        )
        return Session(token_id=row.id, expires=expires, binding=value), principal


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def set_session_cookie(request: Request, response: Response, value: str, *, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=cookies_secure(request),
        path="/",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, httponly=True, samesite="strict", secure=cookies_secure(request), path="/"
    )


class SessionAuth:
    """ASGI middleware: turn a valid session cookie into the request's principal."""

    def __init__(self, app: ASGIApp, *, prefix: str) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/") + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._attach(scope)
        await self.app(scope, receive, send)

    async def _attach(self, scope: Scope) -> None:
        request = Request(scope)
        value = request.cookies.get(COOKIE)
        if not value or "authorization" in request.headers:
            return  # an explicit bearer token always wins over the browser's cookie
        if request.method not in _SAFE_METHODS and not request.url.path.startswith(self.prefix):
            return
        app = scope["app"]
        codec: SessionCodec = app.state.web.sessions
        try:
            tokens = partial(session_token, app.state.runtime.db)
            found = await run_in_threadpool(codec.resolve, value, tokens)
        except LoraregError:
            return  # database down: the page's own query reports it
        state = scope.setdefault("state", {})
        if found is None:
            state["session_stale"] = True
            return
        session, principal = found
        state["principal"] = principal
        state["session"] = session
        state["csrf_binding"] = session.binding

"""Dashboard sign-in: a signed, expiring session cookie that stands for an API token.

The login form checks a token with ``authenticate`` once; the browser then keeps
``s1.<token id>.<expires>.<mac>`` in an HttpOnly, SameSite=Strict cookie (Secure over
https), never the token itself, so a stolen cookie is not a token that works forever with
the CLI, and the token never sits in the browser's cookie store.

The MAC is HMAC-SHA256 keyed by the token's stored hash (mixed with a server secret when
one is given), which makes sessions:

- stateless: any of N replicas verifies a cookie with one primary-key lookup, no session
  table and no shared secret to distribute;
- bound to their token: revoking or expiring the token ends every session made from it at
  the next request, and a session never outlives the token;
- short: ``LIFETIME_S`` at most, whatever the token's own lifetime.

Logout drops the cookie; without server-side state a copied cookie stays valid until it
expires, which the short lifetime bounds (revoke the token to end it at once). Anyone who
can read the tokens table can mint sessions for its tokens; a server secret closes that.

``SessionAuth`` reads the cookie when a request has no ``Authorization`` header and puts
the principal where ``registry.api.deps.get_principal`` looks first, so pages (and the
dashboard's JSON polling of ``GET /api/v1/jobs/{id}``) act as the signed-in token. The
cookie authenticates only reads anywhere, and dashboard form POSTs, which all check CSRF:
an API write always needs the bearer header, so no other page can make one with it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from registry.db import models as m
from registry.db.database import Database
from registry.errors import LoraregError
from registry.lifecycle.access import Principal

COOKIE = "lorareg_session"
LIFETIME_S = 12 * 3600
_VALUE_RE = re.compile(r"^s1\.([1-9][0-9]{0,18})\.([0-9]{1,12})\.([0-9a-f]{64})$")
_SAFE_METHODS = {"GET", "HEAD"}


@dataclass(frozen=True)
class Session:
    token_id: int
    expires: int  # unix seconds
    # The cookie value: CSRF tokens are signed with it, so they are good for this session
    # only. Never rendered into a page.
    binding: str = field(repr=False, default="")


class SessionCodec:
    def __init__(self, *, secret: bytes | None = None, lifetime_s: int = LIFETIME_S) -> None:
        self.secret = secret
        self.lifetime_s = lifetime_s

    def _mac(self, token_hash: str, token_id: int, expires: int) -> str:
        key = token_hash.encode()
        if self.secret:
            key = hmac.new(self.secret, key, hashlib.sha256).digest()
        msg = f"lorareg-session\x00s1\x00{token_id}\x00{expires}".encode()
        return hmac.new(key, msg, hashlib.sha256).hexdigest()

    def issue(self, db: Database, principal: Principal, *, now: float | None = None) -> str:
        """A cookie value for a principal that ``authenticate`` just returned."""
        if principal.token_id is None:
            raise ValueError("only a token's principal can sign in")
        t = int(now if now is not None else time.time())
        with db.read() as s:
            row = s.get(m.Token, principal.token_id)
            if row is None:
                raise ValueError("the token vanished while signing in")
            expires = t + self.lifetime_s
            if row.expires_at is not None:
                expires = min(expires, int(_aware(row.expires_at).timestamp()))
            return f"s1.{row.id}.{expires}.{self._mac(row.token_hash, row.id, expires)}"

    def resolve(
        self, db: Database, value: str, *, now: float | None = None
    ) -> tuple[Session, Principal] | None:
        """The session and its principal, or None when the cookie is malformed, forged,
        expired, or its token was revoked or has expired."""
        found = _VALUE_RE.match(value)
        if found is None:
            return None
        token_id, expires, mac = int(found[1]), int(found[2]), found[3]
        t = now if now is not None else time.time()
        if expires <= t:
            return None
        with db.read() as s:
            row = s.get(m.Token, token_id)
        if row is None or not hmac.compare_digest(mac, self._mac(row.token_hash, row.id, expires)):
            return None
        # The same refusals as authenticate(), which needs the plaintext we do not keep.
        if row.revoked_at is not None:
            return None
        if row.expires_at is not None and _aware(row.expires_at).timestamp() <= t:
            return None
        scope = frozenset(row.namespaces) if row.namespaces else None
        principal = Principal(name=row.name, role=row.role, namespaces=scope, token_id=row.id)
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
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/"
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
            found = await run_in_threadpool(codec.resolve, app.state.runtime.db, value)
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

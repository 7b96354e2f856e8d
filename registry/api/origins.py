"""Requests a browser was tricked into sending: DNS rebinding and cross-site writes.

An open server (no tokens, on loopback) trusts whoever reaches it, so a web page that
points a name of its own at 127.0.0.1 (DNS rebinding) could read the catalog and mint an
admin token through the visitor's browser. Such a request still carries the page's name
in ``Host``: an open server answers only to ``localhost``, ``127.0.0.1`` and ``[::1]``, on
its own port or with none (421 ``host_not_allowed``).

A write (any method but GET, HEAD, OPTIONS) that a browser sends for another site carries
that site's ``Origin`` or ``Sec-Fetch-Site: cross-site``; it is refused with 403
``cross_site_request`` before any handler runs (bodiless POSTs such as a job cancel
included). On a server that requires tokens the Host check is left to its proxy, and the
write rule applies to requests without an ``Authorization`` header: those are the ones a
browser could authenticate with the dashboard's cookie.

Pure ASGI, one pass over the headers: it sits in front of the resolve hot path.
"""

from __future__ import annotations

from typing import Any

from registry.api.limits import Scope, _refuse
from registry.errors import CrossSiteRequest, HostNotAllowed

LOOPBACK_NAMES = frozenset({b"localhost", b"127.0.0.1", b"[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BrowserGuard:
    """ASGI middleware: the Host rule on open servers, the cross-site write rule on all."""

    def __init__(self, app: Any, *, open_server: bool) -> None:
        self.app = app
        self.open_server = open_server

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = origin = site = None
        authorized = False
        for key, value in scope["headers"]:
            if key == b"host":
                host = value
            elif key == b"origin":
                origin = value
            elif key == b"sec-fetch-site":
                site = value
            elif key == b"authorization":
                authorized = True
        if self.open_server and host is not None and not loopback_host(host, scope.get("server")):
            await _refuse(
                send,
                HostNotAllowed.http_status,
                HostNotAllowed.code,
                "this server runs without tokens and answers only to localhost, 127.0.0.1"
                " or [::1]; to serve other names, require tokens (LORAREG_AUTH=required)",
            )
            return
        ambient = self.open_server or not authorized  # no header token vouches for it
        if (
            ambient
            and scope["method"] not in SAFE_METHODS
            and (site == b"cross-site" or (origin is not None and not same_origin(origin, host)))
        ):
            await _refuse(
                send,
                CrossSiteRequest.http_status,
                CrossSiteRequest.code,
                "refused a write sent by a page of another site (Origin / Sec-Fetch-Site)",
            )
            return
        await self.app(scope, receive, send)


def loopback_host(host: bytes, server: Any) -> bool:
    """``host`` names this machine's loopback interface, with this server's port or none."""
    host = host.lower()
    if host.startswith(b"["):
        name, _, rest = host.partition(b"]")
        name += b"]"
        if rest and not rest.startswith(b":"):
            return False
        port = rest[1:]
    else:
        name, _, port = host.partition(b":")
    if name not in LOOPBACK_NAMES:
        return False
    if not port:
        return True
    if not port.isdigit():
        return False
    own = server[1] if server else None
    return own is None or int(port) == own


def same_origin(origin: bytes, host: bytes | None) -> bool:
    """``Origin`` (``scheme://host[:port]``) names the host the request was sent to; the
    scheme is left out, as a TLS-terminating proxy changes it. ``null`` never matches."""
    scheme, sep, netloc = origin.partition(b"://")
    return bool(sep) and host is not None and netloc.lower() == host.lower()

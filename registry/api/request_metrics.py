"""ASGI middleware that counts and times every HTTP request for ``/metrics``.

Labels stay bounded whatever clients send: the route's template (set by the router in
the ASGI scope), ``unmatched`` for a path no route knows, a method outside the usual set
as ``other``. Latency runs to the response's first byte, so a long download or an open
event stream is timed by how soon it started, not by how long it lasted. A 503 whose
``X-Error-Code`` says storage or the database failed is also counted as a backend error.
"""

from __future__ import annotations

import time
from typing import Any

from registry.observability import metrics

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BACKENDS = {b"storage_unavailable": "storage", b"database_unavailable": "database"}

Scope = dict[str, Any]


class RequestMetrics:
    """Outermost middleware: sees every answer, the refusals of other middleware included."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in METHODS else "other"
        status = 0

        async def timed_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                metrics.HTTP_LATENCY.labels(method, route_template(scope)).observe(
                    time.perf_counter() - started
                )
                if status == 503:
                    for name, value in message.get("headers") or ():
                        if name.lower() == b"x-error-code" and value in BACKENDS:
                            metrics.BACKEND_ERRORS.labels(BACKENDS[value]).inc()
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            # No response started: the error escaped every handler, the server answers 500.
            metrics.HTTP_REQUESTS.labels(method, route_template(scope), str(status or 500)).inc()


def route_template(scope: Scope) -> str:
    """The matched route's path template, or ``unmatched``."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"

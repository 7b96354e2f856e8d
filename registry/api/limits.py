"""Request limits at the edge: a JSON body over the limit is refused with 413 before it is
read into memory (blob uploads stream to disk and have their own, larger limit), and a URL
carrying a NUL byte is refused with 400 before it reaches a query (PostgreSQL cannot hold
one in text, SQLite silently can: refusing it here keeps both backends alike)."""

from __future__ import annotations

import json
from typing import Any

from registry.errors import InvalidRequest, PayloadTooLarge

MAX_JSON_BYTES = 8 * 1024 * 1024

Scope = dict[str, Any]


class RequestLimits:
    """ASGI middleware: 400 ``invalid_request`` for a NUL byte in the path or query; 413
    ``payload_too_large`` for bodies over ``limit`` bytes, judged by Content-Length when
    sent and by counting the stream otherwise."""

    def __init__(
        self, app: Any, *, limit: int = MAX_JSON_BYTES, exempt_prefix: str = "/api/v1/blobs/"
    ) -> None:
        self.app = app
        self.limit = limit
        self.exempt = exempt_prefix

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _has_nul(scope):
            await _refuse(
                send,
                400,
                InvalidRequest.code,
                "the request URL contains a NUL byte (%00); remove it",
            )
            return
        if scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        seen = 0
        responded = False

        async def guarded_send(message: dict[str, Any]) -> None:
            if not responded:  # once the 413 is out, whatever the app says is dropped
                await send(message)

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen, responded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not responded:
                    await _too_large(send, self.limit)
                    responded = True
                    return {"type": "http.disconnect"}
            return dict(message)

        await self.app(scope, counting_receive, guarded_send)


def _has_nul(scope: Scope) -> bool:
    # Runs on every request, the resolve hot path included: substring scans, no copies.
    query: bytes = scope.get("query_string") or b""
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


async def _too_large(send: Any, limit: int) -> None:
    await _refuse(send, 413, PayloadTooLarge.code, f"request body over {limit} bytes; send less")


async def _refuse(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-error-code", code.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""Mapping every error to the wire: ``{"error": {"code", "message"}}`` plus ``X-Error-Code``.

Domain errors keep their own status; request validation is 422 ``invalid_request``; an
unreachable database or store is 503; anything unexpected is logged and becomes a 500 with
code ``internal`` (a bug to fix, never a traceback to the client).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.errors import LoraregError, TooManyWaits

log = logging.getLogger("lorareg.api")


def error_response(status: int, code: str, message: str, **extra: object) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    body.update(extra)
    return JSONResponse({"error": body}, status_code=status, headers={"X-Error-Code": code})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoraregError)
    async def _domain(_req: Request, exc: LoraregError) -> JSONResponse:
        resp = JSONResponse(
            exc.to_wire(), status_code=exc.http_status, headers={"X-Error-Code": exc.code}
        )
        if exc.http_status == 401:
            resp.headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, TooManyWaits):
            resp.headers["Retry-After"] = str(exc.retry_after_s)
        return resp

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors()[:5]:
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
            parts.append(f"{loc}: {e.get('msg')}")
        return error_response(422, "invalid_request", "invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RecursionError)
    async def _deep(_req: Request, _exc: RecursionError) -> JSONResponse:
        # json.loads of a body like [[[[...]]]] recurses until Python gives up.
        return error_response(422, "invalid_request", "request JSON is nested too deeply")

    @app.exception_handler(DBAPIError)
    async def _db(_req: Request, exc: DBAPIError) -> JSONResponse:
        log.warning("database error: %s", exc)
        return error_response(
            503, "database_unavailable", "the catalog database is unavailable; retry shortly"
        )

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal", "internal error; the server log has details")

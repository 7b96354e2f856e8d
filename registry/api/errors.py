"""Mapping every error to the wire: ``{"error": {"code", "message"}}`` plus ``X-Error-Code``.

Domain errors keep their own status; request validation is 422 ``invalid_request``; an
unreachable database (a lost or refused connection, a lock timeout) is 503; any other
database error (a constraint, a bad query) and anything unexpected is logged and becomes a
500 with code ``internal`` (a bug to fix, never a traceback to the client, never "retry").
Every code sent here is a class in ``registry.errors`` (``tests/test_errors.py``).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.db.database import is_connection_error
from registry.errors import (
    DatabaseUnavailable,
    HttpError,
    InternalError,
    InvalidRequest,
    LoraregError,
    MethodNotAllowed,
    NotFound,
    TooManyWaits,
)

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
        return error_response(422, InvalidRequest.code, "invalid request: " + "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, HttpError.code)
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RecursionError)
    async def _deep(_req: Request, _exc: RecursionError) -> JSONResponse:
        # json.loads of a body like [[[[...]]]] recurses until Python gives up.
        return error_response(422, InvalidRequest.code, "request JSON is nested too deeply")

    @app.exception_handler(DBAPIError)
    async def _db(_req: Request, exc: DBAPIError) -> JSONResponse:
        if database_is_unreachable(exc):
            log.warning("database unavailable: %s", exc)
            return error_response(
                503, DatabaseUnavailable.code, "the catalog database is unavailable; retry shortly"
            )
        # A constraint or a query the database refused: a bug, and retrying will not help.
        log.error("database error", exc_info=exc)
        return _internal()

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _internal()


_HTTP_CODES = {400: InvalidRequest.code, 404: NotFound.code, 405: MethodNotAllowed.code}


def database_is_unreachable(exc: DBAPIError) -> bool:
    """A lost, refused or timed-out connection (worth a retry), not a refused statement."""
    return isinstance(exc, OperationalError | InterfaceError) and (
        exc.connection_invalidated or is_connection_error(exc)
    )


def _internal() -> JSONResponse:
    return error_response(500, InternalError.code, "internal error; the server log has details")

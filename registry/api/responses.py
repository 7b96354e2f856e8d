"""What the OpenAPI document says about responses that are not a route's own model: the
error envelope every v1 route may answer with, and the media types of routes that answer
bytes, redirects or an event stream.

Routers pass ``responses=ERRORS`` (or ``error_responses(...)``) to their ``APIRouter``, so
each operation documents ``{"error": {"code", "message"}}`` for its 4xx and 5xx answers.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str  # stable: a class in registry.errors
    message: str  # one line, for people


class ErrorBody(BaseModel):
    """Every v1 error: ``{"error": {"code": "...", "message": "..."}}``, with the code also in
    the ``X-Error-Code`` header."""

    error: ErrorDetail


class HubErrorBody(BaseModel):
    """An error on the Hugging Face Hub-compatible routes, as the Hub sends it: the message
    here and in ``X-Error-Message``, the code here and in ``X-Error-Code``."""

    error: str
    code: str


Responses = dict[int | str, dict[str, Any]]


def error_responses(body: type[BaseModel] = ErrorBody) -> Responses:
    """The error answers any route may give: 422 (a request that fails validation), any
    other 4xx (refused: not found, forbidden, conflict, too large, ...) and 5xx (500
    ``internal``, 503 ``database_unavailable``/``unavailable``), all with ``body``."""
    return {
        422: {"model": body, "description": "Invalid request (code `invalid_request`)"},
        "4XX": {"model": body, "description": "Refused; the code says why"},
        "5XX": {"model": body, "description": "Internal error, or unavailable (retry)"},
    }


ERRORS = error_responses()
HUB_ERRORS = error_responses(HubErrorBody)
SSE_TYPE = "text/event-stream"

_BYTES = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_LOCATION = {"Location": {"description": "Where the bytes are", "schema": {"type": "string"}}}


def file_responses(*, head: bool = False) -> Responses:
    """A stored file: its bytes (206 for a ``Range``), or a 302 to a presigned URL on S3.
    Routes using it set ``response_class=Response`` so FastAPI adds no JSON schema."""
    body = {} if head else {"content": _BYTES}
    return {
        200: {"description": "The file's bytes" + (" (HEAD: headers only)" if head else ""),
              **body},
        206: {"description": "The requested byte range", **body},
        302: {"description": "S3 storage: a redirect to a presigned URL", "headers": _LOCATION},
    }  # fmt: skip

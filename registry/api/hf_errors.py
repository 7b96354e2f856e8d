"""Errors on the Hugging Face Hub-compatible routes, in the Hub's own terms.

huggingface_hub's ``hf_raise_for_status`` picks its exception from the ``X-Error-Code``
header (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and shows the
``X-Error-Message`` header and the body's ``{"error": "..."}``. Domain errors are mapped
here, at the edge, for these routes only; the rest of the API keeps lorareg's codes.

    lorareg error                   status  X-Error-Code         client raises
    AdapterNotFound, InvalidName    404     RepoNotFound         RepositoryNotFoundError
    VersionNotFound                 404     RevisionNotFound     RevisionNotFoundError
    InvalidReference (bad syntax)   400     RevisionNotFound     RevisionNotFoundError
    a file the version lacks        404     EntryNotFound        RemoteEntryNotFoundError
    UnsafePath (``..``, absolute)   400     EntryNotFound        RemoteEntryNotFoundError
    RangeNotSatisfiable             416     RangeNotSatisfiable  HfHubHTTPError
    anything else                   its own status and lorareg code
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from registry.errors import (
    AdapterNotFound,
    InvalidName,
    InvalidReference,
    LoraregError,
    RangeNotSatisfiable,
    Unauthorized,
    UnsafePath,
    VersionNotFound,
)

_HUB_CODES: list[tuple[type[LoraregError], int, str]] = [
    (AdapterNotFound, 404, "RepoNotFound"),
    (InvalidName, 404, "RepoNotFound"),
    (VersionNotFound, 404, "RevisionNotFound"),
    (InvalidReference, 400, "RevisionNotFound"),
    (UnsafePath, 400, "EntryNotFound"),
    (RangeNotSatisfiable, 416, "RangeNotSatisfiable"),
]


def hub_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error as the Hub sends it: ``X-Error-Code``, ``X-Error-Message``, ``{"error"}``."""
    # Header values must be one line of latin-1; the body keeps the exact message.
    one_line = " ".join(message.split()).encode("latin-1", "replace").decode("latin-1")
    return JSONResponse(
        {"error": message, "code": code},
        status_code=status,
        headers={**(headers or {}), "X-Error-Code": code, "X-Error-Message": one_line},
    )


def hub_error_for(exc: LoraregError) -> JSONResponse:
    for cls, status, code in _HUB_CODES:
        if isinstance(exc, cls):
            return hub_error(status, code, exc.message)
    if isinstance(exc, Unauthorized):
        return hub_error(401, exc.code, _for_hub_users(exc.message), {"WWW-Authenticate": "Bearer"})
    return hub_error(exc.http_status, exc.code, exc.message)


def _for_hub_users(message: str) -> str:
    """huggingface_hub, PEFT and vLLM read their token from HF_TOKEN, not LORAREG_TOKEN."""
    message = message.replace("set LORAREG_TOKEN", "set HF_TOKEN to a lorareg token")
    if "HF_TOKEN" not in message:
        message += " (Hub clients send HF_TOKEN: set it to a lorareg token)"
    return message.replace(
        "`lorareg token create`", "`lorareg token create --name NAME --role reader`"
    )


class HubRoute(APIRoute):
    """A route whose domain errors are answered in the Hub's terms (see the table above)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def hub_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except LoraregError as exc:
                return hub_error_for(exc)

        return hub_handler

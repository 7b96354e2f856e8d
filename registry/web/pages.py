"""What every dashboard router shares: the route class that answers errors as HTML pages."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from registry.errors import LoraregError
from registry.web.templating import render


class PageRoute(APIRoute):
    """Dashboard routes answer errors with an HTML page, not the API's JSON body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except LoraregError as exc:
                return error_page(request, exc.http_status, exc.message)
            except RequestValidationError as exc:
                parts = [
                    f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
                    for e in exc.errors()[:3]
                ]
                return error_page(request, 422, "invalid request: " + "; ".join(parts))

        return route


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    # A link followed from another site arrives without the SameSite=Strict session cookie;
    # one same-origin reload brings it along (the reload is same-site, so it cannot loop).
    retry = (
        status == 401
        and request.method == "GET"
        and request.headers.get("sec-fetch-site") == "cross-site"
    )
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return render(
        request,
        "error.html",
        {"status": status, "message": message, "retry_with_cookie": retry, "here": here},
        status=status,
    )

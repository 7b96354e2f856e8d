"""The Jinja environment, URL helpers and the one function that renders a page.

Autoescaping is on for every template, so anything user-written (descriptions, tags,
metric names) is text in the page, never markup.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse

from registry import __version__
from registry.web.csrf import FIELD, CsrfProtect, binding_of
from registry.web.format import FILTERS
from registry.web.session import SessionCodec

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
PREFIX = "/ui"
# "-" can never start a namespace, so nothing under /ui/-/ can be mistaken for an adapter.
STATIC_PREFIX = f"{PREFIX}/-/static"

# Scripts and styles come only from our static folder: an injected <script> could not run
# even if escaping failed somewhere. Charts are SVG markup with presentation attributes.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def adapter_path(namespace: str, name: str) -> str:
    return f"{PREFIX}/{quote(namespace)}/{quote(name)}"


def version_path(namespace: str, name: str, number: int) -> str:
    return f"{adapter_path(namespace, name)}/v{int(number)}"


def compare_path(namespace: str, name: str, a: object = None, b: object = None) -> str:
    query = urlencode({k: v for k, v in (("a", a), ("b", b)) if v not in (None, "")})
    return f"{adapter_path(namespace, name)}/compare" + (f"?{query}" if query else "")


def base_path(name: str) -> str:
    # Base names are Hugging Face repo ids: the slash between org and name stays a slash.
    return f"{PREFIX}/-/bases/{quote(name, safe='/')}"


def job_path(job_id: int) -> str:
    return f"{PREFIX}/-/jobs/{int(job_id)}"


def with_query(path: str, params: dict[str, Any]) -> str:
    """``path`` with the non-empty ``params`` as its query string."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


def _static_version() -> str:
    """Changes whenever a static file does, so browsers never run stale JS against new HTML."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


@dataclass
class WebAssets:
    templates: Jinja2Templates
    csrf: CsrfProtect
    sessions: SessionCodec


def build_assets(
    *, csrf_secret: bytes | None = None, session_secret: bytes | None = None
) -> WebAssets:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    version = _static_version()
    env.globals.update(
        prefix=PREFIX,
        adapter_url=adapter_path,
        version_url=version_path,
        compare_url=compare_path,
        base_url=base_path,
        job_url=job_path,
        with_query=with_query,
        static_url=lambda name: f"{STATIC_PREFIX}/{quote(name)}?v={version}",
        app_version=__version__,
        csrf_field_name=FIELD,
    )
    return WebAssets(
        templates=Jinja2Templates(env=env),
        csrf=CsrfProtect(secret=csrf_secret),
        sessions=SessionCodec(secret=session_secret),
    )


def render(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    """Render a page with the security headers; a form that asked for a CSRF token (via
    ``csrf_token()`` in the template) gets its cookie set on the same response.

    Every page also gets ``viewer`` (the principal, when the request has one), ``session``
    (a browser sign-in, or None) and ``auth_required`` for the header's account block."""
    assets: WebAssets = request.app.state.web
    state = request.state
    ctx = {
        "csrf_token": lambda: assets.csrf.token(request, binding=binding_of(request)),
        "viewer": getattr(state, "principal", None),
        "session": getattr(state, "session", None),
        "auth_required": bool(getattr(request.app.state, "auth_required", False)),
        **context,
    }
    response = assets.templates.TemplateResponse(
        request, template, ctx, status_code=status, headers=SECURITY_HEADERS
    )
    assets.csrf.set_cookie(request, response)
    return response

"""Offboarding from the dashboard: ``/ui/-/delete``.

``GET /ui/-/delete?ref=ns/name[:N]`` or ``?namespace=ns`` is the confirmation page: what
would go (versions, adapters, bytes, what is in production). Its form POSTs to the same
URL with a CSRF token, the reason, and the target's name typed again; only that POST
changes anything, through ``erase.erase`` exactly as ``lorareg delete`` does. A refusal
(role, scope, CSRF, a mistyped name, production without "force") is an HTML page and
changes nothing. Both need the admin role of that namespace before anything else.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from registry.access import Principal
from registry.catalog import erase
from registry.catalog.erase_preview import ErasurePreview, preview_erasure
from registry.errors import InProduction, InvalidInput
from registry.http_deps import CurrentUser, RuntimeDep
from registry.web.csrf import require_csrf
from registry.web.pages import PageRoute
from registry.web.templating import PREFIX, render, with_query

router = APIRouter(include_in_schema=False, route_class=PageRoute)

DELETE = f"{PREFIX}/-/delete"


def delete_url(*, ref: str | None = None, namespace: str | None = None) -> str:
    return with_query(DELETE, {"ref": ref, "namespace": namespace})


def _target(ref: str, namespace: str) -> erase.Target:
    if bool(ref.strip()) == bool(namespace.strip()):
        raise InvalidInput("name one thing to delete: ?ref=ns/name[:N] or ?namespace=ns")
    if namespace.strip():
        return erase.namespace_target(namespace.strip())
    return erase.target_of(ref)


def _page(request: Request, p: ErasurePreview, *, status: int = 200, **extra: Any) -> HTMLResponse:
    ctx: dict[str, Any] = {"p": p, "reason": "", "error": None, "report": None, **extra}
    ctx["links"] = _wider(p)
    return render(request, "delete.html", ctx, status=status)


def _wider(p: ErasurePreview) -> list[tuple[str, str]]:
    """Links to erase more than this page does (the adapter, the namespace)."""
    ns = p.target.split("/", 1)[0]
    out = []
    if p.kind == "version":
        out.append(
            (
                f"every version of {p.target.split(':', 1)[0]}",
                delete_url(ref=p.target.split(":", 1)[0]),
            )
        )
    if p.kind != "namespace":
        out.append((f"the whole namespace {ns}", delete_url(namespace=ns)))
    return out


@router.get(DELETE)
def confirm(
    request: Request, rt: RuntimeDep, user: CurrentUser, ref: str = "", namespace: str = ""
) -> HTMLResponse:
    target = _target(ref, namespace)
    return _page(request, preview_erasure(rt.db, target, principal=user))


@router.post(DELETE, dependencies=[Depends(require_csrf)])
def delete(
    request: Request,
    rt: RuntimeDep,
    user: CurrentUser,
    ref: Annotated[str, Form(max_length=200)] = "",
    namespace: Annotated[str, Form(max_length=64)] = "",
    confirm_name: Annotated[str, Form(alias="confirm", max_length=200)] = "",
    reason: Annotated[str, Form(max_length=erase.MAX_REASON)] = "",
    force: Annotated[str, Form(max_length=8)] = "",
) -> HTMLResponse:
    target = _target(ref, namespace)
    preview = preview_erasure(rt.db, target, principal=user)  # scope and role first
    if confirm_name.strip() != str(target):
        message = f"type {target} exactly to confirm; you typed {confirm_name.strip()!r}"
        return _page(request, preview, status=422, error=message, reason=reason)
    try:
        report = _erase(rt, user, target, reason=reason, force=force == "yes")
    except (InProduction, InvalidInput) as exc:
        return _page(request, preview, status=exc.http_status, error=exc.message, reason=reason)
    return _page(request, preview, report=report)


def _erase(
    rt: RuntimeDep, user: Principal, target: erase.Target, *, reason: str, force: bool
) -> erase.ErasureReport:
    from registry.services.regions import regional_stores

    return erase.erase(
        rt.db,
        rt.store,
        target,
        principal=user,
        reason=reason,
        force=force,
        regional=regional_stores(rt),
    )

"""Promote and roll back from the dashboard: ``/ui/-/promote``.

``GET /ui/-/promote?ref=ns/name:N&to=production`` is the confirmation page: what the
gates say (every unmet condition, or that all pass), whether a reason is needed, and which
production version would be archived. Its form POSTs to the same URL with a CSRF token,
and only that POST changes anything, through ``stages.promote`` with the compatibility
gate, exactly as ``lorareg promote`` does. A refusal (gates, role, CSRF) is an HTML page
and changes nothing. A rollback is a promotion of an archived version to production.

Both need the maintainer role before anything else: a reader who crafts the request gets
403 whatever it says.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from registry.access import Principal
from registry.catalog.refs import Ref, parse_ref
from registry.domain import VersionInfo
from registry.errors import GateFailed, InvalidReference
from registry.http_deps import CurrentUser, RuntimeDep
from registry.services import lifecycle as lifecycle_service
from registry.services.lifecycle import PromotionPreview, preview_promotion
from registry.web.csrf import require_csrf
from registry.web.pages import PageRoute
from registry.web.templating import PREFIX, render, version_path, with_query

router = APIRouter(include_in_schema=False, route_class=PageRoute)

PROMOTE = f"{PREFIX}/-/promote"


def promote_url(ref: str, to: str) -> str:
    return with_query(PROMOTE, {"ref": ref, "to": to})


def _pinned(ref: str) -> Ref:
    """The form always names one version by number: what the page showed is what moves."""
    parsed = parse_ref(ref.strip())
    if parsed.number is None:
        raise InvalidReference(f"name one version to promote, such as {parsed.repo}:3")
    return parsed


def _confirm_page(
    request: Request, p: PromotionPreview, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    ctx: dict[str, Any] = {"p": p, "reason": "", "error": None, "failed": [], **extra}
    return render(request, "promote.html", ctx, status=status)


@router.get(PROMOTE)
def confirm(
    request: Request, rt: RuntimeDep, user: CurrentUser, ref: str = "", to: str = "production"
) -> HTMLResponse:
    user.require("maintainer")
    return _confirm_page(
        request, preview_promotion(rt.db, _pinned(ref), to=to, principal=user, store=rt.store)
    )


@router.post(PROMOTE, dependencies=[Depends(require_csrf)])
def promote(
    request: Request,
    rt: RuntimeDep,
    user: CurrentUser,
    ref: Annotated[str, Form()] = "",
    to: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    user.require("maintainer")
    target = _pinned(ref)
    try:
        # The service, not stages: a variant of a running experiment is refused here too.
        done = lifecycle_service.promote(
            rt.db,
            target,
            to=to,
            principal=user,
            reason=reason.strip() or None,
            store=rt.store,
        )
    except GateFailed as exc:
        # The page again, with what the promotion itself found (the catalog may have
        # moved since the confirmation page was drawn) and the reason as typed.
        preview = preview_promotion(rt.db, target, to=to, principal=user, store=rt.store)
        failed = [str(u) for u in exc.details.get("unmet", [])]
        return _confirm_page(
            request, preview, status=409, error=exc.message, failed=failed, reason=reason
        )
    v = done.version
    page = version_path(v.namespace, v.name, v.number)
    return RedirectResponse(with_query(page, {"promoted": to}), status_code=303)


def version_actions(v: VersionInfo, viewer: Principal) -> list[tuple[str, str]]:
    """The version page's buttons, (label, confirmation URL): none for a reader. Each leads
    to the confirmation page, never straight to a change."""
    if not viewer.can("maintainer"):
        return []
    out: list[tuple[str, str]] = []
    if v.stage != "production" and v.base_model is not None:
        label = "Roll back to this version" if v.stage == "archived" else "Promote to production"
        out.append((label, promote_url(v.ref, "production")))
    if v.stage is None:
        out.append(("Promote to staging", promote_url(v.ref, "staging")))
    if viewer.can("admin"):
        out.append(("Delete…", with_query(f"{PREFIX}/-/delete", {"ref": v.ref})))
    return out

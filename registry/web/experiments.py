"""The experiment page: ``/ui/-/experiment?repo=ns/name&name=E``, and its conclude form.

The page shows the split as a bar, per metric a variant table with 95 % intervals drawn
as bars (SVG attributes, no inline styles: the CSP forbids them), the SRM status and the
ramp history. Maintainers get a conclude form per variant with the gate preview that
``service.preview_conclusion`` computes; only its POST (with a CSRF token) changes
anything, through ``service.conclude``: the same policy, gates and role as ``promote``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from registry.catalog.refs import Ref, Repo, parse_repo
from registry.errors import GateFailed
from registry.experiments import service
from registry.experiments.domain import ExperimentInfo, ExperimentReport, MetricReport
from registry.experiments.report import report
from registry.http_deps import CurrentUser, Reader, RuntimeDep
from registry.runtime import Runtime
from registry.web.csrf import require_csrf
from registry.web.pages import PageRoute
from registry.web.templating import PREFIX, render, with_query

router = APIRouter(include_in_schema=False, route_class=PageRoute)

PAGE = f"{PREFIX}/-/experiment"
COLOURS = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d")


def experiment_url(repo: str, name: str) -> str:
    return with_query(PAGE, {"repo": repo, "name": name})


@dataclass(frozen=True)
class Bar:
    """One interval drawn on a 0..100 scale: the span and the point estimate."""

    x: float
    width: float
    mark: float


def _bars(mr: MetricReport) -> dict[str, Bar]:
    spans = [(v.variant, v.low, v.high, v.value) for v in mr.variants if v.low is not None]
    finite = [(n, lo, hi, val) for n, lo, hi, val in spans if math.isfinite(lo or 0)]
    if not finite:
        return {}
    lo_all = min(lo for _, lo, _, _ in finite if lo is not None)
    hi_all = max(hi for _, _, hi, _ in finite if hi is not None)
    if mr.kind == "rate":
        lo_all = max(0.0, lo_all)
    pad = (hi_all - lo_all) * 0.05 or 1.0
    lo_all, hi_all = lo_all - pad, hi_all + pad

    def at(x: float) -> float:
        return round(100 * (x - lo_all) / (hi_all - lo_all), 2)

    return {
        n: Bar(at(lo), max(at(hi) - at(lo), 0.5), at(val if val is not None else lo))
        for n, lo, hi, val in finite
        if lo is not None and hi is not None
    }


def _segments(info: ExperimentInfo) -> list[dict[str, Any]]:
    out, x = [], 0.0
    for i, v in enumerate(info.variants):
        out.append(
            {"name": v.name, "x": x, "width": v.percent, "colour": COLOURS[i % len(COLOURS)]}
        )
        x += v.percent
    return out


def _page(
    request: Request, rt: Runtime, repo: Repo, name: str, *, status: int = 200, **extra: Any
) -> HTMLResponse:
    db = rt.db
    r: ExperimentReport = report(db, repo, name)
    viewer = getattr(request.state, "principal", None)
    previews = []
    if r.experiment.state == "running" and viewer is not None and viewer.can("maintainer"):
        previews = [
            service.preview_conclusion(db, repo, name, winner=v.name, store=rt.store)
            for v in r.experiment.variants
        ]
    ctx: dict[str, Any] = {
        "repo": repo,
        "r": r,
        "e": r.experiment,
        "segments": _segments(r.experiment),
        "bars": {mr.metric: _bars(mr) for mr in r.metrics},
        "ramps": [h for h in r.history if h.kind in ("experiment.created", "experiment.ramped")],
        "previews": previews,
        "error": None,
        "reason": "",
        **extra,
    }
    return render(request, "experiment.html", ctx, status=status)


@router.get(PAGE, dependencies=[Reader])
def experiment_page(
    request: Request, rt: RuntimeDep, user: CurrentUser, repo: str = "", name: str = ""
) -> HTMLResponse:
    target = parse_repo(repo.strip())
    user.require_namespace(target.namespace)
    return _page(request, rt, target, name.strip())


@router.post(f"{PAGE}/conclude", dependencies=[Depends(require_csrf)])
def conclude(
    request: Request,
    rt: RuntimeDep,
    user: CurrentUser,
    repo: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    winner: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    target = parse_repo(repo.strip())
    user.require_namespace(target.namespace)
    try:
        service.conclude(
            rt.db,
            target,
            name,
            winner=winner,
            reason=reason.strip() or None,
            principal=user,
            store=rt.store,
        )
    except GateFailed as exc:
        return _page(request, rt, target, name, status=409, error=exc.message, reason=reason)
    return RedirectResponse(experiment_url(str(target), name), status_code=303)


def running_experiments(rt: Runtime, repo: Repo) -> list[ExperimentInfo]:
    """For the adapter page's list."""
    return service.list_experiments(rt.db, repo, running_only=True)


def version_experiments(rt: Runtime, repo: Repo, number: int) -> list[ExperimentInfo]:
    """For the version page: experiments with a variant on it."""
    return service.experiments_using(rt.db, Ref(repo, number=number))

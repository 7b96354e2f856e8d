"""The dashboard: server-rendered pages under ``/ui/``; ``/`` redirects there.

URL map (every page at most four path segments, so none can take the shape of the Hugging
Face route ``/{ns}/{name}/resolve/{rev}/{path}``, and all of it under ``/ui`` so no
namespace can shadow ``/api``, ``/docs``, ``/healthz``, ``/readyz`` or ``/metrics``):

    /                              -> 307 to /ui/
    /ui/                           adapters by namespace: search, filters, keyset pages
    /ui/{ns}/{name}                versions table and eval charts
    /ui/{ns}/{name}/v{n}           one version: config, files, lineage, history
    /ui/{ns}/{name}/compare?a=&b=  two versions side by side

    "-" never starts a name, so /ui/-/ holds the dashboard's own pages:

    /ui/-/login  /ui/-/logout      sign in with an API token (POST), sign out (POST)
    /ui/-/promote?ref=&to=         confirm a promotion or rollback (GET), do it (POST)
    /ui/-/jobs                     merge jobs, live progress; ?state= filters
    /ui/-/jobs/{id}                one job
    /ui/-/bases                    registered base models
    /ui/-/bases/{name}             one base model (the name may hold a slash)
    /ui/-/delete?ref=|namespace=   confirm an erasure, typing its name (GET), do it (POST)
    /ui/-/namespaces?prefix=       the namespace picker's suggestions (JSON)
    /ui/-/regions                  regions: state, replication backlog, lag, failures
    /ui/-/static/...               CSS and JS

Handlers only parse, call the services (``registry.services``) and render; shaping lives
in ``views.py``, ``check_views.py`` and ``chart.py``; no page touches the database itself
(an import contract in pyproject.toml checks it). Every page takes the API's ``Reader`` check,
so the dashboard shows exactly what the caller may read: an open loopback server shows
everything; a server that requires tokens shows a sign-in link until the browser has a
session (``session.py``), then what that token may read.
"""

from __future__ import annotations

import hashlib
import hmac
from itertools import groupby
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from registry.access import Principal
from registry.catalog.browse import FILTER_STAGES, AdapterFilter
from registry.catalog.refs import Ref, Repo, check_name, parse_ref, parse_repo
from registry.compat.version_checks import latest_checks
from registry.domain import VersionInfo
from registry.errors import AdapterNotFound, InvalidInput
from registry.http_deps import CurrentUser, Reader, RuntimeDep
from registry.runtime import Runtime
from registry.services import catalog as catalog_service
from registry.services import compat as compat_service
from registry.web import (
    account,
    actions,
    base_pages,
    erase,
    experiments,
    job_pages,
    library,
    pickers,
    regions,
)
from registry.web.actions import version_actions
from registry.web.chart import eval_charts
from registry.web.check_views import check_views
from registry.web.pages import PageRoute
from registry.web.session import SessionAuth
from registry.web.templating import (
    PREFIX,
    STATIC_DIR,
    STATIC_PREFIX,
    build_assets,
    render,
    with_query,
)
from registry.web.views import (
    config_rows,
    eval_deltas,
    key_metrics,
    latest_scores,
    summary_rows,
    target_diff,
)

PageSize = Annotated[int, Query(ge=1, le=200)]


router = APIRouter(include_in_schema=False, route_class=PageRoute)
# The dashboard's own pages first: "/ui/-/jobs" has the shape of "/ui/{namespace}/{name}".
for _pages in (
    account.router,
    actions.router,
    job_pages.router,
    base_pages.router,
    library.router,
    erase.router,
    pickers.router,
    experiments.router,
    regions.router,
):
    router.include_router(_pages)


def install_dashboard(app: FastAPI) -> None:
    """Add the dashboard's routes and static files to ``app`` (called by the app factory)."""
    secret = app.state.runtime.settings.secret_key
    key = secret.get_secret_value().encode() if secret is not None else None
    app.state.web = build_assets(
        csrf_secret=_subkey(key, b"csrf"), session_secret=_subkey(key, b"session")
    )
    app.state.csrf = app.state.web.csrf
    app.add_middleware(SessionAuth, prefix=PREFIX)
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="web-static")


def _subkey(key: bytes | None, purpose: bytes) -> bytes | None:
    # One setting, separate keys: a CSRF token can never pass for a session MAC.
    return hmac.new(key, b"lorareg-" + purpose, hashlib.sha256).digest() if key else None


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/")


def _adapter_filter(
    q: str, namespace: str, base: str, tag: str, stage: str, visible: frozenset[str] | None
) -> AdapterFilter:
    search = q.strip().lower()
    ns = namespace.strip()
    if "/" in search:  # a pasted "acme/brand" narrows the namespace too
        ns_part, _, search = search.partition("/")
        ns = ns or ns_part
    if ns:
        check_name(ns, what="namespace")
    stage = stage.strip()
    if stage and stage not in FILTER_STAGES:
        raise InvalidInput(f"the stage filter takes {', '.join(FILTER_STAGES)}, not {stage!r}")
    key, eq, value = tag.strip().partition("=")
    return AdapterFilter(
        namespace=ns or None,
        search=search or None,
        base_model=base.strip() or None,
        tag_key=key.strip() or None,
        tag_value=value.strip() if eq else None,
        visible=visible,
        stage=stage or None,
    )


@router.get(f"{PREFIX}/", dependencies=[Reader])
def index(
    request: Request,
    rt: RuntimeDep,
    user: CurrentUser,
    q: str = "",
    namespace: str = "",
    base: str = "",
    tag: str = "",
    stage: str = "",
    after: str = "",
    before: str = "",
    limit: PageSize = 50,
) -> HTMLResponse:
    flt = _adapter_filter(q, namespace, base, tag, stage, user.namespaces)
    page = catalog_service.adapter_page(
        rt.db, flt, after=after or None, before=before or None, limit=limit
    )
    namespaces = catalog_service.namespace_names(
        rt.db, prefix=flt.namespace or "", visible=user.namespaces
    )
    base_names = compat_service.base_names(rt.db)
    form = {"q": q, "namespace": namespace, "base": base, "tag": tag, "stage": stage}
    keep = {**form, "limit": limit if limit != 50 else None}
    path = f"{PREFIX}/"
    items = page.items
    return render(
        request,
        "index.html",
        {
            "form": form,
            "filtered": any(v.strip() for v in form.values()),
            "groups": [(ns, list(rows)) for ns, rows in groupby(items, key=lambda a: a.namespace)],
            "namespaces": namespaces,  # the picker's first suggestions, bounded
            "bases": base_names,
            "filter_stages": FILTER_STAGES,
            "prev_url": with_query(path, {**keep, "before": items[0].key})
            if page.has_prev and items
            else None,
            "next_url": with_query(path, {**keep, "after": items[-1].key})
            if page.has_next and items
            else None,
            "first_url": with_query(path, keep) if page.has_prev else None,
        },
    )


def _repo(namespace: str, name: str) -> Repo:
    return parse_repo(f"{namespace}/{name}")


@router.get(PREFIX + "/{namespace}/{name}", dependencies=[Reader])
def adapter(
    request: Request,
    rt: RuntimeDep,
    namespace: str,
    name: str,
    older: int | None = None,
    newer: int | None = None,
    limit: PageSize = 50,
) -> HTMLResponse:
    repo = _repo(namespace, name)
    page = catalog_service.version_page(
        rt.db, repo, older_than=older, newer_than=newer, limit=limit
    )
    latest = (
        page.items[0]
        if page.items and not page.has_prev
        else catalog_service.get_version(rt.db, parse_ref(str(repo)))
    )
    versions = page.items
    checks = latest_checks(rt.db, Ref(repo, number=latest.number))
    path = f"{PREFIX}/{repo}"
    keep = {"limit": limit if limit != 50 else None}
    return render(
        request,
        "adapter.html",
        {
            "repo": repo,
            "latest": latest,
            "checks": check_views(checks, trained_on=latest.base_model),
            "versions": versions,
            "metrics": key_metrics(versions),
            "scores": {v.number: latest_scores(v) for v in versions},
            "charts": eval_charts(versions, key_metrics(versions, limit=6)),
            "experiments": experiments.running_experiments(rt, repo),
            "newer_url": with_query(path, {**keep, "newer": versions[0].number})
            if page.has_prev and versions
            else None,
            "older_url": with_query(path, {**keep, "older": versions[-1].number})
            if page.has_next and versions
            else None,
        },
    )


@router.get(PREFIX + "/{namespace}/{name}/v{number:int}", dependencies=[Reader])
def version(
    request: Request,
    rt: RuntimeDep,
    namespace: str,
    name: str,
    number: int,
    user: CurrentUser,
    events_before: int | None = None,
    promoted: str = "",
) -> HTMLResponse:
    repo = _repo(namespace, name)
    detail = catalog_service.version_detail(
        rt.db, repo, str(number), visible=user.namespaces, events_before=events_before
    )
    info, events = detail.version, detail.events
    presence = regions.version_regions(rt, f"{repo}:{info.number}", user)
    checks = latest_checks(rt.db, Ref(repo, number=info.number))
    path = f"{PREFIX}/{repo}/v{info.number}"
    return render(
        request,
        "version.html",
        {
            "repo": repo,
            "v": info,
            "checks": check_views(checks, trained_on=info.base_model),
            "lineage": detail.lineage,
            "regions": presence,
            "experiments": experiments.version_experiments(rt, repo, info.number),
            "actions": version_actions(info, user),
            # Shown only while it is true: the redirect after a promotion lands here.
            "promoted": promoted if promoted and promoted == info.stage else None,
            "config_json": _config_items(info),
            "scores": latest_scores(info),
            "events": events.items,
            "older_events_url": with_query(path, {"events_before": events.items[-1].id})
            if events.has_next and events.items
            else None,
            "newest_events_url": path if events.has_prev else None,
        },
    )


def _config_items(v: VersionInfo) -> list[tuple[str, Any]]:
    """``adapter_config.json`` keys in file order, empty values left out of the headline."""
    return [(k, val) for k, val in v.config.items() if val not in (None, "", [], {})]


def _pick(rt: Runtime, repo: Repo, value: str, user: Principal) -> VersionInfo:
    """A compare side: a revision of this adapter (``3``, ``v3``, a label), or a full
    reference to another adapter (``other/name:2``) that the caller may read."""
    if "/" in value:
        ref = parse_ref(value)
        if not user.sees(ref.repo.namespace):
            raise AdapterNotFound(f"adapter {ref.repo} does not exist")
        return catalog_service.get_version(rt.db, ref)
    return catalog_service.version_at(rt.db, repo, value)


@router.get(PREFIX + "/{namespace}/{name}/compare", dependencies=[Reader])
def compare(
    request: Request,
    rt: RuntimeDep,
    user: CurrentUser,
    namespace: str,
    name: str,
    a: str = "",
    b: str = "",
) -> HTMLResponse:
    repo = _repo(namespace, name)
    a, b = a.strip(), b.strip()
    right = _pick(rt, repo, b or "latest", user)
    left: VersionInfo | None = None
    if a:
        left = _pick(rt, repo, a, user)
    elif right.repo == str(repo) and (right.parent or right.number - 1) >= 1:
        # Default: the newer version against the one it was trained from.
        left = _pick(rt, repo, str(right.parent or right.number - 1), user)
    ctx: dict[str, Any] = {"repo": repo, "a": left, "b": right, "form": {"a": a, "b": b}}
    if left is not None:
        ctx.update(
            summary=summary_rows(left, right),
            config=config_rows(left, right),
            targets=target_diff(left, right),
            deltas=eval_deltas(left, right),
        )
    return render(request, "compare.html", ctx)

"""The Hugging Face Hub-compatible subset: what huggingface_hub, PEFT and vLLM call.

Point a client at lorareg with ``HF_ENDPOINT=http://lorareg:8080`` and these work:

- ``GET /api/models/{ns}/{name}[/revision/{rev}]`` (``model_info``, ``repo_info``);
- ``GET /api/models/{ns}/{name}/tree/{rev}[/{path}]`` (``list_repo_tree``,
  ``list_repo_files``, ``snapshot_download``), paginated with a ``Link`` header;
- ``POST /api/models/{ns}/{name}/paths-info/{rev}`` (``get_paths_info``);
- ``HEAD``/``GET /{ns}/{name}/resolve/{rev}/{path}`` (``hf_hub_download``,
  ``file_exists``): ``X-Repo-Commit``, sha256 ``ETag``, ``X-Linked-Size``, ``Range``; with
  S3 storage a 302 to a presigned URL that carries the same headers (huggingface_hub
  reads the metadata from the redirect itself and does not follow it to another host).

A revision is ``main`` (the newest version), a stage, an alias, ``N``/``vN``, or a
40-hex content id; the commit id a client sees is the version's content id.

Export mode: the same routes under ``/_export`` (``HF_ENDPOINT=http://lorareg:8080/_export``)
serve adapter_config.json with ``base_model_name_or_path`` set to the version's canonical
base model name (see ``registry.catalog.export``). ``_`` cannot start a namespace, so the
prefix never shadows a repository.

Bearer tokens in ``Authorization`` work as on the Hub (``HF_TOKEN`` or ``token=``):
each route needs the reader role, as the v1 API does. Errors carry the Hub's
``X-Error-Code`` (``registry.api.hf_errors``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse

from registry.api import hf_documents as docs
from registry.api.deps import Reader, accept_foreign_tokens
from registry.api.files import blob_response, parse_range
from registry.api.hf_errors import HubRoute, hub_error
from registry.api.regions import principal_of, read_router, request_region, streaming_store
from registry.api.routers.resolve import FastRuntime
from registry.api.version_cache import app_singleton, cached_version
from registry.catalog.export import ExportCache, export_version, resolve_export
from registry.catalog.refs import parse_repo
from registry.catalog.resolve import resolve
from registry.domain import FileEntry, VersionInfo
from registry.errors import RangeNotSatisfiable
from registry.formats.adapter import check_relative_path
from registry.runtime import Runtime

EXPORT_PREFIX = "/_export"
PAGE_SIZE = 1000
EXPAND_PAGE_SIZE = 50  # the Hub's own limits


async def hub_view(
    request: Request, rt: Runtime, namespace: str, name: str, revision: str, *, export: bool
) -> docs.HubView:
    """Resolve ``revision`` (cached) and present the version in plain or export mode."""
    repo_text = f"{namespace}/{name}"

    def plain() -> VersionInfo:
        return resolve(rt.db, parse_repo(repo_text), ref=revision)

    def exported() -> VersionInfo:
        return resolve_export(rt.db, parse_repo(repo_text), revision)

    key = ("hf", export, namespace, name, revision)
    version = await cached_version(request, key, exported if export else plain)
    if not export:
        return docs.HubView(version=version, commit=version.content_id, files=version.files)

    def build() -> docs.HubView:
        def read(f: FileEntry) -> bytes:
            return rt.store.read_range(f.sha256, 0, f.size)

        e = export_version(version, read, app_singleton(request.app, "export_cache", ExportCache))
        data = e.config.data if e.config is not None else None
        return docs.HubView(version=version, commit=e.commit, files=e.files, config_bytes=data)

    return await run_in_threadpool(build)


@dataclass(frozen=True)
class TreeQuery:
    """One ``tree`` request: the folder and the options the next page must repeat."""

    repo: str
    folder: str
    recursive: bool
    expand: bool
    limit: int | None


def _tree_page(
    request: Request,
    view: docs.HubView,
    entries: list[dict[str, Any]],
    q: TreeQuery,
    cursor: str | None,
) -> JSONResponse:
    if cursor and not cursor.isdigit():
        return hub_error(400, "BadRequest", f"invalid cursor {cursor!r}")
    start = int(cursor or 0)
    size = min(q.limit or PAGE_SIZE, EXPAND_PAGE_SIZE if q.expand else PAGE_SIZE)
    headers: dict[str, str] = {}
    if start + size < len(entries):
        # Later pages are pinned to the commit, so a moving "main" cannot mix two versions.
        path = request.url.path
        root = path[: path.index("/api/models/")]  # keeps /_export and any root path
        tail = f"/{quote(q.folder)}" if q.folder else ""
        query: dict[str, object] = {
            "recursive": q.recursive, "expand": q.expand, "cursor": start + size,
        }  # fmt: skip
        if q.limit:
            query["limit"] = q.limit
        nxt = request.url.replace(
            path=f"{root}/api/models/{q.repo}/tree/{view.commit}{tail}",
            query=urlencode({k: str(v).lower() for k, v in query.items()}),
        )
        headers["Link"] = f'<{nxt}>; rel="next"'
    return JSONResponse(entries[start : start + size], headers=headers)


async def _resolve_file(
    request: Request, rt: Runtime, view: docs.HubView, path: str, *, head: bool
) -> Response:
    entry = view.file(path)
    if entry is None:
        return hub_error(
            404,
            "EntryNotFound",
            f"{view.version.ref} has no file {path!r}",
            headers={"X-Repo-Commit": view.commit},
        )
    headers = docs.file_headers(view.commit, entry)
    try:
        rng = parse_range(request.headers.get("range"), entry.size)
    except RangeNotSatisfiable as exc:
        return hub_error(
            416, "RangeNotSatisfiable", exc.message,
            headers={**headers, "Content-Range": f"bytes */{entry.size}"},
        )  # fmt: skip
    data = view.served_bytes(path)
    if data is not None:
        return _bytes_response(data, rng, headers, head=head)
    # The reader's region (?region=, its token's, the server's): a 302 to its copy there
    # when present, else to the next region's (or the primary's), never an error.
    reader = request_region(request, principal_of(request))
    router = read_router(request.app)
    store, region = rt.store, ""
    if reader != router.regions.primary.name:
        chosen = await run_in_threadpool(streaming_store, router, reader, entry.sha256)
        store, region = chosen.store, "" if chosen.is_primary else chosen.name
    url = request.app.state.presign_cache.get(rt, entry, store=store, region=region)
    if url is not None:
        return RedirectResponse(url, status_code=302, headers=headers)
    if head:
        return Response(headers={**headers, "Content-Length": str(entry.size)})
    return await run_in_threadpool(
        blob_response,
        request,
        store,
        sha256=entry.sha256,
        size=entry.size,
        filename=entry.path,
        headers=headers,
        presign_ttl_s=rt.settings.presign_ttl_s,
    )


def _bytes_response(
    data: bytes, rng: tuple[int, int] | None, headers: dict[str, str], *, head: bool
) -> Response:
    status, part = 200, data
    if rng is not None:
        start, end = rng
        status, part = 206, data[start : end + 1]
        headers = {**headers, "Content-Range": f"bytes {start}-{end}/{len(data)}"}
    headers = {**headers, "Content-Length": str(len(part))}
    return Response(b"" if head else part, status_code=status, headers=headers,
                    media_type="application/octet-stream")  # fmt: skip


def _routes(prefix: str, *, export: bool) -> APIRouter:
    r = APIRouter(
        prefix=prefix,
        route_class=HubRoute,
        tags=["huggingface"],
        dependencies=[Depends(accept_foreign_tokens), Reader],
    )
    mode = " (export: adapter_config.json names the canonical base model)" if export else ""

    @r.get("/api/models/{namespace}/{name}", summary=f"Model info at main{mode}")
    async def model_info(rt: FastRuntime, request: Request, namespace: str, name: str) -> Response:
        view = await hub_view(request, rt, namespace, name, "main", export=export)
        return JSONResponse(docs.model_info(view))

    @r.get("/api/models/{namespace}/{name}/revision/{revision}", summary=f"Model info{mode}")
    async def model_info_at(
        rt: FastRuntime, request: Request, namespace: str, name: str, revision: str
    ) -> Response:
        view = await hub_view(request, rt, namespace, name, revision, export=export)
        return JSONResponse(docs.model_info(view))

    @r.get("/api/models/{namespace}/{name}/tree/{revision}", summary=f"List files{mode}")
    @r.get("/api/models/{namespace}/{name}/tree/{revision}/{path:path}", summary=f"List{mode}")
    async def tree(
        rt: FastRuntime,
        request: Request,
        namespace: str,
        name: str,
        revision: str,
        path: str = "",
        recursive: bool = False,
        expand: bool = False,
        cursor: str | None = None,
        limit: Annotated[int | None, Query(ge=1, le=PAGE_SIZE)] = None,
    ) -> Response:
        folder = check_relative_path(path.strip("/")) if path.strip("/") else ""
        view = await hub_view(request, rt, namespace, name, revision, export=export)
        entries = docs.tree(view, folder, recursive=recursive, expand=expand)
        if entries is None:
            return hub_error(404, "EntryNotFound", f"{view.version.ref} has no folder {folder!r}",
                             headers={"X-Repo-Commit": view.commit})  # fmt: skip
        q = TreeQuery(f"{namespace}/{name}", folder, recursive, expand, limit)
        return _tree_page(request, view, entries, q, cursor)

    @r.post("/api/models/{namespace}/{name}/paths-info/{revision}", summary=f"Paths info{mode}")
    async def paths_info(
        rt: FastRuntime, request: Request, namespace: str, name: str, revision: str
    ) -> Response:
        form = await request.form()
        paths = [str(p) for p in form.getlist("paths")]
        expand = str(form.get("expand", "false")).lower() in ("1", "true")
        view = await hub_view(request, rt, namespace, name, revision, export=export)
        return JSONResponse(docs.paths_info(view, paths, expand=expand))

    file_path = "/{namespace}/{name}/resolve/{revision}/{path:path}"

    # GET and HEAD as two routes: one route with both methods repeats its OpenAPI id.
    @r.head(file_path, name="resolve_file_head", summary=f"File metadata{mode}")
    @r.get(file_path, summary=f"Download a file{mode}")
    async def resolve_file(
        rt: FastRuntime, request: Request, namespace: str, name: str, revision: str, path: str
    ) -> Response:
        check_relative_path(path)
        view = await hub_view(request, rt, namespace, name, revision, export=export)
        return await _resolve_file(request, rt, view, path, head=request.method == "HEAD")

    return r


router = APIRouter()
# Export routes first: they are the more specific paths.
router.include_router(_routes(EXPORT_PREFIX, export=True))
router.include_router(_routes("", export=False))

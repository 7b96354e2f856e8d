"""``/api/v1/adapters``: list, show, push (plan, upload, commit), tags, downloads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from registry.api.deps import CurrentUser, NumberPath, Reader, RuntimeDep, Writer
from registry.api.files import blob_response
from registry.api.regions import principal_of, read_router, request_region, streaming_store
from registry.api.schemas import CommitRequest, TagRequest, UploadRequest
from registry.api.uploads import receive_blob
from registry.catalog import metadata, queries, uploads
from registry.catalog.push import PushRequest, validate_metadata
from registry.catalog.refs import Ref, Repo, check_name, parse_repo
from registry.domain import AdapterSummary, EventInfo, PushResult, UploadPlan, VersionInfo
from registry.errors import NotFound
from registry.formats.adapter import check_relative_path
from registry.services.catalog import commit_push
from registry.storage.base import check_sha256

router = APIRouter(prefix="/api/v1", tags=["adapters"])


def _repo(namespace: str, name: str) -> Repo:
    return parse_repo(f"{namespace}/{name}")


@router.get("/adapters", response_model=list[AdapterSummary], dependencies=[Reader])
def list_adapters(
    rt: RuntimeDep,
    user: CurrentUser,
    namespace: str | None = None,
    after: Annotated[str | None, Query(description="page after this ns/name")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AdapterSummary]:
    if namespace is not None:
        check_name(namespace, what="namespace")
    with rt.db.read() as s:
        return queries.list_adapters(
            s, namespace, limit=limit, after=after, visible=user.namespaces
        )


@router.get(
    "/adapters/{namespace}/{name}/versions", response_model=list[VersionInfo], dependencies=[Reader]
)
def list_versions(rt: RuntimeDep, namespace: str, name: str) -> list[VersionInfo]:
    with rt.db.read() as s:
        return queries.list_versions(s, _repo(namespace, name))


@router.get(
    "/adapters/{namespace}/{name}/versions/{revision}",
    response_model=VersionInfo,
    dependencies=[Reader],
)
def show_version(
    rt: RuntimeDep, namespace: str, name: str, revision: str, base: str | None = None
) -> VersionInfo:
    with rt.db.read() as s:
        return queries.to_info(
            s, queries.version_row(s, _repo(namespace, name), revision, base=base)
        )


@router.get(
    "/adapters/{namespace}/{name}/history", response_model=list[EventInfo], dependencies=[Reader]
)
def adapter_history(rt: RuntimeDep, namespace: str, name: str) -> list[EventInfo]:
    with rt.db.read() as s:
        return queries.history(s, _repo(namespace, name))


@router.post(
    "/adapters/{namespace}/{name}/uploads", response_model=UploadPlan, dependencies=[Writer]
)
def plan_upload(
    rt: RuntimeDep, user: CurrentUser, namespace: str, name: str, body: UploadRequest
) -> UploadPlan:
    """Which blobs the caller must upload, and where to PUT each (a staging URL on S3).
    A blob the caller cannot read is always to be uploaded, stored or not."""
    _repo(namespace, name)
    for f in body.files:
        check_relative_path(f.path)
        check_sha256(f.sha256)
    return uploads.plan_upload(
        rt.db,
        rt.store,
        namespace=namespace,
        files=body.files,
        visible=user.namespaces,
        expires_s=rt.settings.presign_ttl_s,
    )


@router.put("/blobs/{sha256}", status_code=201, dependencies=[Writer])
async def upload_blob(
    rt: RuntimeDep, user: CurrentUser, sha256: str, request: Request
) -> dict[str, object]:
    """Upload through the server (stores without presigned URLs): hashed in full and
    verified, then usable by the namespaces the token may write. ``created`` is always
    true: whether the bytes were stored before is not revealed."""
    check_sha256(sha256)
    spool = request.app.state.spool
    size = await receive_blob(rt.store, spool, sha256, request)
    await run_in_threadpool(
        uploads.record_upload, rt.db, sha256=sha256, size=size, visible=user.namespaces
    )
    return {"sha256": sha256, "created": True}


@router.post(
    "/adapters/{namespace}/{name}/versions", response_model=PushResult, dependencies=[Writer]
)
def commit(
    rt: RuntimeDep,
    user: CurrentUser,
    namespace: str,
    name: str,
    body: CommitRequest,
    response: Response,
) -> PushResult:
    """Create a version from stored blobs; 201 when new, 200 when identical content exists."""
    req = PushRequest(
        repo=_repo(namespace, name),
        files=body.files,
        author=user.name,
        base_model=body.base_model,
        description=body.description,
        tags=body.tags,
        evals=body.evals,
    )
    validate_metadata(req)
    result = commit_push(rt, req, strict=body.strict, visible=user.namespaces, claim=True)
    response.status_code = 201 if result.created else 200
    return result


@router.patch(
    "/adapters/{namespace}/{name}/versions/{number}/tags",
    response_model=VersionInfo,
    dependencies=[Writer],
)
def set_tags(
    rt: RuntimeDep,
    user: CurrentUser,
    namespace: str,
    name: str,
    number: NumberPath,
    body: TagRequest,
) -> VersionInfo:
    return metadata.set_tags(
        rt.db, Ref(_repo(namespace, name), number=number), body.tags, actor=user.name
    )


@router.get(
    "/adapters/{namespace}/{name}/versions/{revision}/files/{path:path}", dependencies=[Reader]
)
async def download_file(
    rt: RuntimeDep, request: Request, namespace: str, name: str, revision: str, path: str
) -> Response:
    def lookup() -> VersionInfo:
        with rt.db.read() as s:
            return queries.to_info(s, queries.version_row(s, _repo(namespace, name), revision))

    version = await run_in_threadpool(lookup)
    entry = next((f for f in version.files if f.path == path), None)
    if entry is None:
        raise NotFound(f"{version.ref} has no file {path!r}")
    # ?region= (or the token's or server's region): its copy when present, else fallback.
    reader = request_region(request, principal_of(request))
    router = read_router(request.app)
    store = rt.store
    if reader != router.regions.primary.name:
        store = (await run_in_threadpool(streaming_store, router, reader, entry.sha256)).store
    return await run_in_threadpool(
        blob_response,
        request,
        store,
        sha256=entry.sha256,
        size=entry.size,
        filename=entry.path,
        headers={"X-Content-Id": version.content_id},
        presign_ttl_s=rt.settings.presign_ttl_s,
    )

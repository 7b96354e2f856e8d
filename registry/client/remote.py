"""The HTTP client: the same operations against a ``lorareg serve`` at ``LORAREG_URL``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from registry.catalog.refs import Ref, parse_ref, parse_repo
from registry.catalog.transfer import BlobCache, prepare_push, write_version
from registry.client.compat_ops import RemoteCompat
from registry.client.experiment_ops import RemoteExperiments
from registry.client.library_ops import RemoteLibrary
from registry.client.merge_ops import RemoteMerge
from registry.client.namespace_ops import RemoteNamespaces
from registry.client.region_ops import RemoteRegions
from registry.client.remote_lifecycle import RemoteLifecycle
from registry.domain import (
    AdapterSummary,
    EvalRecord,
    EventInfo,
    FileEntry,
    PullResult,
    PushResult,
    UploadPlan,
    VersionInfo,
)
from registry.errors import LoraregError, StorageUnavailable, Unavailable, error_for_code
from registry.storage.base import Progress

CHUNK = 1024 * 1024
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
READ_RETRIES = 2
RETRY_PAUSE_S = 0.05


class RemoteClient(
    RemoteLifecycle,
    RemoteCompat,
    RemoteMerge,
    RemoteNamespaces,
    RemoteLibrary,
    RemoteExperiments,
    RemoteRegions,
):
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        actor: str = "anonymous",
        cache_dir: Path | None = None,
        max_header_bytes: int = 16 * 1024 * 1024,
        transport: httpx.BaseTransport | None = None,
        region: str | None = None,
    ) -> None:
        headers = {"X-Lorareg-Actor": actor, "User-Agent": "lorareg-client"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base,
            headers=headers,
            timeout=httpx.Timeout(30.0, read=300.0),
            transport=transport,
        )
        # Presigned storage URLs must not receive our bearer token.
        self.storage_http = httpx.Client(timeout=httpx.Timeout(30.0, read=300.0))
        self.cache = BlobCache(cache_dir) if cache_dir else None
        self.actor = actor
        self.max_header_bytes = max_header_bytes
        # The reader's region (LORAREG_REGION): downloads come from its copies there.
        self.region = region

    # -- plumbing -----------------------------------------------------------------------

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        # A pooled keep-alive connection can be closed by the server (or a proxy) just as a
        # request goes out; httpx retries only failed connects. Reads are safe to send
        # again, so they get two more tries; writes are never repeated behind the caller.
        tries = READ_RETRIES + 1 if method in IDEMPOTENT else 1
        for attempt in range(tries):
            try:
                resp = self.http.request(method, path, **kw)
                break
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError) as exc:
                if attempt + 1 < tries:
                    time.sleep(RETRY_PAUSE_S * (attempt + 1))
                    continue
                raise Unavailable(f"cannot reach lorareg at {self.base}: {exc}") from None
            except httpx.TransportError as exc:
                raise Unavailable(f"cannot reach lorareg at {self.base}: {exc}") from None
        _raise_for_error(resp)
        return resp

    # -- operations ---------------------------------------------------------------------

    def push(
        self,
        folder: Path,
        repo: str,
        *,
        base: str | None = None,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        evals: list[EvalRecord] | None = None,
        progress: Progress | None = None,
        strict: bool = False,
    ) -> PushResult:
        # The push machinery (manifests, safetensors) loads only for a push.
        from registry.catalog.hash_index import HashIndex
        from registry.catalog.push import PushRequest, validate_metadata

        target = parse_repo(repo)
        index = HashIndex.in_cache(self.cache.root.parent) if self.cache else None
        local = prepare_push(folder, max_header_bytes=self.max_header_bytes, index=index)
        validate_metadata(
            PushRequest(
                repo=target,
                files=local.files,
                author=self.actor,
                base_model=base,
                description=description,
                tags=tags or {},
                evals=evals or [],
            )
        )
        files_json = [f.model_dump() for f in local.files]
        plan = UploadPlan.model_validate(
            self._call(
                "POST", f"/api/v1/adapters/{target}/uploads", json={"files": files_json}
            ).json()
        )
        sent = 0
        by_sha = {f.sha256: f for f in local.files}
        for f in local.files:
            if f.sha256 not in plan.missing and progress:
                progress(f.size)
        for sha in plan.missing:
            entry = by_sha[sha]
            self._upload(entry, local.paths[entry.path], plan.upload_urls.get(sha), progress)
            sent += entry.size
        body = {
            "files": files_json,
            "base_model": base,
            "description": description,
            "tags": tags or {},
            "evals": [e.model_dump(mode="json") for e in evals or []],
            **({"strict": True} if strict else {}),
        }
        result = PushResult.model_validate(
            self._call("POST", f"/api/v1/adapters/{target}/versions", json=body).json()
        )
        return result.model_copy(
            update={
                "bytes_uploaded": sent,
                "blobs_uploaded": len(plan.missing),
                "blobs_reused": len({f.sha256 for f in local.files}) - len(plan.missing),
            }
        )

    def _upload(
        self, entry: FileEntry, path: Path, url: str | None, progress: Progress | None
    ) -> None:
        def body() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    if progress:
                        progress(len(chunk))
                    yield chunk

        headers = {"Content-Length": str(entry.size), "Content-Type": "application/octet-stream"}
        if url is None:
            self._call("PUT", f"/api/v1/blobs/{entry.sha256}", content=body(), headers=headers)
            return
        try:
            resp = self.storage_http.put(url, content=body(), headers=headers)
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach storage for upload: {exc}") from None
        if resp.status_code >= 300:
            raise LoraregError(
                f"storage refused the upload of {entry.path} ({resp.status_code}):"
                f" {resp.text[:200]}"
            )

    def pull(
        self,
        ref: str,
        *,
        dest: Path | None = None,
        force: bool = False,
        progress: Progress | None = None,
        region: str | None = None,
    ) -> PullResult:
        version = self.show(ref)
        out = dest if dest is not None else Path(version.name)
        where = region or self.region

        def fetch(entry: FileEntry) -> Iterator[bytes]:
            path = (
                f"/api/v1/adapters/{version.namespace}/{version.name}/versions/"
                f"{version.number}/files/{quote(entry.path)}"
            )
            if not where:
                yield from self._download(path, entry.path, None)
                return
            sent = 0
            try:
                for chunk in self._download(path, entry.path, {"region": where}):
                    sent += len(chunk)
                    yield chunk
                return
            except Unavailable:  # StorageUnavailable included
                # The region's store failed (down, or lost its copy) where the server could
                # not see it: the presigned URL goes to the store directly. Go on from the
                # primary, through the server, at the same offset; the whole file is still
                # verified against its sha256.
                pass
            yield from self._download(path, entry.path, None, offset=sent)

        down, cached = write_version(
            version, out, fetch=fetch, cache=self.cache, force=force, progress=progress
        )
        return PullResult(
            version=version, path=str(out.resolve()), bytes_downloaded=down, bytes_from_cache=cached
        )

    def _download(
        self, path: str, name: str, params: dict[str, str] | None, *, offset: int = 0
    ) -> Iterator[bytes]:
        """A version file's bytes from ``offset`` on: from the server, or from the storage
        URL it redirects to."""
        try:
            with self.http.stream("GET", path, params=params, follow_redirects=False) as resp:
                if resp.status_code in (301, 302, 303, 307, 308):
                    resp.read()
                    yield from self._stream_storage(resp.headers["location"], offset=offset)
                    return
                if resp.status_code >= 400:
                    resp.read()
                    _raise_for_error(resp)
                yield from _skip(resp.iter_bytes(CHUNK), offset)
        except httpx.TransportError as exc:
            raise Unavailable(f"download of {name} broke off: {exc}") from None

    def _stream_storage(self, url: str, *, offset: int = 0) -> Iterator[bytes]:
        headers = {"Range": f"bytes={offset}-"} if offset else None
        with self.storage_http.stream("GET", url, headers=headers) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise StorageUnavailable(f"storage answered {resp.status_code} for a download")
            chunks = resp.iter_bytes(CHUNK)
            # 206: the store honoured the range; 200: it sent the whole file.
            yield from chunks if resp.status_code == 206 else _skip(chunks, offset)

    def show(self, ref: str, *, base: str | None = None) -> VersionInfo:
        r = parse_ref(ref)
        params = {"base": base} if base else None
        resp = self._call(
            "GET", f"/api/v1/adapters/{r.repo}/versions/{_revision(r)}", params=params
        )
        return VersionInfo.model_validate(resp.json())

    def versions(self, repo: str) -> list[VersionInfo]:
        resp = self._call("GET", f"/api/v1/adapters/{parse_repo(repo)}/versions")
        return [VersionInfo.model_validate(v) for v in resp.json()]

    def list_adapters(self, namespace: str | None = None) -> list[AdapterSummary]:
        out: list[AdapterSummary] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if namespace:
                params["namespace"] = namespace
            if after:
                params["after"] = after
            page = [
                AdapterSummary.model_validate(a)
                for a in self._call("GET", "/api/v1/adapters", params=params).json()
            ]
            out.extend(page)
            if len(page) < 1000:
                return out
            after = f"{page[-1].namespace}/{page[-1].name}"

    def history(self, repo: str) -> list[EventInfo]:
        resp = self._call("GET", f"/api/v1/adapters/{parse_repo(repo)}/history")
        return [EventInfo.model_validate(e) for e in resp.json()]

    def tag(self, ref: str, tags: dict[str, str]) -> VersionInfo:
        r = parse_ref(ref)
        number = r.number if r.number is not None else self.show(ref).number
        resp = self._call(
            "PATCH", f"/api/v1/adapters/{r.repo}/versions/{number}/tags", json={"tags": tags}
        )
        return VersionInfo.model_validate(resp.json())

    def resolve(
        self, repo: str, *, ref: str = "latest", base: str | None = None, region: str | None = None
    ) -> dict[str, Any]:
        where = region or self.region
        params = {"ref": ref, **({"base": base} if base else {})}
        if where:
            params["region"] = where
        resp = self._call("GET", f"/api/v1/resolve/{parse_repo(repo)}", params=params)
        return dict(resp.json())

    def close(self) -> None:
        self.http.close()
        self.storage_http.close()


def _revision(ref: Ref) -> str:
    if ref.number is not None:
        return str(ref.number)
    return ref.label or "latest"


def _raise_for_error(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        err = resp.json()["error"]
        code, message = str(err["code"]), str(err["message"])
    except Exception:
        raise LoraregError(
            f"server answered {resp.status_code}: {resp.text[:200] or resp.reason_phrase}"
        ) from None
    raise error_for_code(code)(message)


def _skip(chunks: Iterator[bytes], count: int) -> Iterator[bytes]:
    """``chunks`` without their first ``count`` bytes."""
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:] if count else chunk
        count = 0

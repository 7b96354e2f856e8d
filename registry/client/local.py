"""The in-process client: talks to the configured catalog and storage directly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from registry.catalog import queries
from registry.catalog.refs import parse_ref, parse_repo
from registry.client.compat_ops import LocalCompat
from registry.client.experiment_ops import LocalExperiments
from registry.client.library_ops import LocalLibrary
from registry.client.lifecycle_ops import LocalLifecycle
from registry.client.merge_ops import LocalMerge
from registry.client.namespace_ops import LocalNamespaces
from registry.client.region_ops import LocalRegions
from registry.domain import (
    AdapterSummary,
    EvalRecord,
    EventInfo,
    FileEntry,
    PullResult,
    PushResult,
    VersionInfo,
)
from registry.runtime import Runtime
from registry.storage.base import BlobStore, Progress, blob_key

PAGE = 1000  # adapters per read, as the API's largest page
if TYPE_CHECKING:
    from registry.catalog.transfer import BlobCache

# The push and pull machinery (manifests, safetensors, checks) is imported by the methods
# that use it: a `lorareg list` must not pay for it at start-up.


class LocalClient(
    LocalLifecycle,
    LocalCompat,
    LocalMerge,
    LocalNamespaces,
    LocalLibrary,
    LocalExperiments,
    LocalRegions,
):
    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self._cache: BlobCache | None = None
        self._router: Any = None

    @property
    def router(self) -> Any:
        """The regions' read router (``registry.regions.router.ReadRouter``), on first use."""
        if self._router is None:
            from registry.regions import open_regions
            from registry.regions.router import ReadRouter

            self._router = ReadRouter(open_regions(self.rt.settings, self.rt.store), self.rt.db)
        return self._router

    def reader_store(self, sha256: str, region: str | None) -> Iterator[bytes]:
        """The blob's bytes from the reader's region (``region``, else LORAREG_REGION)
        when its copy is there and answers, else from the next region or the primary; a
        regional store failing mid-download is continued elsewhere (``ReadRouter.read``)."""
        if not (region or self.rt.settings.region) or not self.rt.settings.regions:
            if region and region != self.rt.settings.primary_region:
                self.router.regions.get(region)  # UnknownRegion listing the regions
            return self.rt.store.iter_bytes(sha256)
        return self.router.read(self.router.reader_region(region), sha256)  # type: ignore[no-any-return]

    @property
    def cache(self) -> BlobCache:
        """Verified blobs of earlier pulls."""
        if self._cache is None:
            from registry.catalog.transfer import BlobCache

            self._cache = BlobCache(self.rt.settings.effective_cache_dir)
        return self._cache

    @cache.setter
    def cache(self, cache: BlobCache) -> None:
        """Pull through another cache folder (a fresh node, in tests)."""
        self._cache = cache

    @property
    def actor(self) -> str:
        return self.rt.settings.effective_author

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
        from dataclasses import replace

        from registry.catalog.hash_index import HashIndex
        from registry.catalog.push import PushRequest, validate_metadata
        from registry.catalog.transfer import Hashed, KnownBlobs, prepare_push
        from registry.catalog.uploads import readable_blobs, record_upload
        from registry.services.catalog import commit_push

        target = parse_repo(repo)
        limit = self.rt.settings.max_header_bytes
        index = HashIndex.in_cache(self.rt.settings.effective_cache_dir)
        local = prepare_push(folder, max_header_bytes=limit, index=index)
        req = PushRequest(
            repo=target,
            files=local.files,
            author=self.actor,
            base_model=base,
            description=description,
            tags=tags or {},
            evals=evals or [],
        )
        validate_metadata(req)
        if not strict:
            # An unchanged folder: the catalog answers, as the commit would. Only while every
            # blob is still stored (a stat each locally, a HEAD on S3): a blob that fsck
            # --repair deleted, or that was lost, must come back with this push.
            same = self._identical(req, local.base_model)
            if same is not None and all(self.rt.store.exists(f.sha256) for f in local.files):
                return PushResult(version=same, created=False, blobs_reused=len(local.files))
        sent = uploaded = reused = 0
        with self.rt.db.read() as s:
            registered = readable_blobs(s, {f.sha256 for f in local.files}, None)
        recorded: set[str] = set()
        stored: dict[str, Hashed] = {}
        sent_now: set[str] = set()
        for f in local.files:
            if f.sha256 not in registered and f.sha256 not in recorded:
                recorded.add(f.sha256)
                # First: the row restarts gc's grace period for an orphan this push reuses
                # (the object itself is never touched); the bytes are verified below or
                # were verified when stored.
                record_upload(self.rt.db, sha256=f.sha256, size=f.size, visible=None)
            # put_file looks the blob up first (one request, not an exists() and a second
            # look-up inside put_file) and stores nothing unless the bytes it sends hash to
            # f.sha256.
            if f.sha256 in sent_now or not self.rt.store.put_file(
                f.sha256, local.paths[f.path], progress=progress
            ):
                reused += 1
                if progress:
                    progress(f.size)
            else:
                sent += f.size
                uploaded += 1
                sent_now.add(f.sha256)
                if f.sha256 in local.read:
                    stored[f.sha256] = local.read[f.sha256]
        # The blobs were written by this process: nothing to claim from anyone. Those it
        # uploaded are validated from the bytes it hashed (the same bytes, verified by the
        # upload), not read back from storage; reused ones are read back as before.
        rt = self.rt
        if stored:
            rt = replace(rt, store=cast(BlobStore, KnownBlobs(rt.store, stored)))
        result = commit_push(rt, req, strict=strict, visible=None, claim=False)
        return result.model_copy(
            update={"bytes_uploaded": sent, "blobs_uploaded": uploaded, "blobs_reused": reused}
        )

    def _identical(self, req: Any, config_base: str | None) -> VersionInfo | None:
        """The existing version a push of ``req`` would answer with ``created=False``."""
        from registry.catalog.push import identical_version
        from registry.catalog.refs import check_base_name
        from registry.errors import InvalidName

        base = req.base_model or config_base
        if base is not None and req.base_model is None:
            try:
                check_base_name(base)
            except InvalidName:
                return None  # the commit refuses it, as before
        with self.rt.db.read() as s:
            row = identical_version(s, req.repo, req.files, base)
            return None if row is None else queries.to_info(s, row)

    def pull(
        self,
        ref: str,
        *,
        dest: Path | None = None,
        force: bool = False,
        progress: Progress | None = None,
        region: str | None = None,
    ) -> PullResult:
        from registry.catalog.transfer import write_version

        if region is not None:
            self.router.regions.get(region)  # UnknownRegion, even when the cache has it all
        version = self.show(ref)
        out = dest if dest is not None else Path(version.name)

        def fetch(entry: FileEntry) -> Iterator[bytes]:
            return self.reader_store(entry.sha256, region)

        down, cached = write_version(
            version, out, fetch=fetch, cache=self.cache, force=force, progress=progress
        )
        return PullResult(
            version=version, path=str(out.resolve()), bytes_downloaded=down, bytes_from_cache=cached
        )

    def show(self, ref: str, *, base: str | None = None) -> VersionInfo:
        with self.rt.db.read() as s:
            return queries.get_version(s, parse_ref(ref), base=base)

    def versions(self, repo: str) -> list[VersionInfo]:
        with self.rt.db.read() as s:
            return queries.list_versions(s, parse_repo(repo))

    def list_adapters(self, namespace: str | None = None) -> list[AdapterSummary]:
        if namespace is not None:
            from registry.catalog.refs import check_name

            check_name(namespace, what="namespace")
        from registry.services.catalog import list_adapters

        out: list[AdapterSummary] = []
        after: str | None = None
        while True:  # every adapter, a page a read, as the remote client pages the API
            page = list_adapters(self.rt.db, namespace, limit=PAGE, after=after)
            out.extend(page)
            if len(page) < PAGE:
                return out
            after = f"{page[-1].namespace}/{page[-1].name}"

    def history(self, repo: str) -> list[EventInfo]:
        with self.rt.db.read() as s:
            return queries.history(s, parse_repo(repo))

    def tag(self, ref: str, tags: dict[str, str]) -> VersionInfo:
        from registry.catalog import metadata

        return metadata.set_tags(self.rt.db, parse_ref(ref), tags, actor=self.actor)

    def resolve(
        self, repo: str, *, ref: str = "latest", base: str | None = None, region: str | None = None
    ) -> dict[str, Any]:
        from registry.catalog.resolve import resolve, resolve_document

        version = resolve(self.rt.db, parse_repo(repo), ref=ref, base=base)
        ttl = self.rt.settings.presign_ttl_s
        reader = self.router.reader_region(region)
        choices = self.router.choose(reader, [f.sha256 for f in version.files])

        def url_for(_v: VersionInfo, f: FileEntry) -> str:
            store = choices[f.sha256].region.store
            return store.presign_get(f.sha256, expires_s=ttl, filename=f.path) or (
                f"{store.url.rstrip('/')}/{blob_key(f.sha256)}"
            )

        return resolve_document(version, url_for=url_for)

    def close(self) -> None:
        self.rt.close()

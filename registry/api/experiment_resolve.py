"""``GET /api/v1/resolve/{ns}/{name}?experiment=E&subject=S``: the subject's variant.

The resolve route hands requests with ``experiment`` here in one early branch. The answer
is the plain resolve document of the assigned variant's version plus an ``experiment``
member (name, state, variant, bucket), with the variant in ``X-Lorareg-Variant``. The ETag
names the version and the variant, so ``If-None-Match`` gives 304 until either changes.
Once the experiment has ended every subject gets the experiment base model's production.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool

from registry.api.regions import choose, read_router
from registry.api.version_cache import app_singleton, cached_version
from registry.catalog.refs import parse_repo
from registry.catalog.resolve import resolve
from registry.domain import VersionInfo
from registry.errors import InvalidInput, InvalidSubject
from registry.experiments.serving import DefinitionCache, ExperimentDef, load_definition
from registry.regions.router import ReadChoice
from registry.runtime import Runtime

# The plain resolve's rendering: the document's bytes and how long they may be served;
# its last argument is each blob's region (None: the primary's).
Render = Callable[
    [Request, Runtime, VersionInfo, Mapping[str, ReadChoice] | None], tuple[bytes, float]
]
log = logging.getLogger("lorareg.api")


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # a failed check leaves the cache stale-but-bounded; log, not raise
        log.warning("experiment definition check failed", exc_info=True)


def _definitions(request: Request) -> DefinitionCache:
    rt: Runtime = request.app.state.runtime
    return app_singleton(request.app, "experiment_definitions", lambda: DefinitionCache(rt.db))


async def _definition(
    request: Request, namespace: str, name: str, experiment: str
) -> ExperimentDef:
    cache = _definitions(request)
    key = (namespace, name, experiment)
    hit, refresh = cache.peek(key)
    if refresh:  # re-check in the background; this and other requests are answered meanwhile
        asyncio.get_running_loop().run_in_executor(None, _quietly, cache.refresh)
    if hit is not None:
        return hit
    rt: Runtime = request.app.state.runtime
    repo = parse_repo(f"{namespace}/{name}")
    return await run_in_threadpool(
        cache.load, key, lambda: load_definition(rt.db, repo, experiment)
    )


async def resolve_with_experiment(request: Request, *, reader: str, render: Render) -> Response:
    """The resolve answer for ``?experiment=&subject=`` (the caller checked the reader role),
    its download URLs for a reader in region ``reader``, as the plain resolve's."""
    namespace, name = request.path_params["namespace"], request.path_params["name"]
    params = request.query_params
    if "ref" in params:
        raise InvalidInput("pass either ref or experiment: the experiment picks the version")
    subject = params.get("subject")
    if subject is None:
        raise InvalidSubject("pass the subject to assign: ?experiment=NAME&subject=ID")
    definition = await _definition(request, namespace, name, params["experiment"])
    bucket, variant, revision, base = definition.target(subject)
    rt: Runtime = request.app.state.runtime

    def resolver() -> VersionInfo:
        return resolve(rt.db, parse_repo(f"{namespace}/{name}"), ref=revision, base=base)

    version = await cached_version(request, ("v1", namespace, name, revision, base), resolver)
    etag = f'"{version.content_id}-{variant or "production"}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Lorareg-Experiment": definition.state}
    if variant is not None:
        headers["X-Lorareg-Variant"] = variant
    if etag in _etags(request.headers.get("if-none-match")):
        return Response(status_code=304, headers=headers)
    extra = {
        "name": definition.name,
        "state": definition.state,
        "variant": variant,
        "bucket": bucket,
    }
    choices = None
    if reader != read_router(request.app).regions.primary.name:
        choices = await choose(request, reader, [f.sha256 for f in version.files])
    body, _ = render(request, rt, version, choices)
    # The cached plain document, with one member added before its closing brace.
    body = body[:-1] + b',"experiment":' + json.dumps(extra, separators=(",", ":")).encode() + b"}"
    return Response(body, media_type="application/json", headers=headers)


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {t.strip().removeprefix("W/") for t in header.split(",")}

"""Adapter-library operations (compose, interference, analyze, compress) for both clients.

Both return the service's pydantic models: the local client calls the services, the remote
client parses the same models from the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.catalog.refs import parse_ref

if TYPE_CHECKING:  # the result models load with the first library call, not at start-up
    import httpx

    from registry.library.results import AnalysisResult, LibraryMap, LibraryVersion
    from registry.runtime import Runtime


class LocalLibrary:
    rt: Runtime

    @property
    def actor(self) -> str:  # pragma: no cover - provided by LocalClient
        raise NotImplementedError

    def compose(self, refs: list[str], *, output: str, **options: Any) -> dict[str, Any]:
        """Check and queue a composition: ``{"job": ..., "interference": [...]}``; a worker
        (or ``wait_job`` without a server) runs it, and the job's result is the
        ``LibraryVersion`` (``composed``)."""
        _require_torch()
        from registry.library.compose_jobs import request_compose

        job, report = request_compose(
            self.rt, refs, output=output, actor=self.actor, **_given(options)
        )
        return {"job": job.to_json(), "interference": report}

    def interference(
        self,
        refs: list[str] | None = None,
        *,
        base: str | None = None,
        namespace: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> LibraryMap:
        _require_torch()
        from registry.library.library_map import library_map

        return library_map(self.rt, refs=refs or [], base=base, namespace=namespace, tags=tags)

    def analyze(self, ref: str) -> AnalysisResult:
        _require_torch()
        from registry.library.service import analyze_version

        return analyze_version(self.rt, ref)

    def compress(self, ref: str, **options: Any) -> LibraryVersion:
        _require_torch()
        from registry.library.service import compress_version

        return compress_version(self.rt, ref, actor=self.actor, **options)


class RemoteLibrary:
    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:  # pragma: no cover
        raise NotImplementedError

    def compose(self, refs: list[str], *, output: str, **options: Any) -> dict[str, Any]:
        body = {"adapters": refs, "output": output, **_given(options)}
        return dict(self._call("POST", "/api/v1/compositions", json=body).json())

    def interference(
        self,
        refs: list[str] | None = None,
        *,
        base: str | None = None,
        namespace: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> LibraryMap:
        params: list[tuple[str, str]] = [("ref", r) for r in refs or []]
        params += [("tag", f"{k}={v}") for k, v in (tags or {}).items()]
        params += [(k, v) for k, v in (("base", base), ("namespace", namespace)) if v]
        from registry.library.results import LibraryMap

        return LibraryMap.model_validate(
            self._call("GET", "/api/v1/interference", params=params).json()
        )

    def analyze(self, ref: str) -> AnalysisResult:
        path, params = _version_path(ref, "analysis")
        from registry.library.results import AnalysisResult

        return AnalysisResult.model_validate(self._call("GET", path, params=params).json())

    def compress(self, ref: str, **options: Any) -> LibraryVersion:
        path, params = _version_path(ref, "compressions")
        body = {**params, **_given(options)}
        from registry.library.results import LibraryVersion

        return LibraryVersion.model_validate(self._call("POST", path, json=body).json())


def composed(job: dict[str, Any]) -> LibraryVersion:
    """The version a succeeded compose job wrote, with what was lost per module."""
    if job.get("state") != "succeeded" or not job.get("result"):
        raise ValueError(f"job {job.get('id')} is {job.get('state')}, not succeeded")
    from registry.library.results import LibraryVersion

    return LibraryVersion.model_validate(job["result"])


def _require_torch() -> None:
    from registry.merge.service import require_torch

    require_torch()


def _given(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


def _version_path(ref: str, what: str) -> tuple[str, dict[str, str]]:
    r = parse_ref(ref)
    path = f"/api/v1/adapters/{r.repo.namespace}/{r.repo.name}/{what}"
    selector = str(r.number) if r.number is not None else r.label
    return path, ({"ref": selector} if selector else {})

"""Base model and check operations for both clients."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.catalog.refs import Ref, parse_ref
from registry.errors import BaseSourceNotFound

if TYPE_CHECKING:  # only remote clients make requests; a local one never loads httpx
    import httpx

    from registry.runtime import Runtime


class LocalCompat:
    rt: Runtime

    @property
    def actor(self) -> str:  # pragma: no cover - provided by LocalClient
        raise NotImplementedError

    def add_base(self, name: str, source: str) -> dict[str, Any]:
        from registry.compat import bases

        doc, created = bases.add_base(self.rt.db, self.rt.settings, name, source, actor=self.actor)
        return {**doc, "created": created}

    def list_bases(self) -> list[dict[str, Any]]:
        from registry.services.compat import list_bases

        return [b.model_dump(mode="json") for b in list_bases(self.rt.db)]

    def get_base(self, name: str) -> dict[str, Any]:
        from registry.services.compat import get_base

        return get_base(self.rt.db, name).model_dump(mode="json")

    def check(self, ref: str, *, base: str, engines: list[str] | None = None) -> dict[str, Any]:
        # The check machinery (every rule, base sources) loads only for a check.
        from registry.services.compat import run_check

        done = run_check(self.rt, parse_ref(ref), base=base, engines=engines, actor=self.actor)
        return done.model_dump(mode="json")

    def checks(self, ref: str) -> list[dict[str, Any]]:
        from registry.compat.check_records import latest_checks
        from registry.services.compat import pinned

        return latest_checks(self.rt.db, pinned(self.rt, parse_ref(ref)))


class RemoteCompat:
    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:  # pragma: no cover
        raise NotImplementedError

    def add_base(self, name: str, source: str) -> dict[str, Any]:
        try:
            resp = self._call("POST", "/api/v1/bases", json={"name": name, "source": source})
        except BaseSourceNotFound:
            if "://" in source and not source.startswith("file://"):
                raise
            # A folder source is read by the server, from its own disk, not from here.
            raise BaseSourceNotFound(
                f"{source}: no such folder on the server {getattr(self, 'base', '')} (it reads"
                " a folder source from its own disk, not from this machine); pass a path the"
                " server can read, s3://bucket/prefix or hf://org/repo@rev, or run `lorareg"
                " base add` without LORAREG_URL where this folder and the catalog are both"
                " reachable"
            ) from None
        return dict(resp.json())

    def list_bases(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/bases").json())

    def get_base(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v1/bases/{name}").json())

    def check(self, ref: str, *, base: str, engines: list[str] | None = None) -> dict[str, Any]:
        r = parse_ref(ref)
        path = f"/api/v1/adapters/{r.repo}/versions/{_rev(r)}/checks"
        return dict(self._call("POST", path, json={"base": base, "engines": engines or []}).json())

    def checks(self, ref: str) -> list[dict[str, Any]]:
        r = parse_ref(ref)
        return list(
            self._call("GET", f"/api/v1/adapters/{r.repo}/versions/{_rev(r)}/checks").json()
        )


def _rev(r: Ref) -> str:
    return str(r.number) if r.number is not None else r.label or "latest"

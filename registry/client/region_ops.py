"""Regions in both clients: the configured regions and their replication status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only remote clients make requests; a local one never loads httpx
    import httpx

    from registry.principal import Principal
    from registry.runtime import Runtime
    from registry.services.region_models import RegionStatusReport, RegionView


class LocalRegions:
    """Mixin for LocalClient: acts as the local admin (see LocalLifecycle.principal)."""

    rt: Runtime

    @property
    def principal(self) -> Principal:  # pragma: no cover - LocalLifecycle provides it
        raise NotImplementedError

    def regions(self) -> list[RegionView]:
        from registry.services import regions

        return regions.list_regions(self.rt)

    def region_status(self, *, ref: str | None = None) -> RegionStatusReport:
        from registry.services import regions

        return regions.region_status(self.rt, principal=self.principal, ref=ref)


class RemoteRegions:
    """Mixin for RemoteClient, over ``/api/v1/regions``."""

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:  # pragma: no cover
        raise NotImplementedError

    def regions(self) -> list[RegionView]:
        from registry.services.region_models import RegionView

        return [RegionView.model_validate(d) for d in self._call("GET", "/api/v1/regions").json()]

    def region_status(self, *, ref: str | None = None) -> RegionStatusReport:
        from registry.services.region_models import RegionStatusReport

        params = {"ref": ref} if ref is not None else {}
        resp = self._call("GET", "/api/v1/regions/status", params=params)
        return RegionStatusReport.model_validate(resp.json())

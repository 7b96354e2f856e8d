"""Offboarding and quotas in both clients: erase versions, adapters and namespaces; show
and set a namespace's quota."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.catalog.refs import check_name

if TYPE_CHECKING:  # only remote clients make requests; a local one never loads httpx
    import httpx

    from registry.catalog.erase import ErasureReport
    from registry.catalog.quotas import NamespaceInfo
    from registry.principal import Principal
    from registry.runtime import Runtime


class LocalNamespaces:
    """Mixin for LocalClient: acts as the local admin (see LocalLifecycle.principal)."""

    rt: Runtime

    @property
    def principal(self) -> Principal:  # pragma: no cover - LocalLifecycle provides it
        raise NotImplementedError

    def delete(self, ref: str, *, reason: str | None, force: bool = False) -> ErasureReport:
        from registry.catalog import erase
        from registry.services.regions import regional_stores

        return erase.erase(
            self.rt.db,
            self.rt.store,
            erase.target_of(ref),
            principal=self.principal,
            reason=reason,
            force=force,
            regional=regional_stores(self.rt),
        )

    def delete_namespace(
        self, namespace: str, *, reason: str | None, force: bool = False
    ) -> ErasureReport:
        from registry.catalog import erase
        from registry.services.regions import regional_stores

        return erase.erase(
            self.rt.db,
            self.rt.store,
            erase.namespace_target(namespace),
            principal=self.principal,
            reason=reason,
            force=force,
            regional=regional_stores(self.rt),
        )

    def namespace_info(self, namespace: str) -> NamespaceInfo:
        from registry.catalog import quotas

        return quotas.namespace_info(self.rt.db, namespace, principal=self.principal)

    def set_quota(self, namespace: str, **limits: Any) -> NamespaceInfo:
        """``max_bytes`` / ``max_versions``: an int sets, None clears, absent keeps."""
        from registry.catalog import quotas
        from registry.catalog.quotas import KEEP

        return quotas.set_quota(
            self.rt.db,
            namespace,
            principal=self.principal,
            max_bytes=limits.get("max_bytes", KEEP),
            max_versions=limits.get("max_versions", KEEP),
        )


class RemoteNamespaces:
    """Mixin for RemoteClient, over ``/api/v1``."""

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:  # pragma: no cover
        raise NotImplementedError

    def delete(self, ref: str, *, reason: str | None, force: bool = False) -> ErasureReport:
        from registry.catalog import erase
        from registry.catalog.erase import ErasureReport

        target = erase.target_of(ref)
        path = f"/api/v1/adapters/{target.repo}"
        if target.number is not None:
            path += f"/versions/{target.number}"
        body = {"reason": erase.check_reason(reason), "force": force}
        return ErasureReport.model_validate(self._call("DELETE", path, json=body).json())

    def delete_namespace(
        self, namespace: str, *, reason: str | None, force: bool = False
    ) -> ErasureReport:
        from registry.catalog import erase
        from registry.catalog.erase import ErasureReport

        check_name(namespace, what="namespace")
        body = {"reason": erase.check_reason(reason), "force": force}
        resp = self._call("DELETE", f"/api/v1/namespaces/{namespace}", json=body)
        return ErasureReport.model_validate(resp.json())

    def namespace_info(self, namespace: str) -> NamespaceInfo:
        from registry.catalog.quotas import NamespaceInfo

        check_name(namespace, what="namespace")
        return NamespaceInfo.model_validate(
            self._call("GET", f"/api/v1/namespaces/{namespace}").json()
        )

    def set_quota(self, namespace: str, **limits: Any) -> NamespaceInfo:
        from registry.catalog.quotas import NamespaceInfo

        check_name(namespace, what="namespace")
        body = {k: v for k, v in limits.items() if k in ("max_bytes", "max_versions")}
        resp = self._call("PUT", f"/api/v1/namespaces/{namespace}/quota", json=body)
        return NamespaceInfo.model_validate(resp.json())

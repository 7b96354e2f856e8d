"""Lifecycle operations of the remote client, over ``/api/v1``."""

from __future__ import annotations

from typing import Any

import httpx

from registry.catalog.refs import parse_ref, parse_repo
from registry.domain import EvalRecord, EventInfo, VersionInfo


class RemoteLifecycle:
    """Mixin for RemoteClient."""

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:  # pragma: no cover
        raise NotImplementedError

    def show(self, ref: str, *, base: str | None = None) -> VersionInfo:  # pragma: no cover
        raise NotImplementedError

    def _number(self, ref: str) -> tuple[str, int]:
        r = parse_ref(ref)
        number = r.number if r.number is not None else self.show(ref).number
        return str(r.repo), number

    def promote(
        self, ref: str, *, to: str, reason: str | None = None, end_experiment: bool = False
    ) -> dict[str, Any]:
        repo, n = self._number(ref)
        body = {"to": to, "reason": reason, "end_experiment": end_experiment}
        return dict(
            self._call("POST", f"/api/v1/adapters/{repo}/versions/{n}/promote", json=body).json()
        )

    def set_alias(
        self, repo: str, label: str, version: int, *, reason: str | None = None
    ) -> VersionInfo:
        path = f"/api/v1/adapters/{parse_repo(repo)}/aliases/{label}"
        resp = self._call("PUT", path, json={"version": version, "reason": reason})
        return VersionInfo.model_validate(resp.json())

    def delete_alias(self, repo: str, label: str) -> None:
        self._call("DELETE", f"/api/v1/adapters/{parse_repo(repo)}/aliases/{label}")

    def add_evals(self, ref: str, evals: list[EvalRecord]) -> VersionInfo:
        # catalog.push loads SQLAlchemy: only for the commands that need its checks.
        from registry.catalog.push import check_eval

        for e in evals:
            check_eval(e)  # NaN cannot even be sent as JSON: refuse it here, clearly
        repo, n = self._number(ref)
        body = {"evals": [e.model_dump(mode="json") for e in evals]}
        resp = self._call("POST", f"/api/v1/adapters/{repo}/versions/{n}/evals", json=body)
        return VersionInfo.model_validate(resp.json())

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """Both versions as the server shows them, compared here: two versions of any two
        adapters the token may read, as the local client compares them."""
        from registry.catalog.diff import diff_versions

        return diff_versions(self.show(a), self.show(b))

    def get_policy(self, target: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/v1/policies/{target}").json())

    def set_policy(self, target: str, rules: dict[str, Any]) -> dict[str, Any]:
        return dict(self._call("PUT", f"/api/v1/policies/{target}", json=rules).json())

    def namespace_history(self, namespace: str) -> list[EventInfo]:
        resp = self._call("GET", f"/api/v1/namespaces/{namespace}/history")
        return [EventInfo.model_validate(e) for e in resp.json()]

    def events(
        self, since: int = 0, *, wait: float = 0, namespace: str | None = None
    ) -> list[EventInfo]:
        params: dict[str, Any] = {"since": since, "wait": wait}
        if namespace:
            params["namespace"] = namespace
        resp = self._call("GET", "/api/v1/events", params=params, timeout=wait + 30)
        return [EventInfo.model_validate(e) for e in resp.json()]

    def create_token(
        self,
        name: str,
        role: str,
        *,
        namespaces: list[str] | None = None,
        expires_in_days: float | None = None,
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "role": role,
            "namespaces": namespaces,
            "expires_in_days": expires_in_days,
        }
        return dict(self._call("POST", "/api/v1/tokens", json=body).json())

    def list_tokens(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/tokens").json())

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/api/v1/tokens/{token_id}").json())

    def create_webhook(
        self, url: str, *, namespace: str | None = None, kinds: list[str] | None = None
    ) -> dict[str, Any]:
        body = {"url": url, "namespace": namespace, "kinds": kinds}
        return dict(self._call("POST", "/api/v1/webhooks", json=body).json())

    def list_webhooks(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/v1/webhooks").json())

    def delete_webhook(self, webhook_id: int) -> None:
        self._call("DELETE", f"/api/v1/webhooks/{webhook_id}")

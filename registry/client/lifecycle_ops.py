"""Lifecycle operations of the local client (stages, aliases, evals, policies, tokens)."""

from __future__ import annotations

import time
from typing import Any

from registry.catalog import queries
from registry.catalog.refs import Ref, parse_ref, parse_repo
from registry.domain import EvalRecord, EventInfo, VersionInfo
from registry.errors import InvalidReference
from registry.principal import Principal
from registry.runtime import Runtime


class LocalLifecycle:
    """Mixin for LocalClient: acts as the local admin, named by LORAREG_AUTHOR."""

    rt: Runtime

    @property
    def principal(self) -> Principal:
        return Principal(name=self.rt.settings.effective_author, role="admin")

    def promote(
        self, ref: str, *, to: str, reason: str | None = None, end_experiment: bool = False
    ) -> dict[str, Any]:
        from registry.services import lifecycle as lifecycle_service

        done = lifecycle_service.promote(
            self.rt.db,
            _numbered(self, ref),
            to=to,
            reason=reason,
            principal=self.principal,
            end_experiment=end_experiment,
            store=self.rt.store,
        )
        return done.model_dump(mode="json")  # the wire's shape, as the remote client returns

    def set_alias(
        self, repo: str, label: str, version: int, *, reason: str | None = None
    ) -> VersionInfo:
        from registry.lifecycle import stages

        return stages.set_alias(
            self.rt.db, parse_repo(repo), label, version, principal=self.principal, reason=reason
        )

    def delete_alias(self, repo: str, label: str) -> None:
        from registry.lifecycle import stages

        stages.delete_alias(self.rt.db, parse_repo(repo), label, principal=self.principal)

    def add_evals(self, ref: str, evals: list[EvalRecord]) -> VersionInfo:
        from registry.catalog import metadata

        return metadata.add_evals(
            self.rt.db, _numbered(self, ref), evals, actor=self.principal.name
        )

    def diff(self, a: str, b: str) -> dict[str, Any]:
        from registry.catalog.diff import diff_versions

        ra, rb = parse_ref(a), parse_ref(b)
        with self.rt.db.read() as s:
            va = queries.get_version(s, ra)
            vb = queries.get_version(s, rb)
        return diff_versions(va, vb)

    def get_policy(self, target: str) -> dict[str, Any]:
        from registry.services import lifecycle as lifecycle_service

        return lifecycle_service.get_policy(self.rt.db, target).model_dump(mode="json")

    def set_policy(self, target: str, rules: dict[str, Any]) -> dict[str, Any]:
        from registry.services import lifecycle as lifecycle_service

        view = lifecycle_service.set_policy(
            self.rt.db,
            target,
            rules,
            principal=self.principal,
            regions=self.rt.settings.region_names,
        )
        return view.model_dump(mode="json")

    def namespace_history(self, namespace: str) -> list[EventInfo]:
        from registry.lifecycle import events

        return events.namespace_history(self.rt.db, namespace)

    def events(
        self, since: int = 0, *, wait: float = 0, namespace: str | None = None
    ) -> list[EventInfo]:
        """Events after ``since``; with ``wait``, as the API's long poll: answers as soon as
        one arrives, or with ``[]`` after ``wait`` seconds (at most 60, as the API)."""
        from registry.lifecycle import events as lifecycle_events

        found = lifecycle_events.events_after(self.rt.db, since, namespace=namespace)
        deadline = time.monotonic() + min(max(wait, 0.0), 60.0)
        while not found and time.monotonic() < deadline:
            time.sleep(0.1)
            found = lifecycle_events.events_after(self.rt.db, since, namespace=namespace)
        return found

    def create_token(
        self,
        name: str,
        role: str,
        *,
        namespaces: list[str] | None = None,
        expires_in_days: float | None = None,
    ) -> dict[str, Any]:
        from registry.services import access as access_service

        created = access_service.create_token(
            self.rt.db,
            name=name,
            role=role,
            principal=self.principal,
            namespaces=namespaces,
            expires_in_days=expires_in_days,
        )
        return created.model_dump(mode="json")

    def list_tokens(self) -> list[dict[str, Any]]:
        from registry.services import access as access_service

        tokens = access_service.list_tokens(self.rt.db, principal=self.principal)
        return [t.model_dump(mode="json") for t in tokens]

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        from registry.services import access as access_service

        info = access_service.revoke_token(self.rt.db, token_id, principal=self.principal)
        return info.model_dump(mode="json")

    def create_webhook(
        self, url: str, *, namespace: str | None = None, kinds: list[str] | None = None
    ) -> dict[str, Any]:
        from registry.services import access as access_service

        created = access_service.create_webhook(
            self.rt.db,
            url=url,
            principal=self.principal,
            namespace=namespace,
            kinds=kinds,
            allow_hosts=self.rt.settings.webhook_allow_hosts,
        )
        return created.model_dump(mode="json")

    def list_webhooks(self) -> list[dict[str, Any]]:
        from registry.services import access as access_service

        hooks = access_service.list_webhooks(self.rt.db, principal=self.principal)
        return [w.model_dump(mode="json") for w in hooks]

    def delete_webhook(self, webhook_id: int) -> None:
        from registry.services import access as access_service

        access_service.delete_webhook(self.rt.db, webhook_id, principal=self.principal)


def _numbered(client: LocalLifecycle, ref: str) -> Ref:
    """A reference pinned to a number (labels are resolved first, so the move is exact)."""
    r = parse_ref(ref)
    if r.number is not None:
        return r
    with client.rt.db.read() as s:
        row = queries.ref_row(s, r)
        if row is None:  # pragma: no cover - ref_row raises
            raise InvalidReference(ref)
        return Ref(r.repo, number=row.number)

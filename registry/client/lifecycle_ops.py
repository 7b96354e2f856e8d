"""Lifecycle operations of the local client (stages, aliases, evals, policies, tokens)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from registry.catalog import metadata, queries
from registry.catalog.diff import diff_versions
from registry.catalog.refs import Ref, parse_ref, parse_repo
from registry.domain import EvalRecord, EventInfo, VersionInfo
from registry.errors import InvalidReference
from registry.experiments.service import promote_guarded
from registry.lifecycle import access, events, policies, stages, webhooks
from registry.lifecycle.gates import compat_problems
from registry.runtime import Runtime


class LocalLifecycle:
    """Mixin for LocalClient: acts as the local admin, named by LORAREG_AUTHOR."""

    rt: Runtime

    @property
    def principal(self) -> access.Principal:
        return access.Principal(name=self.rt.settings.effective_author, role="admin")

    def promote(
        self, ref: str, *, to: str, reason: str | None = None, end_experiment: bool = False
    ) -> dict[str, Any]:
        r = _numbered(self, ref)
        result, ended = promote_guarded(
            self.rt.db,
            r,
            to=to,
            reason=reason,
            principal=self.principal,
            compat_problems=compat_problems,
            end_experiment=end_experiment,
        )
        return {
            "experiments_ended": ended,
            "version": result.version.model_dump(mode="json"),
            "previous_stage": result.previous_stage,
            "archived": result.archived,
            "unchanged": result.unchanged,
        }

    def set_alias(
        self, repo: str, label: str, version: int, *, reason: str | None = None
    ) -> VersionInfo:
        return stages.set_alias(
            self.rt.db, parse_repo(repo), label, version, principal=self.principal, reason=reason
        )

    def delete_alias(self, repo: str, label: str) -> None:
        stages.delete_alias(self.rt.db, parse_repo(repo), label, principal=self.principal)

    def add_evals(self, ref: str, evals: list[EvalRecord]) -> VersionInfo:
        return metadata.add_evals(
            self.rt.db, _numbered(self, ref), evals, actor=self.principal.name
        )

    def diff(self, a: str, b: str) -> dict[str, Any]:
        ra, rb = parse_ref(a), parse_ref(b)
        with self.rt.db.read() as s:
            va = queries.get_version(s, ra)
            vb = queries.get_version(s, rb)
        return diff_versions(va, vb)

    def get_policy(self, target: str) -> dict[str, Any]:
        if "/" in target:
            repo = parse_repo(target)
            with self.rt.db.read() as s:
                source, rules = policies.effective_policy(s, repo.namespace, repo.name)
            return {"target": target, "effective_from": source, "rules": rules.model_dump()}
        rules_or_none = policies.get_policy(self.rt.db, target)
        return {"target": target, "rules": rules_or_none.model_dump() if rules_or_none else None}

    def set_policy(self, target: str, rules: dict[str, Any]) -> dict[str, Any]:
        parsed = policies.parse_rules(rules)
        policies.set_policy(self.rt.db, target, parsed, actor=self.principal.name)
        return {"target": target, "rules": parsed.model_dump()}

    def namespace_history(self, namespace: str) -> list[EventInfo]:
        return events.namespace_history(self.rt.db, namespace)

    def events(
        self, since: int = 0, *, wait: float = 0, namespace: str | None = None
    ) -> list[EventInfo]:
        return events.events_after(self.rt.db, since, namespace=namespace)

    def create_token(
        self,
        name: str,
        role: str,
        *,
        namespaces: list[str] | None = None,
        expires_in_days: float | None = None,
    ) -> dict[str, Any]:
        secret, info = access.create_token(
            self.rt.db,
            name=name,
            role=role,
            actor=self.principal.name,
            namespaces=namespaces,
            expires_in_days=expires_in_days,
        )
        return {"token": secret, **asdict(info)}

    def list_tokens(self) -> list[dict[str, Any]]:
        return [asdict(t) for t in access.list_tokens(self.rt.db)]

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return asdict(access.revoke_token(self.rt.db, token_id, actor=self.principal.name))

    def create_webhook(
        self, url: str, *, namespace: str | None = None, kinds: list[str] | None = None
    ) -> dict[str, Any]:
        info, secret = webhooks.create_webhook(
            self.rt.db,
            url=url,
            actor=self.principal.name,
            namespace=namespace,
            kinds=kinds,
            allow_hosts=self.rt.settings.webhook_allow_hosts,
        )
        return {"secret": secret, **asdict(info)}

    def list_webhooks(self) -> list[dict[str, Any]]:
        return [asdict(w) for w in webhooks.list_webhooks(self.rt.db)]

    def delete_webhook(self, webhook_id: int) -> None:
        webhooks.delete_webhook(self.rt.db, webhook_id, actor=self.principal.name)


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

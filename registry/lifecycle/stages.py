"""Stages and aliases: moving labels between versions, each move kept in the history.

A version is in at most one stage (staging, production, archived). At most one version
of an adapter is in production per base model: the database enforces it with a partial
unique index, and promotions of one adapter serialise on its row lock, so two racing
promotes never leave two productions. Promoting to production archives the previous
production for that base in the same transaction; promoting an older version is the
rollback.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog.queries import adapter_row, ref_row, to_info
from registry.catalog.refs import LABEL_RE, Ref, Repo
from registry.db import models as m
from registry.db.database import Database
from registry.domain import VersionInfo
from registry.errors import GateFailed, InvalidInput, NotFound
from registry.lifecycle.gates import compat_problems
from registry.lifecycle.interference_gate import fill_interference, interference_problems
from registry.lifecycle.policies import STAGES, PolicyRules, effective_policy, unmet_conditions
from registry.lifecycle.region_gate import region_problems
from registry.principal import Principal
from registry.storage.base import BlobStore

# Labels that mean something else in references and revisions.
RESERVED_LABELS = set(STAGES) | {"main", "latest", "head"}


@dataclass(frozen=True)
class Promotion:
    version: VersionInfo
    previous_stage: str | None
    archived: int | None  # the production version this promotion replaced
    unchanged: bool = False  # the version already held the stage: nothing was recorded


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise InvalidInput(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    return stage


def lock_adapter(session: Session, adapter_id: int) -> None:
    """Serialise lifecycle changes of one adapter (a no-op lock on SQLite, whose write
    transactions are already exclusive)."""
    session.execute(select(m.Adapter.id).where(m.Adapter.id == adapter_id).with_for_update())


def current_production(
    session: Session, adapter_id: int, base: str | None
) -> m.AdapterVersion | None:
    return session.scalar(
        select(m.AdapterVersion).where(
            m.AdapterVersion.adapter_id == adapter_id,
            m.AdapterVersion.base_model == base,
            m.AdapterVersion.stage == "production",
        )
    )


@dataclass(frozen=True)
class PromotionPlan:
    """What promoting a version to a stage would meet, read in one session: the policy in
    force, every unmet gate (the compatibility gate included), and what blocks it outright.
    ``promote`` acts on it; the dashboard's confirmation page shows it."""

    policy: str | None  # where the policy in force is set ("acme" or "acme/voice"); None: none
    rules: PolicyRules
    gated: bool  # the policy's gates apply to this target stage
    unmet: list[str]
    blocked: str | None  # why it cannot happen whatever the gates say
    production: m.AdapterVersion | None  # the production version for the same base

    def replaces(self, row: m.AdapterVersion, to: str) -> int | None:
        """The production version this promotion would archive."""
        if to == "production" and self.production is not None and self.production.id != row.id:
            return self.production.number
        return None


def plan_promotion(
    session: Session, row: m.AdapterVersion, *, to: str, reason: str | None
) -> PromotionPlan:
    """Evaluate the adapter's policy for moving ``row`` to ``to``; changes nothing."""
    ns, name = row.adapter.namespace.name, row.adapter.name
    source, rules = effective_policy(session, ns, name)
    production = current_production(session, row.adapter_id, row.base_model)
    gated = to in rules.stages and to != "archived"
    unmet: list[str] = []
    if gated:
        unmet = unmet_conditions(
            rules,
            row,
            production=production,
            reason=reason,
            compatibility=compat_problems(session, row, rules.engines),
        )
        if rules.max_interference:
            unmet.extend(interference_problems(session, row, rules.max_interference))
        if rules.require_regions:
            unmet.extend(region_problems(session, row, rules.require_regions))
    blocked = None
    if to == "production" and row.base_model is None:
        blocked = (
            f"{ns}/{name}:{row.number} has no base model; production is per base model,"
            " so push it again with --base"
        )
    return PromotionPlan(
        policy=source,
        rules=rules,
        gated=gated,
        unmet=unmet,
        blocked=blocked,
        production=production,
    )


def prepare_gates(
    db: Database, store: BlobStore, ref: Ref, *, to: str, principal: Principal | None
) -> None:
    """What the gates need computed before ``plan_promotion`` reads it: the interference
    pairs of the version with the adapters its policy bounds (``fill_interference``). The
    version must be in the principal's scope (NotFound otherwise, as for the promotion;
    None: the caller checked the scope)."""
    with db.read() as s:
        row = ref_row(s, ref)
        if principal is not None:
            principal.require_namespace(row.adapter.namespace.name)
        version_id = row.id
    fill_interference(db, store, version_id, to=to)


def promote(
    db: Database,
    ref: Ref,
    *,
    to: str,
    principal: Principal,
    reason: str | None = None,
    store: BlobStore | None = None,
) -> Promotion:
    """Move a version to a stage, if the adapter's policy allows it (``plan_promotion``).

    With ``store``, interference pairs the policy's bound needs and the cache lacks are
    computed first (``prepare_gates``), outside the promotion's transaction.
    Raises GateFailed listing every unmet condition, Forbidden when the principal lacks the
    role the policy asks for.
    """
    if store is not None:
        prepare_gates(db, store, ref, to=to, principal=principal)
    with db.write() as s:
        return promote_in(s, ref, to=to, principal=principal, reason=reason)


def promote_in(
    s: Session, ref: Ref, *, to: str, principal: Principal, reason: str | None = None
) -> Promotion:
    """``promote`` inside the caller's write transaction, so a caller that records more
    with the promotion (an experiment's end) commits all of it or none."""
    check_stage(to)
    if reason is not None and len(reason) > 2000:
        raise InvalidInput("reason is over 2000 characters")
    row = ref_row(s, ref)
    principal.require_namespace(row.adapter.namespace.name)
    lock_adapter(s, row.adapter_id)
    s.refresh(row)
    ns, name = row.adapter.namespace.name, row.adapter.name
    plan = plan_promotion(s, row, to=to, reason=reason)
    principal.require(plan.rules.role)
    if row.stage == to:  # no production -> production event, no gate to pass
        return Promotion(version=to_info(s, row), previous_stage=to, archived=None, unchanged=True)
    if plan.blocked is not None:
        raise InvalidInput(plan.blocked)
    if plan.unmet:
        raise GateFailed(
            f"cannot promote {ns}/{name}:{row.number} to {to}: " + "; ".join(plan.unmet),
            details={"unmet": plan.unmet},
        )
    production = plan.production
    previous = row.stage
    archived = None
    if to == "production" and production is not None and production.id != row.id:
        production.stage = "archived"
        archived = production.number
        s.add(
            _event(
                row,
                "stage.changed",
                principal.name,
                {
                    "version": production.number,
                    "from": "production",
                    "to": "archived",
                    "reason": f"replaced by v{row.number}",
                },
                number=production.number,
            )
        )
        s.flush()  # free the production slot before taking it
    row.stage = to
    s.add(
        _event(
            row,
            "stage.changed",
            principal.name,
            {
                "from": previous,
                "to": to,
                "reason": reason,
                "base_model": row.base_model,
                "replaced": archived,
            },
        )
    )
    s.flush()
    return Promotion(version=to_info(s, row), previous_stage=previous, archived=archived)


def set_alias(
    db: Database,
    repo: Repo,
    label: str,
    number: int,
    *,
    principal: Principal,
    reason: str | None = None,
) -> VersionInfo:
    """Point ``label`` at version ``number`` (creating or moving it)."""
    check_alias(label)
    principal.require("maintainer")
    principal.require_namespace(repo.namespace)
    with db.write() as s:
        row = ref_row(s, Ref(repo, number=number))
        lock_adapter(s, row.adapter_id)
        alias = s.scalar(
            select(m.Alias).where(m.Alias.adapter_id == row.adapter_id, m.Alias.name == label)
        )
        previous = None
        if alias is None:
            s.add(
                m.Alias(
                    adapter_id=row.adapter_id,
                    name=label,
                    version_id=row.id,
                    updated_by=principal.name,
                )
            )
        else:
            previous = s.scalar(
                select(m.AdapterVersion.number).where(m.AdapterVersion.id == alias.version_id)
            )
            alias.version_id = row.id
            alias.updated_by = principal.name
        s.add(
            _event(
                row,
                "alias.moved",
                principal.name,
                {"alias": label, "from": previous, "to": row.number, "reason": reason},
            )
        )
        s.flush()
        return to_info(s, row)


def delete_alias(db: Database, repo: Repo, label: str, *, principal: Principal) -> None:
    check_alias(label)
    principal.require("maintainer")
    principal.require_namespace(repo.namespace)
    with db.write() as s:
        adapter = adapter_row(s, repo)
        alias = s.scalar(
            select(m.Alias).where(m.Alias.adapter_id == adapter.id, m.Alias.name == label)
        )
        if alias is None:
            raise NotFound(f"{repo} has no alias {label!r}")
        number = s.scalar(
            select(m.AdapterVersion.number).where(m.AdapterVersion.id == alias.version_id)
        )
        s.delete(alias)
        s.add(
            m.Event(
                kind="alias.deleted",
                namespace=repo.namespace,
                adapter=repo.name,
                version=number,
                actor=principal.name,
                payload={"alias": label},
            )
        )


def aliases_of(session: Session, adapter_id: int) -> dict[str, int]:
    rows = session.execute(
        select(m.Alias.name, m.AdapterVersion.number)
        .join(m.AdapterVersion, m.AdapterVersion.id == m.Alias.version_id)
        .where(m.Alias.adapter_id == adapter_id)
    )
    return {name: number for name, number in rows}


def check_alias(label: str) -> str:
    if not LABEL_RE.match(label or ""):
        raise InvalidInput(
            f"invalid alias {label!r}: use a lowercase name such as 'champion' or 'canary-b'"
        )
    if label in RESERVED_LABELS:
        raise InvalidInput(
            f"{label!r} is a stage or a reserved revision name; promote to stages with"
            " `lorareg promote`, and pick another alias name"
        )
    return label


def _event(
    row: m.AdapterVersion,
    kind: str,
    actor: str,
    payload: dict[str, object],
    *,
    number: int | None = None,
) -> m.Event:
    return m.Event(
        kind=kind,
        namespace=row.adapter.namespace.name,
        adapter=row.adapter.name,
        version=number if number is not None else row.number,
        actor=actor,
        payload=payload,
    )

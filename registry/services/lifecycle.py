"""Promotions, their preview, and promotion policies, once for every edge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from registry.catalog.queries import ref_row, to_info
from registry.catalog.refs import Ref, Repo, check_name, parse_repo
from registry.db.database import Database
from registry.domain import Stage, VersionInfo
from registry.lifecycle import policies
from registry.lifecycle.stages import check_stage, plan_promotion, prepare_gates
from registry.principal import Principal
from registry.services.models import EffectivePolicy, PolicyView, PromotionResult
from registry.storage.base import BlobStore


def promote(
    db: Database,
    ref: Ref,
    *,
    to: str,
    principal: Principal,
    reason: str | None = None,
    end_experiment: bool = False,
    store: BlobStore | None = None,
) -> PromotionResult:
    """Move a pinned version to ``to`` if its policy (compatibility gate included) allows.

    A variant of a running experiment is refused (``experiment_running``) unless
    ``end_experiment``: then those experiments end with the promotion as their reason."""
    from registry.experiments.service import promote_guarded

    done, ended = promote_guarded(
        db,
        ref,
        to=to,
        principal=principal,
        reason=reason,
        end_experiment=end_experiment,
        store=store,
    )
    return PromotionResult(
        version=done.version,
        previous_stage=Stage(done.previous_stage) if done.previous_stage else None,
        archived=done.archived,
        unchanged=done.unchanged,
        experiments_ended=ended,
    )


def get_policy(db: Database, target: str) -> PolicyView | EffectivePolicy:
    """``target`` is a namespace (its own rules, or None) or ``ns/name`` (the rules in force)."""
    if "/" in target:
        return effective_policy(db, parse_repo(target))
    return namespace_policy(db, target)


def namespace_policy(db: Database, namespace: str) -> PolicyView:
    """A namespace's own rules (None: it has none; its adapters use the defaults)."""
    own = policies.get_policy(db, check_name(namespace, what="namespace"))
    return PolicyView(target=namespace, rules=own.model_dump() if own else None)


def effective_policy(db: Database, repo: Repo) -> EffectivePolicy:
    with db.read() as s:
        source, rules = policies.effective_policy(s, repo.namespace, repo.name)
    return EffectivePolicy(target=str(repo), effective_from=source, rules=rules.model_dump())


def set_policy(
    db: Database,
    target: str,
    rules: dict[str, Any],
    *,
    principal: Principal,
    regions: Sequence[str] | None = None,
) -> PolicyView:
    """Replace the policy of a namespace or ``ns/name`` (admins only).

    ``regions``: the configured region names, the primary's first (``Settings.region_names``);
    ``require_regions`` must name some of them, and the primary, which holds every file, is
    left out of the stored list."""
    if "/" in target:
        target = str(parse_repo(target))
    parsed = policies.parse_rules(rules)
    if parsed.require_regions and regions is not None:
        parsed = parsed.model_copy(
            update={"require_regions": policies.check_regions(parsed.require_regions, regions)}
        )
    parsed = policies.set_policy(db, target, parsed, actor=principal.name)
    return PolicyView(target=target, rules=parsed.model_dump())


# Stands in for the reason while previewing: the reason is typed on the confirmation form,
# so whether the policy asks for one is shown beside that field, not as an unmet gate.
_REASON_ON_FORM = "(typed on the confirmation form)"


class PromotionPreview(BaseModel):
    """What a promotion would do, as the confirmation page shows it."""

    model_config = ConfigDict(frozen=True)

    version: VersionInfo
    to: str
    policy: str | None  # where the policy in force is set ("acme" or "acme/voice"); None: none
    gated: bool  # the policy's gates apply to this target stage
    unmet: list[str]  # every gate the version fails, as ``promote`` would list them
    reason_required: bool
    role: str  # the role the policy asks of whoever promotes
    allowed: bool  # the viewer holds that role
    replaces: int | None  # the production version this would archive
    blocked: str | None  # why it cannot happen whatever the gates say

    @property
    def passes(self) -> bool:
        return self.allowed and self.blocked is None and not self.unmet

    @property
    def rollback(self) -> bool:
        """Promoting an archived version back to production undoes a later promotion."""
        return self.to == "production" and self.version.stage == "archived"

    @property
    def already(self) -> bool:
        return self.version.stage == self.to


def preview_promotion(
    db: Database,
    ref: Ref,
    *,
    to: str,
    principal: Principal,
    store: BlobStore | None = None,
) -> PromotionPreview:
    """Evaluate the gates for promoting ``ref`` to ``to`` as ``principal``; changes nothing.

    It runs ``stages.plan_promotion``, the very function ``promote`` acts on (policy,
    production slot, every gate, the compatibility gate included), in a read-only session,
    so the preview and the promotion cannot disagree about the rules; only the catalog can
    change between the two, and ``promote`` plans again. Raises NotFound (also for a
    namespace outside the principal's scope) and InvalidInput for an unknown stage. With
    ``store``, interference pairs the policy bounds and the cache lacks are computed first,
    as the promotion would.
    """
    check_stage(to)
    if store is not None:
        prepare_gates(db, store, ref, to=to, principal=principal)
    with db.read() as s:
        row = ref_row(s, ref)
        principal.require_namespace(row.adapter.namespace.name)
        plan = plan_promotion(s, row, to=to, reason=_REASON_ON_FORM)
        replaces = plan.replaces(row, to)
        version = to_info(s, row)
    return PromotionPreview(
        version=version,
        to=to,
        policy=plan.policy,
        gated=plan.gated,
        unmet=plan.unmet,
        reason_required=plan.gated and plan.rules.require_reason,
        role=plan.rules.role,
        allowed=principal.can(plan.rules.role),
        replaces=replaces,
        blocked=plan.blocked,
    )

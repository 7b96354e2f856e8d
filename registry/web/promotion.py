"""What a promotion would do, without doing it: the confirmation page's preview.

It evaluates the adapter's policy with the very functions ``stages.promote`` runs
(``effective_policy``, ``current_production``, ``unmet_conditions`` and the compatibility
gate), in a read-only session, so the page and the promotion cannot disagree about the
rules; only the catalog can change between the two, and ``promote`` checks again.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.catalog.queries import ref_row, to_info
from registry.catalog.refs import Ref
from registry.db.database import Database
from registry.domain import VersionInfo
from registry.lifecycle.access import Principal
from registry.lifecycle.gates import compat_problems
from registry.lifecycle.policies import effective_policy, unmet_conditions
from registry.lifecycle.stages import check_stage, current_production

# Stands in for the reason while previewing: the reason is typed on the confirmation form,
# so whether the policy asks for one is shown beside that field, not as an unmet gate.
_REASON_ON_FORM = "(typed on the confirmation form)"


@dataclass(frozen=True)
class PromotionPreview:
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


def preview_promotion(db: Database, ref: Ref, *, to: str, principal: Principal) -> PromotionPreview:
    """Evaluate the gates for promoting ``ref`` to ``to`` as ``principal``; changes nothing.

    Raises NotFound (also for a namespace outside the principal's scope) and InvalidInput
    for an unknown stage.
    """
    check_stage(to)
    with db.read() as s:
        row = ref_row(s, ref)
        ns, name = row.adapter.namespace.name, row.adapter.name
        principal.require_namespace(ns)
        source, rules = effective_policy(s, ns, name)
        production = current_production(s, row.adapter_id, row.base_model)
        gated = to in rules.stages and to != "archived"
        unmet: list[str] = []
        if gated:
            unmet = unmet_conditions(
                rules,
                row,
                production=production,
                reason=_REASON_ON_FORM,
                compatibility=compat_problems(s, row, rules.engines),
            )
        blocked = None
        if to == "production" and row.base_model is None:
            blocked = (
                f"{ns}/{name}:{row.number} has no base model; production is per base model,"
                " so push it again with --base"
            )
        replaces = None
        if to == "production" and production is not None and production.id != row.id:
            replaces = production.number
        version = to_info(s, row)
    return PromotionPreview(
        version=version,
        to=to,
        policy=source,
        gated=gated,
        unmet=unmet,
        reason_required=gated and rules.require_reason,
        role=rules.role,
        allowed=principal.can(rules.role),
        replaces=replaces,
        blocked=blocked,
    )

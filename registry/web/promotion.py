"""What a promotion would do, without doing it: the confirmation page's preview.

It evaluates the adapter's policy with ``stages.plan_promotion``, the very function
``stages.promote`` acts on (policy, production slot, every gate, the compatibility gate
included), in a read-only session, so the page and the promotion cannot disagree about
the rules; only the catalog can change between the two, and ``promote`` plans again.
"""

from __future__ import annotations

from dataclasses import dataclass

from registry.catalog.queries import ref_row, to_info
from registry.catalog.refs import Ref
from registry.db.database import Database
from registry.domain import VersionInfo
from registry.lifecycle.stages import check_stage, plan_promotion, prepare_gates
from registry.principal import Principal
from registry.storage.base import BlobStore

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


def preview_promotion(
    db: Database,
    ref: Ref,
    *,
    to: str,
    principal: Principal,
    store: BlobStore | None = None,
) -> PromotionPreview:
    """Evaluate the gates for promoting ``ref`` to ``to`` as ``principal``; changes nothing.

    Raises NotFound (also for a namespace outside the principal's scope) and InvalidInput
    for an unknown stage.
    """
    check_stage(to)
    if store is not None:  # interference pairs the policy bounds and the cache lacks
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

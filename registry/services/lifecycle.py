"""Promotions and promotion policies, once for every edge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from registry.catalog.refs import Ref, Repo, check_name, parse_repo
from registry.db.database import Database
from registry.lifecycle import policies
from registry.principal import Principal
from registry.services.models import EffectivePolicy, PolicyView, PromotionResult


def promote(
    db: Database,
    ref: Ref,
    *,
    to: str,
    principal: Principal,
    reason: str | None = None,
    end_experiment: bool = False,
) -> PromotionResult:
    """Move a pinned version to ``to`` if its policy (compatibility gate included) allows.

    A variant of a running experiment is refused (``experiment_running``) unless
    ``end_experiment``: then those experiments end with the promotion as their reason."""
    from registry.experiments.service import promote_guarded

    done, ended = promote_guarded(
        db, ref, to=to, principal=principal, reason=reason, end_experiment=end_experiment
    )
    return PromotionResult(
        version=done.version,
        previous_stage=done.previous_stage,
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

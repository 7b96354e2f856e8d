"""Promotion policies: the gates a version must pass to enter a stage.

A policy is set on a namespace (``acme``) or one adapter (``acme/brand-voice``); the
adapter's own policy wins over its namespace's, and without either there are no gates
(a maintainer may promote). Evaluation returns every unmet condition, not the first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog.refs import NAME_RE, check_name
from registry.db import models as m
from registry.db.database import Database
from registry.domain import Stage
from registry.errors import InvalidInput
from registry.principal import ROLES

STAGES: tuple[str, ...] = tuple(Stage)
_REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")  # as LORAREG_REGIONS names


class PolicyRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The target stages these gates apply to (demotion to archived is never gated).
    stages: list[str] = Field(default_factory=lambda: ["production"])
    # A compatibility check with no failure against the version's base model...
    require_compatibility: bool = False
    # ... and, where listed, a verdict that these engines can serve it.
    engines: list[str] = Field(default_factory=list)
    # metric -> threshold, in the metric's own direction (higher- or lower-is-better).
    min_evals: dict[str, float] = Field(default_factory=dict)
    # Metrics that must not be worse than the current production's, within tolerance.
    no_regression: list[str] = Field(default_factory=list)
    tolerance: float = Field(default=0.0, ge=0)
    require_reason: bool = False
    role: str = "maintainer"
    # adapter ("name" in this namespace, or "ns/name") -> the largest |cosine| over shared
    # modules allowed between the version and that adapter's production version.
    max_interference: dict[str, float] = Field(default_factory=dict, max_length=32)
    # Regions (LORAREG_REGIONS names) that must hold every file of the version.
    require_regions: list[str] = Field(default_factory=list, max_length=32)

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, v: list[str]) -> list[str]:
        for s in v:
            if s not in STAGES:
                raise ValueError(f"unknown stage {s!r}; stages are {', '.join(STAGES)}")
        return v

    @field_validator("max_interference")
    @classmethod
    def _interference_bounds(cls, v: dict[str, float]) -> dict[str, float]:
        for target, bound in v.items():
            parts = target.split("/")
            if len(parts) > 2 or not all(NAME_RE.match(p) and ".." not in p for p in parts):
                raise ValueError(f"{target!r} is not an adapter (NAME or NAMESPACE/NAME)")
            if not 0 <= bound <= 1:
                raise ValueError(f"bound {bound} for {target} is outside [0, 1] (a |cosine|)")
        return v

    @field_validator("require_regions")
    @classmethod
    def _region_names(cls, v: list[str]) -> list[str]:
        for region in v:
            if not _REGION_RE.fullmatch(region):
                raise ValueError(f"{region[:40]!r} is not a region name")
        return sorted(set(v))

    @field_validator("role")
    @classmethod
    def _known_role(cls, v: str) -> str:
        if v not in ("maintainer", "admin"):
            raise ValueError(f"a promotion needs maintainer or admin, not {v!r} (roles: {ROLES})")
        return v


def parse_rules(doc: dict[str, Any]) -> PolicyRules:
    try:
        return PolicyRules.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'policy'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"invalid policy ({problems})") from None


def check_regions(required: list[str], configured: Sequence[str]) -> list[str]:
    """``required`` without the primary (``configured[0]``), which holds every file;
    InvalidInput naming the regions when one is not configured."""
    unknown = [r for r in required if r not in configured]
    if unknown:
        known = ", ".join(configured) if len(configured) > 1 else "none (set LORAREG_REGIONS)"
        raise InvalidInput(f"require_regions: no region {unknown[0]!r}; regions: {known}")
    return [r for r in required if r != configured[0]]


def check_target(target: str) -> str:
    parts = target.split("/")
    if len(parts) not in (1, 2):
        raise InvalidInput(f"a policy applies to NAMESPACE or NAMESPACE/NAME, not {target!r}")
    for p in parts:
        check_name(p)
    return target


def effective_policy(session: Session, namespace: str, name: str) -> tuple[str | None, PolicyRules]:
    """The policy in force for an adapter and where it comes from (None: no policy)."""
    rows = {
        r.target: r
        for r in session.scalars(
            select(m.Policy).where(m.Policy.target.in_([f"{namespace}/{name}", namespace]))
        )
    }
    for target in (f"{namespace}/{name}", namespace):
        if target in rows:
            return target, PolicyRules.model_validate(rows[target].rules)
    return None, PolicyRules()


def get_policy(db: Database, target: str) -> PolicyRules | None:
    check_target(target)
    with db.read() as s:
        row = s.scalar(select(m.Policy).where(m.Policy.target == target))
        return PolicyRules.model_validate(row.rules) if row else None


def set_policy(db: Database, target: str, rules: PolicyRules, *, actor: str) -> PolicyRules:
    check_target(target)
    ns, _, name = target.partition("/")
    with db.write() as s:
        row = s.scalar(select(m.Policy).where(m.Policy.target == target))
        doc = rules.model_dump(mode="json")
        if row is None:
            s.add(m.Policy(target=target, rules=doc, updated_by=actor))
        else:
            row.rules = doc
            row.updated_by = actor
        s.add(
            m.Event(
                kind="policy.changed",
                namespace=ns,
                adapter=name or None,
                actor=actor,
                payload={"target": target, "rules": doc},
            )
        )
    return rules


def latest_evals(row: m.AdapterVersion) -> dict[str, m.EvalScore]:
    """The most recent score of each metric."""
    out: dict[str, m.EvalScore] = {}
    for e in sorted(row.evals, key=lambda e: e.id):
        out[e.metric] = e
    return out


def unmet_conditions(
    rules: PolicyRules,
    version: m.AdapterVersion,
    *,
    production: m.AdapterVersion | None,
    reason: str | None,
    compatibility: list[str],
) -> list[str]:
    """Every condition of ``rules`` the version does not meet (empty: the gate opens).

    ``compatibility`` holds the compatibility problems found by the caller (the compat
    layer), already phrased for the user.
    """
    unmet: list[str] = []
    if rules.require_reason and not (reason and reason.strip()):
        unmet.append("a reason is required (--reason)")
    if rules.require_compatibility or rules.engines:
        unmet.extend(compatibility)
    scores = latest_evals(version)
    for metric, threshold in sorted(rules.min_evals.items()):
        e = scores.get(metric)
        if e is None:
            unmet.append(
                f"eval {metric} is required (>= {threshold:g}); record it with `lorareg eval add`"
            )
            continue
        ok = e.value >= threshold if e.higher_is_better else e.value <= threshold
        if not ok:
            sign = ">=" if e.higher_is_better else "<="
            unmet.append(f"eval {metric} is {e.value:g}, needs {sign} {threshold:g}")
    if production is not None and production.id != version.id:
        prod_scores = latest_evals(production)
        for metric in rules.no_regression:
            p, c = prod_scores.get(metric), scores.get(metric)
            if p is None:
                continue  # nothing to regress against
            if c is None:
                unmet.append(
                    f"eval {metric} is missing; production v{production.number} has {p.value:g}"
                )
                continue
            worse = (
                c.value < p.value - rules.tolerance
                if p.higher_is_better
                else c.value > p.value + rules.tolerance
            )
            if worse:
                unmet.append(
                    f"eval {metric} regresses: {c.value:g} vs production v{production.number}'s"
                    f" {p.value:g} (tolerance {rules.tolerance:g})"
                )
    return unmet

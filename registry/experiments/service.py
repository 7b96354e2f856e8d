"""The experiments use cases: create, ramp, record outcomes, conclude, list.

Every change is an event (``experiment.created``/``ramped``/``recorded``/``concluded``/
``ended``) with who and why, so the adapter's history and webhooks carry it. Concluding
promotes the winner through ``lifecycle.stages.promote``: the same policy, gates and role
as ``lorareg promote``; nothing is archived except the production version it replaces.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import exc, select
from sqlalchemy.orm import Session

from registry.catalog.queries import adapter_row, version_row
from registry.catalog.refs import LABEL_RE, Ref, Repo, check_name
from registry.db import models as m
from registry.db.database import Database
from registry.db.experiment_models import Experiment, ExperimentOutcome, ExperimentVariant
from registry.errors import (
    ExperimentConcluded,
    ExperimentExists,
    ExperimentRunning,
    InvalidInput,
    InvalidReference,
    NegativeCount,
    SuccessesOverTrials,
    VariantBaseMismatch,
)
from registry.experiments.assignment import (
    initial_ranges,
    parse_split,
    ramp_ranges,
    ranges_from_rows,
)
from registry.experiments.domain import Conclusion, ExperimentInfo, GatePreview
from registry.experiments.records import experiment_info, experiment_row, variant_row
from registry.lifecycle.policies import effective_policy
from registry.lifecycle.stages import (
    Promotion,
    lock_adapter,
    plan_promotion,
    prepare_gates,
    promote_in,
)
from registry.principal import Principal
from registry.storage.base import BlobStore

MAX_VARIANTS = 20
MAX_REASON = 2000
MAX_COUNT = 10**12  # outcomes per record; far beyond any real batch, far below BIGINT
METRIC_MAX = 128


def create(
    db: Database,
    repo: Repo,
    name: str,
    *,
    variants: Sequence[tuple[str, str]],
    split: str | Sequence[object],
    metric: str,
    principal: Principal,
    reason: str | None = None,
) -> ExperimentInfo:
    """Start experiment ``name`` on ``repo``: the first variant is the control. Each
    variant's reference (``@production``, ``3``, ``v3``, an alias) is pinned to its version
    now, so the control does not move under a running test."""
    check_name(name, what="experiment name")
    principal.require("maintainer")
    principal.require_namespace(repo.namespace)
    _check_reason(reason)
    metric = _check_metric(metric)
    names = [v for v, _ in variants]
    if not 2 <= len(names) <= MAX_VARIANTS:
        raise InvalidInput(f"an experiment needs 2 to {MAX_VARIANTS} variants (control first)")
    for v in names:
        if not LABEL_RE.match(v or ""):
            raise InvalidInput(f"invalid variant name {v!r}: use a lowercase name such as 'warm'")
    if len(set(names)) != len(names):
        raise InvalidInput("two variants share a name; give each variant its own")
    counts = parse_split(split, names)
    with db.write() as s:
        adapter = adapter_row(s, repo)
        lock_adapter(s, adapter.id)
        if _running(s, adapter.id, name) is not None:
            raise ExperimentExists(
                f"{repo} already runs an experiment {name!r}; conclude it or pick another name"
            )
        pinned = [(v, ref, _variant_version(s, repo, ref)) for v, ref in variants]
        bases = {row.base_model for _, _, row in pinned}
        if None in bases or len(bases) != 1:
            described = ", ".join(f"{v}: {row.base_model or 'none'}" for v, _, row in pinned)
            raise VariantBaseMismatch(
                f"every variant must be trained on the same base model ({described})"
            )
        row = Experiment(
            adapter_id=adapter.id,
            name=name,
            state="running",
            base_model=str(bases.pop()),
            salt=secrets.token_hex(8),
            metric=metric,
            description=reason,
            ranges=[r.as_list() for r in initial_ranges(counts)],
            period=0,
            created_by=principal.name,
        )
        row.variants = [
            ExperimentVariant(name=v, position=i, version_id=version.id, ref=ref[:200])
            for i, (v, ref, version) in enumerate(pinned)
        ]
        s.add(row)
        try:
            s.flush()
        except exc.IntegrityError:  # a racing create took the name (partial unique index)
            raise ExperimentExists(f"{repo} already runs an experiment {name!r}") from None
        split_doc = {v: counts[v] / 100 for v in names}
        _event(
            s,
            row,
            "experiment.created",
            principal,
            {
                "variants": {v: version.number for v, _, version in pinned},
                "split": split_doc,
                "metric": metric,
                "reason": reason,
            },
        )
        return experiment_info(s, row)


def ramp(
    db: Database,
    repo: Repo,
    name: str,
    *,
    split: str | Sequence[object],
    principal: Principal,
    reason: str | None = None,
) -> ExperimentInfo:
    """A new split that moves as few subjects as possible (``assignment.ramp_ranges``)."""
    principal.require("maintainer")
    principal.require_namespace(repo.namespace)
    _check_reason(reason)
    with db.write() as s:
        row = _locked_running(s, repo, name, doing="ramp")
        names = [v.name for v in row.variants]
        counts = parse_split(split, names)
        before = experiment_info(s, row)
        row.ranges = [r.as_list() for r in ramp_ranges(ranges_from_rows(row.ranges), counts)]
        row.period += 1
        s.flush()
        _event(
            s,
            row,
            "experiment.ramped",
            principal,
            {
                "from": {v.name: v.percent for v in before.variants},
                "to": {v: counts[v] / 100 for v in names},
                "period": row.period,
                "reason": reason,
            },
        )
        return experiment_info(s, row)


def record(
    db: Database,
    repo: Repo,
    name: str,
    *,
    variant: str,
    metric: str | None = None,
    successes: int | None = None,
    trials: int | None = None,
    n: int | None = None,
    mean: float | None = None,
    variance: float | None = None,
    principal: Principal,
) -> ExperimentInfo:
    """Add outcomes of one variant: counts (``successes``/``trials``) for a rate, or summary
    statistics (``n``, ``mean``, ``variance``) for a continuous metric. They add up."""
    principal.require("writer")
    principal.require_namespace(repo.namespace)
    kind = _outcome_kind(successes, trials, n, mean, variance)
    with db.write() as s:
        row = _locked_running(s, repo, name, doing="record outcomes for")
        metric = _check_metric(metric or row.metric)
        v = variant_row(row, variant)
        earlier = s.scalar(
            select(ExperimentOutcome.kind)
            .where(ExperimentOutcome.experiment_id == row.id, ExperimentOutcome.metric == metric)
            .limit(1)
        )
        if earlier is not None and earlier != kind:
            raise InvalidInput(
                f"metric {metric!r} holds {earlier} outcomes; record it the same way"
                " (successes/trials for a rate, n/mean/variance for a mean)"
            )
        s.add(
            ExperimentOutcome(
                experiment_id=row.id,
                variant_id=v.id,
                metric=metric,
                kind=kind,
                successes=successes,
                trials=trials,
                n=n,
                mean=mean,
                variance=variance,
                period=row.period,
                recorded_by=principal.name,
            )
        )
        payload: dict[str, object] = {"variant": variant, "metric": metric, "kind": kind}
        if kind == "rate":
            payload.update(successes=successes, trials=trials)
        else:
            payload.update(n=n, mean=mean, variance=variance)
        _event(s, row, "experiment.recorded", principal, payload)
        return experiment_info(s, row)


def preview_conclusion(
    db: Database,
    repo: Repo,
    name: str,
    *,
    winner: str,
    reason: str | None = None,
    store: BlobStore | None = None,
) -> GatePreview:
    """The gates concluding with ``winner`` would meet (nothing changes but the
    interference cache: with ``store``, pairs the policy bounds and the cache lacks are
    computed first, as the promotion would)."""
    if store is not None:
        with db.read() as s:
            v = variant_row(experiment_row(s, repo, name), winner)
            number = s.scalar(
                select(m.AdapterVersion.number).where(m.AdapterVersion.id == v.version_id)
            )
        if number is not None:
            prepare_gates(
                db,
                store,
                Ref(repo, number=number),
                to="production",
                principal=None,  # the caller checked the repository's namespace
            )
    with db.read() as s:
        row = experiment_row(s, repo, name)
        v = variant_row(row, winner)
        _, rules = effective_policy(s, repo.namespace, repo.name)
        version = s.get(m.AdapterVersion, v.version_id) if v.version_id is not None else None
        if version is None:
            return GatePreview(
                winner=winner, version=None, unmet=["the version was erased"], role=rules.role
            )
        unmet: list[str] = []
        if version.stage != "production":  # the same plan the promotion itself acts on
            plan = plan_promotion(s, version, to="production", reason=reason)
            unmet = plan.unmet + ([plan.blocked] if plan.blocked else [])
        return GatePreview(winner=winner, version=version.number, unmet=unmet, role=rules.role)


def conclude(
    db: Database,
    repo: Repo,
    name: str,
    *,
    winner: str,
    principal: Principal,
    reason: str | None = None,
    store: BlobStore | None = None,
) -> Conclusion:
    """Promote ``winner`` to production through the adapter's policy, then end the
    experiment with the decision and its statistics in the history. GateFailed or
    Forbidden leave the experiment running and nothing changed."""
    from registry.experiments.report import report  # the statistics, kept with the decision

    principal.require_namespace(repo.namespace)
    _check_reason(reason)
    with db.read() as s:
        row = experiment_row(s, repo, name)
        if row.state != "running":
            raise ExperimentConcluded(_ended_message(row))
        v = variant_row(row, winner)
        number = s.scalar(
            select(m.AdapterVersion.number).where(m.AdapterVersion.id == v.version_id)
        )
        experiment_id, adapter_id = row.id, row.adapter_id
    if number is None:
        raise InvalidReference(f"variant {winner!r}'s version was erased; pick another winner")
    stats = report(db, repo, name, history=False)
    if store is not None:  # interference pairs the policy bounds and the cache lacks
        prepare_gates(db, store, Ref(repo, number=number), to="production", principal=principal)
    # One transaction: the promotion and the experiment's end commit together or not at all.
    with db.write() as s:
        lock_adapter(s, adapter_id)
        row = s.get_one(Experiment, experiment_id)
        s.refresh(row)
        if row.state != "running":  # a racing conclude got there first
            raise ExperimentConcluded(_ended_message(row))
        result = promote_in(
            s,
            Ref(repo, number=number),
            to="production",
            principal=principal,
            reason=f"experiment {name}: {reason}" if reason else f"experiment {name}",
        )
        row.state, row.winner = "concluded", winner
        row.ended_by, row.ended_at = principal.name, datetime.now(UTC)
        row.conclusion = {
            "metrics": [mr.model_dump(mode="json") for mr in stats.metrics],
            "srm": stats.srm.model_dump(mode="json") if stats.srm else None,
        }
        s.flush()
        _event(
            s,
            row,
            "experiment.concluded",
            principal,
            {
                "winner": winner,
                "version": number,
                "promoted": not result.unchanged,
                "replaced": result.archived,
                "reason": reason,
                "statistics": row.conclusion,
            },
            version=number,
        )
        info = experiment_info(s, row)
    return Conclusion(
        experiment=info,
        winner=winner,
        version=number,
        promoted=not result.unchanged,
        archived=result.archived,
    )


def list_experiments(
    db: Database, repo: Repo, *, running_only: bool = False
) -> list[ExperimentInfo]:
    with db.read() as s:
        adapter = adapter_row(s, repo)
        q = select(Experiment).where(Experiment.adapter_id == adapter.id)
        if running_only:
            q = q.where(Experiment.state == "running")
        rows = s.scalars(q.order_by(Experiment.id.desc()).limit(500)).all()
        return [experiment_info(s, r) for r in rows]


def running_for_version(session: Session, version_id: int) -> list[Experiment]:
    """Running experiments with a variant on this version."""
    return list(
        session.scalars(
            select(Experiment)
            .join(ExperimentVariant, ExperimentVariant.experiment_id == Experiment.id)
            .where(ExperimentVariant.version_id == version_id, Experiment.state == "running")
            .order_by(Experiment.id)
        ).unique()
    )


def experiments_using(db: Database, ref: Ref) -> list[ExperimentInfo]:
    """Every experiment (running first) with a variant on the version ``ref`` names."""
    from registry.catalog.queries import ref_row

    with db.read() as s:
        version = ref_row(s, ref)
        rows = s.scalars(
            select(Experiment)
            .join(ExperimentVariant, ExperimentVariant.experiment_id == Experiment.id)
            .where(ExperimentVariant.version_id == version.id)
            .order_by(Experiment.id.desc())
        ).unique()
        infos = [experiment_info(s, r) for r in rows]
    return sorted(infos, key=lambda e: e.state != "running")


def end_experiments(
    db: Database, repo: Repo, names: Sequence[str], *, principal: Principal, why: str
) -> None:
    """End running experiments without a winner (a promotion made the decision)."""
    with db.write() as s:
        adapter = adapter_row(s, repo)
        for name in names:
            row = _running(s, adapter.id, name)
            if row is not None:
                _end(s, row, principal=principal, why=why)


def _end(s: Session, row: Experiment, *, principal: Principal, why: str) -> None:
    row.state, row.ended_by, row.ended_at = "ended", principal.name, datetime.now(UTC)
    s.flush()
    _event(s, row, "experiment.ended", principal, {"reason": why})


def _running(s: Session, adapter_id: int, name: str) -> Experiment | None:
    return s.scalar(
        select(Experiment).where(
            Experiment.adapter_id == adapter_id,
            Experiment.name == name,
            Experiment.state == "running",
        )
    )


def _locked_running(s: Session, repo: Repo, name: str, *, doing: str) -> Experiment:
    row = experiment_row(s, repo, name)
    lock_adapter(s, row.adapter_id)  # serialise with ramps, conclusions and promotions
    s.refresh(row)
    if row.state != "running":
        raise ExperimentConcluded(f"cannot {doing} {name!r}: " + _ended_message(row))
    return row


def _ended_message(row: Experiment) -> str:
    if row.state == "concluded":
        return f"experiment {row.name!r} was concluded (winner {row.winner}); start a new one"
    return f"experiment {row.name!r} has ended; start a new one"


def _variant_version(s: Session, repo: Repo, ref: str) -> m.AdapterVersion:
    text = ref.strip()
    prefix = f"{repo}"
    if text.startswith(prefix) and text[len(prefix) : len(prefix) + 1] in (":", "@"):
        text = text[len(prefix) :]
    elif "/" in text:
        raise InvalidReference(
            f"variant {ref!r} names another adapter; every variant is a version of {repo}"
        )
    return version_row(s, repo, text.lstrip(":@") or "latest")


def _outcome_kind(
    successes: int | None,
    trials: int | None,
    n: int | None,
    mean: float | None,
    variance: float | None,
) -> str:
    rate = successes is not None or trials is not None
    cont = n is not None or mean is not None or variance is not None
    if rate == cont:
        raise InvalidInput(
            "record either --successes and --trials (a rate) or --n, --mean and --variance (a mean)"
        )
    if rate:
        if successes is None or trials is None:
            raise InvalidInput("a rate needs both successes and trials")
        _check_count("successes", successes)
        _check_count("trials", trials)
        if successes > trials:
            raise SuccessesOverTrials(
                f"{successes} successes out of {trials} trials: successes cannot exceed trials"
            )
        return "rate"
    if n is None or mean is None or variance is None:
        raise InvalidInput("a mean needs n, mean and variance")
    _check_count("n", n)
    for what, value in (("mean", mean), ("variance", variance)):
        if not math.isfinite(value) or abs(value) > 1e300:
            raise InvalidInput(f"{what} must be a finite number")
    if variance < 0:
        raise NegativeCount(f"variance {variance:g} is negative; send the sample variance")
    return "mean"


def _check_count(what: str, value: int) -> None:
    if value < 0:
        raise NegativeCount(f"{what} is {value}; counts cannot be negative")
    if value > MAX_COUNT:
        raise InvalidInput(f"{what} is over {MAX_COUNT:,} in one record; split it")


def _check_metric(metric: str) -> str:
    if not metric or len(metric) > METRIC_MAX or not metric.isprintable():
        raise InvalidInput(f"a metric name is 1 to {METRIC_MAX} printable characters")
    return metric


def _check_reason(reason: str | None) -> None:
    if reason is not None and len(reason) > MAX_REASON:
        raise InvalidInput(f"reason is over {MAX_REASON} characters")


def _event(
    s: Session,
    row: Experiment,
    kind: str,
    principal: Principal,
    payload: dict[str, object],
    *,
    version: int | None = None,
) -> None:
    s.add(
        m.Event(
            kind=kind,
            namespace=row.adapter.namespace.name,
            adapter=row.adapter.name,
            version=version,
            actor=principal.name,
            payload={"experiment": row.name, "experiment_id": row.id, **payload},
        )
    )


def promote_guarded(
    db: Database,
    ref: Ref,
    *,
    to: str,
    principal: Principal,
    reason: str | None = None,
    end_experiment: bool = False,
    store: BlobStore | None = None,
) -> tuple[Promotion, list[str]]:
    """``stages.promote``, refused (ExperimentRunning) when the version is a variant of a
    running experiment unless ``end_experiment``; then those experiments end, recorded
    with the promotion as the reason, in the promotion's own transaction (an experiment
    started meanwhile is seen, and a failure leaves neither change). Returns the promotion
    and the experiments ended."""
    from registry.catalog.queries import ref_row

    if store is not None:  # interference pairs the policy bounds and the cache lacks
        prepare_gates(db, store, ref, to=to, principal=principal)
    with db.write() as s:
        version = ref_row(s, ref)
        lock_adapter(s, version.adapter_id)  # serialise with experiment creation and ramps
        running = running_for_version(s, version.id) if to in ("production", "archived") else []
        names = [r.name for r in running]
        if names and not end_experiment:
            raise ExperimentRunning(
                f"{ref} is a variant of the running experiment(s) {', '.join(names)}; conclude"
                " them (`lorareg experiment conclude`) or promote with --end-experiment",
                details={"experiments": names},
            )
        result = promote_in(s, ref, to=to, principal=principal, reason=reason)
        if result.unchanged:
            return result, []
        why = f"{ref} promoted to {to} with --end-experiment" + (f": {reason}" if reason else "")
        for row in running:
            _end(s, row, principal=principal, why=why)
        return result, names

"""``experiment show``: per metric and variant the statistics, the SRM check, the history."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from registry.catalog.records import event_info
from registry.catalog.refs import Repo
from registry.db import models as m
from registry.db.database import Database
from registry.db.experiment_models import ExperimentOutcome
from registry.experiments import stats
from registry.experiments.domain import (
    ExperimentReport,
    MetricReport,
    SampleRatioCheck,
    VariantStats,
)
from registry.experiments.records import experiment_info, experiment_row

_HISTORY_LIMIT = 500


def report(db: Database, repo: Repo, name: str, *, history: bool = True) -> ExperimentReport:
    with db.read() as s:
        row = experiment_row(s, repo, name)
        info = experiment_info(s, row)
        names = {v.id: v.name for v in row.variants}
        rates: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        means: dict[str, dict[str, stats.Summary]] = defaultdict(dict)
        # Rates add up in SQL; summaries are combined exactly in Python (few rows per batch).
        for variant_id, metric, succ, trials in s.execute(
            select(
                ExperimentOutcome.variant_id,
                ExperimentOutcome.metric,
                func.sum(ExperimentOutcome.successes),
                func.sum(ExperimentOutcome.trials),
            )
            .where(ExperimentOutcome.experiment_id == row.id, ExperimentOutcome.kind == "rate")
            .group_by(ExperimentOutcome.variant_id, ExperimentOutcome.metric)
        ):
            rates[metric][names[variant_id]] = [int(succ or 0), int(trials or 0)]
        for o in s.scalars(
            select(ExperimentOutcome)
            .where(ExperimentOutcome.experiment_id == row.id, ExperimentOutcome.kind == "mean")
            .order_by(ExperimentOutcome.id)
        ):
            batch = stats.Summary(int(o.n or 0), float(o.mean or 0), float(o.variance or 0))
            have = means[o.metric].get(names[o.variant_id])
            means[o.metric][names[o.variant_id]] = batch if have is None else have + batch
        period = dict(
            s.execute(
                select(
                    ExperimentOutcome.variant_id,
                    func.sum(func.coalesce(ExperimentOutcome.trials, ExperimentOutcome.n)),
                )
                .where(
                    ExperimentOutcome.experiment_id == row.id,
                    ExperimentOutcome.metric == row.metric,
                    ExperimentOutcome.period == row.period,
                )
                .group_by(ExperimentOutcome.variant_id)
            ).all()
        )
        events = []
        if history:
            events = [
                event_info(e)
                for e in s.scalars(
                    select(m.Event)
                    .where(
                        m.Event.namespace == repo.namespace,
                        m.Event.adapter == repo.name,
                        m.Event.kind.like("experiment.%"),
                    )
                    .order_by(m.Event.id.desc())
                    .limit(_HISTORY_LIMIT * 4)
                )
                if (e.payload or {}).get("experiment_id") == row.id
            ][:_HISTORY_LIMIT][::-1]
    order = [v.name for v in info.variants]
    versions = {v.name: v.version for v in info.variants}
    metrics = [_rate_report(metric, rates[metric], order, versions) for metric in sorted(rates)]
    metrics += [_mean_report(metric, means[metric], order, versions) for metric in sorted(means)]
    metrics.sort(key=lambda mr: (mr.metric != info.metric, mr.metric))
    exposures = {names[k]: int(v or 0) for k, v in period.items()}
    srm = None
    if info.state == "running" or exposures:
        ratio = stats.sample_ratio(exposures, {v.name: v.percent for v in info.variants})
        if ratio is not None:
            srm = SampleRatioCheck(
                period=info.period,
                exposures={v: exposures.get(v, 0) for v in order},
                expected=ratio.expected,
                chi2=ratio.chi2,
                p_value=ratio.p_value,
                mismatch=ratio.mismatch,
            )
    return ExperimentReport(experiment=info, metrics=metrics, srm=srm, history=events)


def _rate_report(
    metric: str,
    counts: dict[str, list[int]],
    order: list[str],
    versions: dict[str, int | None],
) -> MetricReport:
    s_c, n_c = counts.get(order[0], [0, 0])
    out = []
    for i, v in enumerate(order):
        succ, trials = counts.get(v, [0, 0])
        ci = stats.wilson_interval(succ, trials)
        cmp = None if i == 0 else stats.compare_rates(succ, trials, s_c, n_c)
        out.append(
            VariantStats(
                variant=v,
                version=versions[v],
                control=i == 0,
                kind="rate",
                exposures=trials,
                successes=succ,
                value=succ / trials if trials else None,
                low=ci.low if trials else None,
                high=ci.high if trials else None,
                **_comparison(cmp),
            )
        )
    return MetricReport(metric=metric, kind="rate", variants=out)


def _mean_report(
    metric: str,
    summaries: dict[str, stats.Summary],
    order: list[str],
    versions: dict[str, int | None],
) -> MetricReport:
    empty = stats.Summary(0, 0.0, 0.0)
    control = summaries.get(order[0], empty)
    out = []
    for i, v in enumerate(order):
        summary = summaries.get(v, empty)
        ci = stats.mean_interval(summary)
        cmp = None if i == 0 else stats.compare_means(summary, control)
        out.append(
            VariantStats(
                variant=v,
                version=versions[v],
                control=i == 0,
                kind="mean",
                exposures=summary.n,
                value=summary.mean if summary.n else None,
                low=ci.low if summary.n >= 2 else None,
                high=ci.high if summary.n >= 2 else None,
                **_comparison(cmp),
            )
        )
    return MetricReport(metric=metric, kind="mean", variants=out)


def _comparison(cmp: stats.Comparison | None) -> dict[str, Any]:
    if cmp is None:
        return {}
    return {
        "lift": cmp.lift,
        "lift_low": cmp.lift_interval.low,
        "lift_high": cmp.lift_interval.high,
        "p_value": cmp.p_value,
        "chance_to_beat": cmp.chance_to_beat,
    }

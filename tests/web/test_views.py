"""Page shaping without a server: eval columns, compare rows and deltas, chart geometry,
and the formatting filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from registry.domain import EvalRecord, JobState, VersionInfo
from registry.merge.job_queue import JobInfo
from registry.web.chart import HEIGHT, TOP, eval_charts
from registry.web.check_views import check_views
from registry.web.format import age, human_size, number, signed
from registry.web.job_pages import progress_text
from registry.web.views import config_rows, eval_deltas, key_metrics, target_diff

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def version(n: int, *, evals: list[EvalRecord] | None = None, **kw: Any) -> VersionInfo:
    fields: dict[str, Any] = dict(
        namespace="acme",
        name="voice",
        number=n,
        content_id=f"{n:040x}",
        base_model="tiny-llama",
        peft_type="LORA",
        r=4,
        lora_alpha=8.0,
        target_modules=["q_proj", "v_proj"],
        config={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        size=1000,
        file_count=2,
        author="alice",
        description=None,
        parent=n - 1 or None,
        created_at=NOW,
        evals=evals or [],
    )
    fields.update(kw)
    return VersionInfo(**fields)


def ev(metric: str, value: float, **kw: Any) -> EvalRecord:
    return EvalRecord(metric=metric, value=value, **kw)


def test_key_metrics_prefer_the_most_scored() -> None:
    vs = [
        version(1, evals=[ev("acc", 0.5), ev("bleu", 20)]),
        version(2, evals=[ev("acc", 0.6), ev("acc", 0.65), ev("f1", 0.3, dataset="squad")]),
        version(3, evals=[ev("acc", 0.7), ev("f1", 0.4, dataset="squad")]),
    ]
    assert key_metrics(vs) == ["acc", "f1 (squad)", "bleu"]
    assert key_metrics(vs, limit=1) == ["acc"]


def test_eval_deltas_respect_direction() -> None:
    a = version(1, evals=[ev("acc", 0.5), ev("loss", 2.0, higher_is_better=False), ev("x", 1)])
    b = version(2, evals=[ev("acc", 0.6), ev("loss", 2.5, higher_is_better=False), ev("y", 1)])
    got = {d.label: (d.delta, d.verdict) for d in eval_deltas(a, b)}
    assert got["acc"][1] == "better" and abs((got["acc"][0] or 0) - 0.1) < 1e-9
    assert got["loss"] == (0.5, "worse")
    assert got["x"] == (None, "") and got["y"] == (None, "")


def test_config_and_targets_side_by_side() -> None:
    a = version(1)
    b = version(
        2,
        r=8,
        target_modules=["q_proj", "k_proj"],
        config={"r": 8, "lora_alpha": 8, "target_modules": ["k_proj", "q_proj"], "use_dora": True},
    )
    rows = config_rows(a, b)
    assert [r.key for r in rows if r.differs] == ["r", "target_modules", "use_dora"]
    assert rows[-1].key == "lora_alpha" and not rows[-1].differs
    assert next(r for r in rows if r.key == "use_dora").a == "–"
    t = target_diff(a, b)
    assert (t.common, t.only_a, t.only_b) == (["q_proj"], ["v_proj"], ["k_proj"])


def test_charts_one_per_metric_scaled_to_its_own_range() -> None:
    vs = [version(n, evals=[ev("acc", 0.5 + n / 10)]) for n in (3, 1, 2)]
    vs.append(version(4, evals=[ev("ppl", 12.0, higher_is_better=False)]))
    acc, ppl = eval_charts(vs, ["acc", "ppl"])
    assert [p.version for p in acc.points] == [1, 2, 3]  # oldest on the left
    xs = [p.x for p in acc.points]
    ys = [p.y for p in acc.points]
    assert xs == sorted(xs) and ys == sorted(ys, reverse=True)  # rising scores go up
    assert all(TOP <= y <= HEIGHT for y in ys)
    assert [t.text for t in acc.y_ticks] == ["0.6", "0.8"]
    assert [t.text for t in acc.x_ticks] == ["v1", "v2", "v3", "v4"]
    # One point on a flat range still lands inside the frame, and says which way is up.
    assert len(ppl.points) == 1 and TOP < ppl.points[0].y < HEIGHT and not ppl.higher_is_better
    assert eval_charts(vs, ["missing"]) == [] and eval_charts([], ["acc"]) == []


def test_formatting() -> None:
    assert human_size(999) == "999 B" and human_size(10_900) == "10.9 KB"
    assert number(16.0) == "16" and number(0.123456) == "0.1235" and number(True) == "true"
    assert signed(0.5) == "+0.5" and signed(-2.0) == "-2"
    assert age(NOW - timedelta(hours=3), now=NOW) == "3h ago"
    naive = (NOW - timedelta(days=2)).replace(tzinfo=None)  # SQLite hands these back
    assert age(naive, now=NOW) == "2d ago"


def test_check_findings_worst_first_and_trained_on_base_first() -> None:
    def result(base: str, *severities: str) -> dict[str, Any]:
        findings = [
            {"code": f"c.{i}", "severity": s, "message": s} for i, s in enumerate(severities)
        ]
        engines = {"vllm": {"display_name": "vLLM", "verdict": "warn", "summary": "vLLM: ok"}}
        return {
            "base_model": base,
            "verdict": "fail",
            "created_at": "2026-03-01T00:00:00+00:00",
            "created_by": "t",
            "report": {"findings": findings, "engines": engines},
        }

    (view,) = check_views([result("b", "info", "pass", "warn", "fail", "warn")], trained_on="b")
    assert [f.severity for f in view.problems] == ["fail", "warn", "warn", "info"]
    assert [f.code for f in view.problems[1:3]] == ["c.2", "c.4"]  # stable within a severity
    assert [f.code for f in view.passed] == ["c.1"]
    assert view.engines[0].name == "vLLM" and view.created_at == NOW
    ordered = check_views([result("a"), result("z"), result("m")], trained_on="z")
    assert [c.base_model for c in ordered] == ["z", "a", "m"]


def test_job_progress_text() -> None:
    def job(state: str, progress: float, status: dict[str, Any]) -> JobInfo:
        return JobInfo(
            id=1, kind="merge", state=JobState(state), spec={}, progress=progress, status=status,
            attempts=1, error=None, result=None, output=None, worker_id="w", created_by="t",
            created_at=NOW, started_at=NOW, finished_at=None,
        )  # fmt: skip

    live = {"shards_done": 2, "shards_total": 4, "rate_bytes_s": 12.5e6, "eta_s": 9.6}
    assert (
        progress_text(job("running", 0.55, live))
        == "55% · shard 3 of 4 · 12.5 MB/s · about 10 s left"
    )
    assert progress_text(job("running", 0.0, {"phase": "preparing"})) == "0% · preparing"
    assert progress_text(job("queued", 0.0, {})) == "0%"
    assert progress_text(job("succeeded", 1.0, {**live, "shards_done": 4})) == "100% · shard 4 of 4"

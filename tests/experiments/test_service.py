"""Experiments through both clients on both databases: the whole flow, bad input, gates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from registry import errors
from registry.catalog.refs import parse_ref, parse_repo
from registry.experiments import service
from registry.principal import Principal
from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state

BASE = "meta-llama/Llama-3.1-8B"
REPO = "acme/brand-voice"
ADMIN = Principal(name="lead", role="admin")


@pytest.fixture
def voices(client: Any, runtime: Runtime, adapter_library: dict[str, Path]) -> Any:
    for key in ("v1", "v2", "r8"):
        client.push(adapter_library[key], REPO, base=BASE)
    client.promote(f"{REPO}:1", to="production", reason="baseline")
    return client


def _create(c: Any, name: str = "tone-test", split: str = "80,10,10") -> Any:
    return c.experiment_create(
        REPO,
        name,
        variants=[("control", "@production"), ("warm", "2"), ("formal", "v3")],
        split=split,
        metric="conversion",
        reason="Q1 campaign tones",
    )


def test_create_assign_ramp_record_show_conclude(voices: Any, runtime: Runtime) -> None:
    c = voices
    info = _create(c)
    assert [(v.name, v.version, v.percent, v.control) for v in info.variants] == [
        ("control", 1, 80.0, True),
        ("warm", 2, 10.0, False),
        ("formal", 3, 10.0, False),
    ]
    assert info.state == "running" and info.base_model == BASE and len(info.salt) == 16
    # assign() answers like the server's own endpoint, for many subjects.
    seen = {}
    for i in range(300):
        a = c.assign(REPO, "tone-test", f"client-{i}")
        assert a.version == {"control": 1, "warm": 2, "formal": 3}[a.variant]
        seen[f"client-{i}"] = a.variant
    assert set(seen.values()) == {"control", "warm", "formal"}

    ramped = c.experiment_ramp(REPO, "tone-test", split="50,25,25", reason="looks safe")
    assert [v.percent for v in ramped.variants] == [50.0, 25.0, 25.0] and ramped.period == 1
    if hasattr(c, "forget_experiments"):  # the remote client keeps definitions
        c.forget_experiments()
    for subject, variant in seen.items():
        if variant != "control":  # treatments grew: their subjects stay
            assert c.assign(REPO, "tone-test", subject).variant == variant

    c.experiment_record(REPO, "tone-test", variant="control", successes=500, trials=5000)
    c.experiment_record(REPO, "tone-test", variant="warm", successes=300, trials=2500)
    c.experiment_record(REPO, "tone-test", variant="warm", successes=30, trials=100)
    c.experiment_record(REPO, "tone-test", variant="formal", successes=240, trials=2500)
    c.experiment_record(
        REPO, "tone-test", variant="warm", metric="revenue", n=100, mean=5.0, variance=4.0
    )
    c.experiment_record(
        REPO, "tone-test", variant="control", metric="revenue", n=200, mean=4.5, variance=4.0
    )
    report = c.experiment_show(REPO, "tone-test")
    conversion = report.metrics[0]
    assert conversion.metric == "conversion" and conversion.kind == "rate"
    warm = {v.variant: v for v in conversion.variants}["warm"]
    assert (warm.successes, warm.exposures) == (330, 2600)  # records add up
    assert warm.value == pytest.approx(330 / 2600)
    assert warm.lift == pytest.approx(330 / 2600 - 0.1)
    assert warm.low < warm.value < warm.high and 0 <= warm.p_value < 0.05
    assert warm.chance_to_beat > 0.99
    revenue = report.metrics[1]
    assert revenue.kind == "mean" and {v.variant: v.exposures for v in revenue.variants} == {
        "control": 200,
        "warm": 100,
        "formal": 0,
    }
    assert report.srm is not None and report.srm.period == 1 and not report.srm.mismatch
    kinds = [e.kind for e in report.history]
    assert kinds[:2] == ["experiment.created", "experiment.ramped"]
    assert kinds.count("experiment.recorded") == 6
    assert report.history[1].payload["reason"] == "looks safe"

    assert [e.name for e in c.experiments_of(f"{REPO}:2")] == ["tone-test"]
    done = c.experiment_conclude(REPO, "tone-test", winner="warm", reason="lift +2.7 pts")
    assert (done.version, done.promoted, done.archived) == (2, True, 1)
    assert done.experiment.state == "concluded" and done.experiment.winner == "warm"
    assert c.show(f"{REPO}@production").number == 2
    assert c.show(f"{REPO}:3").stage is None  # the loser keeps its version, not archived
    concluded = [e for e in c.history(REPO) if e.kind == "experiment.concluded"][0]
    assert concluded.payload["statistics"]["metrics"][0]["metric"] == "conversion"
    assert concluded.payload["reason"] == "lift +2.7 pts"
    if hasattr(c, "forget_experiments"):
        c.forget_experiments()
    a = c.assign(REPO, "tone-test", "client-1")
    assert (a.variant, a.version, a.state) == (None, 2, "concluded")
    # The name is free again; the concluded experiment stays listed.
    _create(c)
    assert [e.state for e in c.experiment_list(REPO)] == ["running", "concluded"]
    assert [e.state for e in c.experiment_list(REPO, running=True)] == ["running"]


def test_bad_input_each_with_its_code_and_nothing_changed(
    voices: Any, runtime: Runtime, client_kind: str
) -> None:
    c = voices
    _create(c)
    before = catalog_state(runtime)
    bad = [
        (errors.InvalidSplit, lambda: _create(c, "other", split="80,10,5")),
        (errors.ExperimentExists, lambda: _create(c)),
        (
            errors.UnknownVariant,
            lambda: c.experiment_record(REPO, "tone-test", variant="loud", successes=1, trials=2),
        ),
        (
            errors.NegativeCount,
            lambda: c.experiment_record(REPO, "tone-test", variant="warm", successes=-1, trials=2),
        ),
        (
            errors.SuccessesOverTrials,
            lambda: c.experiment_record(REPO, "tone-test", variant="warm", successes=3, trials=2),
        ),
        (errors.InvalidSubject, lambda: c.assign(REPO, "tone-test", "x" * 257)),
        (errors.InvalidSubject, lambda: c.assign(REPO, "tone-test", "a\x01b")),
        (errors.ExperimentNotFound, lambda: c.experiment_show(REPO, "nope")),
        (errors.UnknownVariant, lambda: c.experiment_conclude(REPO, "tone-test", winner="x")),
        (errors.InvalidSplit, lambda: c.experiment_ramp(REPO, "tone-test", split="50,50")),
    ]
    for expected, call in bad:
        with pytest.raises(expected) as info:
            call()
        assert type(info.value) is expected, (expected, info.value)
    assert catalog_state(runtime) == before


def test_variant_on_another_base_and_concluded_outcomes_are_refused(
    voices: Any, runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    c = voices
    c.push(adapter_library["v2"], "acme/brand-voice", base="other-org/Other-1B")  # v4
    before = catalog_state(runtime)
    with pytest.raises(errors.VariantBaseMismatch):
        c.experiment_create(
            REPO,
            "cross",
            variants=[("control", "1"), ("other", "4")],
            split="50,50",
            metric="conversion",
        )
    assert catalog_state(runtime) == before
    c.experiment_create(
        REPO, "short", variants=[("control", "1"), ("b", "2")], split="50,50", metric="ctr"
    )
    c.experiment_conclude(REPO, "short", winner="control", reason="no lift")
    assert c.show(f"{REPO}@production").number == 1  # control stayed; nothing archived
    before = catalog_state(runtime)
    with pytest.raises(errors.ExperimentConcluded):
        c.experiment_record(REPO, "short", variant="b", successes=1, trials=2)
    with pytest.raises(errors.ExperimentConcluded):
        c.experiment_ramp(REPO, "short", split="0,100")
    assert catalog_state(runtime) == before


def test_conclude_goes_through_the_promotion_gates(voices: Any, runtime: Runtime) -> None:
    c = voices
    _create(c)
    c.set_policy(REPO, {"min_evals": {"bleu": 0.3}, "require_reason": True})
    preview = c.experiment_preview(REPO, "tone-test", winner="warm")
    assert any("bleu" in u for u in preview.unmet) and any("reason" in u for u in preview.unmet)
    before = catalog_state(runtime)
    with pytest.raises(errors.GateFailed) as info:
        c.experiment_conclude(REPO, "tone-test", winner="warm", reason="wins")
    assert "bleu" in info.value.message
    assert catalog_state(runtime) == before
    assert c.experiment_show(REPO, "tone-test").experiment.state == "running"
    from registry.domain import EvalRecord

    c.add_evals(f"{REPO}:2", [EvalRecord(metric="bleu", value=0.4)])
    assert c.experiment_preview(REPO, "tone-test", winner="warm", reason="ok").unmet == []
    done = c.experiment_conclude(REPO, "tone-test", winner="warm", reason="wins")
    assert done.promoted and c.show(f"{REPO}@production").number == 2


def test_concluding_needs_the_policy_role(voices: Any, runtime: Runtime) -> None:
    _create(voices)
    voices.set_policy(REPO, {"role": "admin"})
    before = catalog_state(runtime)
    writer = Principal(name="ci", role="maintainer")
    with pytest.raises(errors.Forbidden):
        service.conclude(runtime.db, parse_repo(REPO), "tone-test", winner="warm", principal=writer)
    with pytest.raises(errors.Forbidden):
        service.ramp(
            runtime.db,
            parse_repo(REPO),
            "tone-test",
            split="50,25,25",
            principal=Principal(name="w", role="writer"),
        )
    assert catalog_state(runtime) == before


def test_promoting_a_variant_asks_for_end_experiment(voices: Any, runtime: Runtime) -> None:
    c = voices
    _create(c)
    before = catalog_state(runtime)
    with pytest.raises(errors.ExperimentRunning) as info:
        c.promote(f"{REPO}:2", to="production", reason="impatient")
    assert "--end-experiment" in info.value.message
    assert catalog_state(runtime) == before
    c.promote(f"{REPO}:2", to="staging")  # harmless moves stay allowed
    result = c.promote(f"{REPO}:2", to="production", reason="ship it", end_experiment=True)
    assert result["experiments_ended"] == ["tone-test"] and result["archived"] == 1
    assert c.experiment_show(REPO, "tone-test").experiment.state == "ended"
    ended = [e for e in c.history(REPO) if e.kind == "experiment.ended"]
    assert len(ended) == 1 and "ship it" in ended[0].payload["reason"]


@pytest.mark.parametrize("how", ["conclude", "end_experiment"])
def test_a_failure_recording_the_end_leaves_no_promotion(
    voices: Any, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The promotion and the experiment's end are one transaction: when recording the end
    fails, production is still the old version and the experiment still runs."""
    c = voices
    _create(c)
    before = catalog_state(runtime)

    def broken(*args: object, **kwargs: object) -> None:
        raise errors.InternalError("recording the experiment's end failed")

    monkeypatch.setattr(service, "_event", broken)
    with pytest.raises(errors.InternalError):
        if how == "conclude":
            service.conclude(
                runtime.db, parse_repo(REPO), "tone-test", winner="warm", principal=ADMIN
            )
        else:
            service.promote_guarded(
                runtime.db,
                parse_ref(f"{REPO}:2"),
                to="production",
                principal=ADMIN,
                end_experiment=True,
            )
    monkeypatch.undo()
    assert catalog_state(runtime) == before
    assert c.show(f"{REPO}@production").number == 1
    assert c.experiment_show(REPO, "tone-test").experiment.state == "running"

"""Stages, aliases, gates and history through both clients on every backend."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from registry import errors
from registry.domain import EvalRecord, Stage
from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state

BASE = "meta-llama/Llama-3.1-8B"


@pytest.fixture
def three(client: Any, adapter_library: dict[str, Path]) -> Any:
    for key in ("v1", "v2", "r8"):
        client.push(adapter_library[key], "acme/voice", base=BASE)
    return client


def test_promote_archives_previous_production_and_rollback(three: Any) -> None:
    c = three
    r = c.promote("acme/voice:1", to="production", reason="first")
    assert r["version"]["stage"] == "production" and r["archived"] is None
    r = c.promote("acme/voice:2", to="production", reason="wins the A/B test")
    assert r["archived"] == 1
    assert c.show("acme/voice:1").stage == "archived"
    assert c.show("acme/voice@production").number == 2
    # Rollback is promoting the older version again.
    r = c.promote("acme/voice:1", to="production", reason="rollback")
    assert (r["previous_stage"], r["archived"]) == ("archived", 2)
    assert c.show("acme/voice@production", base=BASE).number == 1
    assert c.resolve("acme/voice", ref="production")["version"] == 1
    moves = [
        (e.version, e.payload["from"], e.payload["to"])
        for e in c.history("acme/voice")
        if e.kind == "stage.changed"
    ]
    assert moves == [
        (1, None, "production"),
        (1, "production", "archived"),
        (2, None, "production"),
        (2, "production", "archived"),
        (1, "archived", "production"),
    ]


def test_staging_and_labels(three: Any) -> None:
    c = three
    c.promote("acme/voice:2", to="staging")
    c.promote("acme/voice:3", to="staging")
    assert c.show("acme/voice@staging").number == 3  # newest in the stage
    with pytest.raises(errors.VersionNotFound):
        c.show("acme/voice@production")
    v = c.set_alias("acme/voice", "canary-b", 2, reason="A/B arm")
    assert v.aliases == ["canary-b"]
    assert c.show("acme/voice@canary-b").number == 2
    c.set_alias("acme/voice", "canary-b", 3)
    assert c.show("acme/voice@canary-b").number == 3
    assert c.show("acme/voice:2").aliases == []
    moves = [
        (e.payload["from"], e.payload["to"])
        for e in c.history("acme/voice")
        if e.kind == "alias.moved"
    ]
    assert moves == [(None, 2), (2, 3)]
    c.delete_alias("acme/voice", "canary-b")
    with pytest.raises(errors.VersionNotFound):
        c.show("acme/voice@canary-b")


@pytest.mark.parametrize("label", ["production", "main", "Bad Label", "x" * 80])
def test_invalid_aliases(three: Any, runtime: Runtime, label: str) -> None:
    before = catalog_state(runtime)
    with pytest.raises(errors.InvalidInput):
        three.set_alias("acme/voice", label, 1)
    assert catalog_state(runtime) == before


def test_bad_promotions_change_nothing(
    three: Any, runtime: Runtime, client: Any, adapter_library: dict[str, Path]
) -> None:
    before = catalog_state(runtime)
    with pytest.raises(errors.InvalidInput):
        three.promote("acme/voice:1", to="prod")
    with pytest.raises(errors.VersionNotFound):
        three.promote("acme/voice:9", to="production")
    with pytest.raises(errors.AdapterNotFound):
        three.promote("acme/none:1", to="production")
    assert catalog_state(runtime) == before
    client.push(adapter_library["v1"], "acme/nobase")  # base from config: tiny-llama
    client.push(adapter_library["v2"], "acme/nobase")


def test_policy_gates_list_every_unmet_condition(three: Any, runtime: Runtime) -> None:
    c = three
    c.add_evals(
        "acme/voice:1",
        [
            EvalRecord(metric="helpfulness", value=0.80),
            EvalRecord(metric="loss", value=1.0, higher_is_better=False),
        ],
    )
    c.promote("acme/voice:1", to="production")
    c.set_policy(
        "acme",
        {
            "min_evals": {"helpfulness": 0.75},
            "no_regression": ["helpfulness", "loss"],
            "tolerance": 0.01,
            "require_reason": True,
        },
    )
    c.add_evals(
        "acme/voice:2",
        [
            EvalRecord(metric="helpfulness", value=0.70),
            EvalRecord(metric="loss", value=1.5, higher_is_better=False),
        ],
    )
    before = catalog_state(runtime)
    with pytest.raises(errors.GateFailed) as info:
        c.promote("acme/voice:2", to="production")
    msg = str(info.value)
    for words in (
        "a reason is required",
        "helpfulness is 0.7, needs >= 0.75",
        "helpfulness regresses",
        "loss regresses",
    ):
        assert words in msg
    assert catalog_state(runtime) == before
    assert c.show("acme/voice@production").number == 1
    c.add_evals(
        "acme/voice:2",
        [
            EvalRecord(metric="helpfulness", value=0.85),
            EvalRecord(metric="loss", value=0.9, higher_is_better=False),
        ],
    )
    c.promote("acme/voice:2", to="production", reason="better on every metric")
    assert c.show("acme/voice@production").number == 2
    # The adapter's own policy wins over its namespace's.
    c.set_policy("acme/voice", {"min_evals": {"bleu": 0.3}})
    with pytest.raises(errors.GateFailed, match="eval bleu is required"):
        c.promote("acme/voice:3", to="production", reason="x")
    assert c.get_policy("acme/voice")["effective_from"] == "acme/voice"


def test_compatibility_gate(three: Any) -> None:
    three.set_policy("acme/voice", {"require_compatibility": True})
    with pytest.raises(errors.GateFailed, match="no compatibility check"):
        three.promote("acme/voice:1", to="production")


def test_invalid_policy_and_eval(three: Any) -> None:
    with pytest.raises(errors.InvalidInput, match="unknown stage"):
        three.set_policy("acme", {"stages": ["prod"]})
    with pytest.raises(errors.InvalidInput):
        three.set_policy("acme", {"min_evals": {"x": "high"}})
    with pytest.raises(errors.InvalidInput):
        three.set_policy("acme", {"surprise": 1})
    with pytest.raises(errors.InvalidInput, match="finite"):
        three.add_evals("acme/voice:1", [EvalRecord(metric="acc", value=float("nan"))])


def test_diff(three: Any) -> None:
    three.add_evals("acme/voice:1", [EvalRecord(metric="acc", value=0.5)])
    three.add_evals("acme/voice:3", [EvalRecord(metric="acc", value=0.75)])
    d = three.diff("acme/voice:1", "acme/voice:3")
    assert d["config"]["r"] == {"a": 4, "b": 8}
    assert d["evals"]["acc"] == {"a": 0.5, "b": 0.75, "delta": 0.25, "better": True}
    assert "adapter_model.safetensors" in d["files"]["changed"]


def test_racing_promotions_never_leave_two_productions(
    runtime: Runtime, adapter_library: dict[str, Path]
) -> None:
    from registry.client.local import LocalClient

    c = LocalClient(runtime)
    for key in ("v1", "v2", "r8"):
        c.push(adapter_library[key], "acme/race", base=BASE)
    errors_seen: list[BaseException] = []

    def promote(n: int) -> None:
        try:
            for _ in range(5):
                LocalClient(runtime).promote(f"acme/race:{n}", to="production")
        except BaseException as exc:  # collected and asserted below
            errors_seen.append(exc)

    threads = [threading.Thread(target=promote, args=(n,)) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors_seen == []
    stages = [c.show(f"acme/race:{n}").stage for n in (1, 2, 3)]
    assert stages.count(Stage.PRODUCTION) == 1 and stages.count(Stage.ARCHIVED) == 2

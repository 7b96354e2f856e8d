"""The interference bound of a promotion policy (``max_interference``), through both
clients on SQLite and PostgreSQL: refused above the bound with the figure, refused while
the figure is not computed, passed under it; the dashboard's confirmation page lists it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from cli.main import cli
from registry import errors
from registry.runtime import Runtime
from registry.server import create_app
from tests.factories import make_adapter
from tests.fixtures.catalog import catalog_state

BASE = "tiny-llama"


@pytest.fixture
def storage_backend() -> str:
    return "local"


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate")
    t = ["q_proj", "v_proj"]
    return {
        "compliance": make_adapter(root / "compliance", seed=21, r=4, target_modules=t),
        # Same factors, another alpha: the same direction (|cosine| 1), other content.
        "echo": make_adapter(root / "echo", seed=21, r=4, lora_alpha=4, target_modules=t),
        "fresh": make_adapter(root / "fresh", seed=22, r=4, target_modules=t),
    }


def _without_cache(state: dict[str, Any]) -> dict[str, Any]:
    """The catalog state but the interference cache (the gate fills it while refusing)."""
    rows = {k: v for k, v in state["rows"].items() if k != "interference_pairs"}
    return {**state, "rows": rows}


def test_max_interference_gate(
    client: Any,
    runtime: Runtime,
    adapters: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    c = client
    c.push(adapters["compliance"], "acme/compliance", base=BASE)
    c.push(adapters["echo"], "acme/voice", base=BASE)
    c.push(adapters["fresh"], "acme/voice", base=BASE)
    c.promote("acme/compliance:1", to="production")
    c.set_policy("acme", {"max_interference": {"compliance": 0.3}})

    # Nothing is cached: the gate computes the pair itself, refuses above the bound, and
    # keeps the figure (the promotion itself changes nothing).
    before = catalog_state(runtime)
    with pytest.raises(errors.GateFailed) as info:
        c.promote("acme/voice:1", to="production")
    msg = str(info.value)
    assert (
        "interference with acme/compliance:1 (production)" in msg and "above the bound 0.3" in msg
    )
    after = catalog_state(runtime)
    assert _without_cache(after) == _without_cache(before)
    assert after["rows"]["interference_pairs"] == before["rows"]["interference_pairs"] + 1

    # The library reads the gate's figure from the cache: the same number.
    lib = c.interference(["acme/voice:1", "acme/compliance:1"])
    assert (lib.computed_pairs, lib.cached_pairs) == (0, 1)
    echo = lib.pairs[0].max_abs_cosine
    assert echo > 0.999 and f"is {echo:.3f} on" in msg

    # The dashboard's confirmation page (plan_promotion) computes what it lacks too.
    with TestClient(create_app(runtime, background=False), base_url="http://127.0.0.1") as web:
        html = web.get("/ui/-/promote?ref=acme/voice:1&to=production").text
        assert f"is {echo:.3f} on" in html and "above the bound 0.3" in html
        html = web.get("/ui/-/promote?ref=acme/voice:2&to=production").text
        assert "above the bound" not in html and "All gates pass" in html
    lib = c.interference(["acme/voice:2", "acme/compliance:1"])
    assert (lib.computed_pairs, lib.cached_pairs) == (0, 1)
    assert lib.pairs[0].max_abs_cosine < 0.3

    r = c.promote("acme/voice:2", to="production")
    assert r["version"]["stage"] == "production"
    # A bound of 1 lets any version through; "ns/name" names the adapter too.
    c.set_policy("acme", {"max_interference": {"acme/compliance": 1.0}})
    c.promote("acme/voice:1", to="production")
    assert c.show("acme/voice@production").number == 1


def test_the_gate_computes_what_the_library_computes(
    runtime: Runtime, adapters: dict[str, Path]
) -> None:
    """The gate's numpy reading of the stored files and the library's torch path give the
    same figures, module by module (to 1e-6 of the norms' product)."""
    from registry.catalog.interference_pairs import cached_modules
    from registry.client.local import LocalClient
    from registry.library.factors import open_factors
    from registry.library.interference import pairwise

    c = LocalClient(runtime)
    c.push(adapters["compliance"], "acme/compliance", base=BASE)
    c.push(adapters["fresh"], "acme/voice", base=BASE)
    x, y = c.show("acme/compliance:1"), c.show("acme/voice:1")
    c.promote("acme/compliance:1", to="production")
    c.set_policy("acme", {"max_interference": {"compliance": 0.9}})
    c.promote("acme/voice:1", to="production")  # the gate computed and stored the pair
    with runtime.db.read() as s:
        stored = cached_modules(s, x.content_id, y.content_id)
    assert stored
    with open_factors([(adapters["compliance"], None), (adapters["fresh"], None)]) as src:
        ref = pairwise(src)[(0, 1)]
    flip = x.content_id > y.content_id
    assert set(stored) == set(ref)
    for module, (inner, nx, ny) in stored.items():
        m = ref[module].swapped() if flip else ref[module]
        scale = (m.norm_sq_x * m.norm_sq_y) ** 0.5
        assert abs(inner - m.inner) <= 1e-6 * scale
        assert abs(nx - m.norm_sq_x) <= 1e-6 * m.norm_sq_x
        assert abs(ny - m.norm_sq_y) <= 1e-6 * m.norm_sq_y


def test_the_gate_refuses_to_read_too_much(
    runtime: Runtime, adapters: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the gate's bound on weights read, the pair stays missing: unmet, saying why and
    what to run; once `lorareg interference` computed it, the gate uses it."""
    from registry.client.local import LocalClient
    from registry.lifecycle import interference_gate

    c = LocalClient(runtime)
    c.push(adapters["compliance"], "acme/compliance", base=BASE)
    c.push(adapters["fresh"], "acme/voice", base=BASE)
    c.promote("acme/compliance:1", to="production")
    c.set_policy("acme", {"max_interference": {"compliance": 0.3}})
    monkeypatch.setattr(interference_gate, "MAX_GATE_BYTES", 1000)
    before = catalog_state(runtime)
    with pytest.raises(errors.GateFailed) as info:
        c.promote("acme/voice:1", to="production")
    msg = str(info.value)
    assert "is not computed (the gate would read" in msg and "above its bound" in msg
    assert "run `lorareg interference acme/voice:1 acme/compliance:1`" in msg
    assert catalog_state(runtime) == before
    c.interference(["acme/voice:1", "acme/compliance:1"])
    assert c.promote("acme/voice:1", to="production")["version"]["stage"] == "production"


def test_cli_sets_the_bound_and_refuses_bad_ones(runtime: Runtime) -> None:
    st = runtime.settings
    env = {
        "LORAREG_HOME": str(st.home),
        "LORAREG_DATABASE_URL": st.effective_database_url,
        "LORAREG_STORAGE_URL": st.effective_storage_url,
        "LORAREG_URL": None,
    }
    run = CliRunner().invoke
    res = run(
        cli,
        ["policy", "set", "acme", "--max-interference", "compliance=0.3", "--json"],
        env=env,
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rules"]["max_interference"] == {"compliance": 0.3}
    for bad in ("compliance=1.5", "compliance=high", "Bad Name=0.2", "a/b/c=0.1"):
        res = run(cli, ["policy", "set", "acme", "--max-interference", bad], env=env)
        assert res.exit_code != 0 and "Traceback" not in res.output, bad
    res = run(cli, ["policy", "show", "acme", "--json"], env=env)
    assert json.loads(res.stdout)["rules"]["max_interference"] == {"compliance": 0.3}


def test_an_experiment_preview_and_conclusion_compute_the_pair(
    client: Any, runtime: Runtime, adapters: dict[str, Path]
) -> None:
    """Concluding an experiment goes through the same gate: its preview computes the
    missing pair and shows the real figure, and the conclusion is refused with it."""
    c = client
    c.push(adapters["compliance"], "acme/compliance", base=BASE)
    c.push(adapters["fresh"], "acme/voice", base=BASE)
    c.push(adapters["echo"], "acme/voice", base=BASE)
    c.promote("acme/compliance:1", to="production")
    c.promote("acme/voice:1", to="production")
    c.experiment_create(
        "acme/voice",
        "tone",
        variants=[("control", "@production"), ("echo", "2")],
        split="50,50",
        metric="conversion",
        reason="test",
    )
    c.set_policy("acme", {"max_interference": {"compliance": 0.3}})
    preview = c.experiment_preview("acme/voice", "tone", winner="echo")
    assert any("above the bound 0.3" in u for u in preview.unmet), preview.unmet
    assert not any("not computed" in u for u in preview.unmet)
    with pytest.raises(errors.GateFailed, match="above the bound 0.3"):
        c.experiment_conclude("acme/voice", "tone", winner="echo", reason="wins")

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


def test_max_interference_gate(client: Any, runtime: Runtime, adapters: dict[str, Path]) -> None:
    c = client
    c.push(adapters["compliance"], "acme/compliance", base=BASE)
    c.push(adapters["echo"], "acme/voice", base=BASE)
    c.push(adapters["fresh"], "acme/voice", base=BASE)
    c.promote("acme/compliance:1", to="production")
    c.set_policy("acme", {"max_interference": {"compliance": 0.3}})

    before = catalog_state(runtime)
    with pytest.raises(errors.GateFailed, match="not computed; run `lorareg interference"):
        c.promote("acme/voice:2", to="production")
    assert catalog_state(runtime) == before

    lib = c.interference(["acme/voice:1", "acme/voice:2", "acme/compliance:1"])
    cos = {frozenset((p.x, p.y)): p.max_abs_cosine for p in lib.pairs}
    echo = cos[frozenset(("acme/voice:1", "acme/compliance:1"))]
    fresh = cos[frozenset(("acme/voice:2", "acme/compliance:1"))]
    assert echo > 0.999 and fresh < 0.3  # what the bound separates

    before = catalog_state(runtime)
    with pytest.raises(errors.GateFailed) as info:
        c.promote("acme/voice:1", to="production")
    msg = str(info.value)
    assert "interference with acme/compliance:1 (production)" in msg
    assert f"is {echo:.3f} on" in msg and "above the bound 0.3" in msg
    assert catalog_state(runtime) == before

    # The dashboard's confirmation page (plan_promotion) shows the same unmet bound.
    with TestClient(create_app(runtime, background=False), base_url="http://127.0.0.1") as web:
        html = web.get("/ui/-/promote?ref=acme/voice:1&to=production").text
        assert f"is {echo:.3f} on" in html and "above the bound 0.3" in html
        html = web.get("/ui/-/promote?ref=acme/voice:2&to=production").text
        assert "above the bound" not in html and "All gates pass" in html

    r = c.promote("acme/voice:2", to="production")
    assert r["version"]["stage"] == "production"
    # A bound of 1 lets any version through; "ns/name" names the adapter too.
    c.set_policy("acme", {"max_interference": {"acme/compliance": 1.0}})
    c.promote("acme/voice:1", to="production")
    assert c.show("acme/voice@production").number == 1


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

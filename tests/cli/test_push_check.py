"""``push`` says what the automatic check found; ``--strict`` refuses a failing adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state


def test_push_prints_a_failing_verdict_and_strict_stores_nothing(
    lorareg: Any,
    runtime: Runtime,
    adapter_library: dict[str, Path],
    base_library: dict[str, Path],
) -> None:
    # A base whose hidden size the tiny adapter does not fit, registered under its name.
    r = lorareg("base", "add", "wide-llama", str(base_library["wide"]))
    assert r.exit_code == 0, r.output
    before = catalog_state(runtime)
    r = lorareg("push", str(adapter_library["v1"]), "acme/voice", "--base", "wide-llama",
                "--strict")  # fmt: skip
    assert r.exit_code == 1, r.output
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith("error: refused (--strict): acme/voice fails its check")
    assert "FAIL " in r.stderr and "nothing stored" in r.stderr
    assert catalog_state(runtime)["rows"] == before["rows"]

    r = lorareg("push", str(adapter_library["v1"]), "acme/voice", "--base", "wide-llama")
    assert r.exit_code == 0, r.output  # the version is stored: promotion gates judge it
    lines = r.stdout.splitlines()
    assert lines[0].startswith("pushed acme/voice:1")
    assert lines[1] == "check against wide-llama: fail"
    assert lines[2].startswith("  FAIL ")
    r = lorareg("push", str(adapter_library["v2"]), "acme/voice", "--base", "wide-llama",
                "--json")  # fmt: skip
    assert json.loads(r.stdout)["check"]["verdict"] == "fail"


def test_push_against_a_fitting_base_prints_pass_and_strict_stores(
    lorareg: Any, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> None:
    assert lorareg("base", "add", "tiny-llama", str(base_library["tiny"])).exit_code == 0
    r = lorareg("push", str(adapter_library["v1"]), "acme/voice", "--strict")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[1:] == ["check against tiny-llama: pass"]

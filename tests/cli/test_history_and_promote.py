"""``history`` reads like the rest of the CLI; promoting to the stage a version holds is a
no-op that says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.parametrize("storage_backend", ["local"])  # no blob work here


def test_promote_to_the_stage_it_holds_changes_nothing(
    lorareg: Any, adapter_library: dict[str, Path]
) -> None:
    assert lorareg("push", str(adapter_library["v1"]), "acme/voice").exit_code == 0
    assert lorareg("promote", "acme/voice:1", "--to", "production").exit_code == 0
    r = lorareg("promote", "acme/voice:1", "--to", "production")
    assert r.exit_code == 0, r.output
    assert r.stdout == "acme/voice:1 is already in production; nothing changed\n"
    doc = json.loads(lorareg("promote", "acme/voice:1", "--to", "production", "--json").stdout)
    assert doc["unchanged"] is True and doc["archived"] is None
    events = json.loads(lorareg("history", "acme/voice", "--json").stdout)
    assert [e["kind"] for e in events].count("stage.changed") == 1


def test_history_columns_and_readable_details(
    lorareg: Any, adapter_library: dict[str, Path]
) -> None:
    lorareg("push", str(adapter_library["v1"]), "acme/voice")
    lorareg("push", str(adapter_library["v1"]), "acme/other")
    r = lorareg("eval", "add", "acme/voice:1", "helpfulness=0.78", "tone=0.5", "--dataset", "ds")
    assert r.exit_code == 0, r.output
    r = lorareg("policy", "set", "acme", "--min-eval", "helpfulness=0.8", "--require-reason")
    assert r.exit_code == 0, r.output
    lines = lorareg("history", "acme").stdout.splitlines()
    assert lines[0].split() == ["ID", "WHEN", "WHAT", "ADAPTER", "VERSION", "WHO", "DETAILS"]
    rows = {line.split()[4]: line for line in lines[1:] if "eval.recorded" in line}
    assert "helpfulness=0.78@ds tone=0.5@ds" in rows["acme/voice"]
    policy = next(line for line in lines if "policy.changed" in line)
    assert "min_evals=helpfulness:0.8" in policy and "require_reason=True" in policy
    assert "{'" not in "\n".join(lines) and "[{" not in "\n".join(lines)
    assert any("acme/other" in line for line in lines)
    # One adapter's history needs no ADAPTER column.
    assert "ADAPTER" not in lorareg("history", "acme/voice").stdout.splitlines()[0]

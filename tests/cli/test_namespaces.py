"""``lorareg delete``, ``lorareg namespace show|delete|quota set``: output, exit codes and
the one line on stderr for a refusal, against the embedded catalog and a live server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.parametrize("storage_backend", ["local"])


def test_quota_show_and_refusal(lorareg: Any, adapter_library: dict[str, Path]) -> None:  # noqa: F811
    assert lorareg("push", str(adapter_library["v1"]), "acme/a").exit_code == 0
    r = lorareg("namespace", "quota", "set", "acme", "--max-bytes", "15K", "--max-versions", "5")
    assert r.exit_code == 0, r.output
    assert "versions:  1 of 5" in r.stdout and "of 15.0 KB" in r.stdout
    r = lorareg("push", str(adapter_library["v2"]), "acme/a")
    assert r.exit_code == 1 and r.stdout == ""
    assert (
        r.stderr.startswith("error: namespace acme is at its quota") and r.stderr.count("\n") == 1
    )
    r = lorareg("namespace", "quota", "set", "acme", "--max-bytes", "none")
    assert r.exit_code == 0 and "(no limit)" in r.stdout
    shown = json.loads(lorareg("namespace", "show", "acme", "--json").stdout)
    assert (shown["max_bytes"], shown["max_versions"], shown["versions"]) == (None, 5, 1)
    assert lorareg("namespace", "quota", "set", "acme", "--max-bytes", "lots").exit_code == 1
    assert lorareg("namespace", "quota", "set", "acme").exit_code == 2
    r = lorareg("namespace", "show", "nobody")
    assert r.exit_code == 1 and "namespace nobody does not exist" in r.stderr


def test_delete_and_namespace_delete(lorareg: Any, adapter_library: dict[str, Path]) -> None:  # noqa: F811
    for key in ("v1", "v2"):
        assert (
            lorareg("push", str(adapter_library[key]), "acme/a", "--base", "tiny-llama").exit_code
            == 0
        )
    assert lorareg("push", str(adapter_library["v1"]), "acme/b").exit_code == 0
    assert lorareg("delete", "acme/a:1").exit_code == 2  # --reason is required
    assert lorareg("promote", "acme/a:2", "--to", "production").exit_code == 0
    r = lorareg("delete", "acme/a", "--reason", "offboarding")
    assert r.exit_code == 1 and "in production: acme/a:2" in r.stderr
    r = lorareg("delete", "acme/a:1", "--reason", "bad data")
    assert r.exit_code == 0 and r.stdout.startswith(
        "erased acme/a:1: 1 version(s); reason: bad data"
    )
    r = lorareg("namespace", "delete", "acme", "--reason", "contract ended", "--force", "--json")
    doc = json.loads(r.stdout)
    assert doc["adapters"] == ["acme/a", "acme/b"] and doc["versions"] == ["acme/a:2", "acme/b:1"]
    assert lorareg("list", "acme").stdout.strip() == "no adapters in acme"
    r = lorareg("history", "acme/a")
    assert r.exit_code == 1 and "does not exist" in r.stderr

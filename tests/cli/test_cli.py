"""The CLI contract, against the embedded catalog and against a live server (LORAREG_URL)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def test_push_pull_list_show_history(
    lorareg: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    r = lorareg(
        "push",
        str(adapter_library["v1"]),
        "acme/brand-voice",
        "--base",
        "meta-llama/Llama-3.1-8B",
        "--tag",
        "owner=marketing",
    )
    assert r.exit_code == 0, r.output
    assert "pushed acme/brand-voice:1" in r.stdout
    r = lorareg(
        "push",
        str(adapter_library["v2"]),
        "acme/brand-voice",
        "--base",
        "meta-llama/Llama-3.1-8B",
        "--json",
    )
    doc = json.loads(r.stdout)
    assert doc["created"] is True and doc["version"]["number"] == 2
    r = lorareg(
        "push", str(adapter_library["v2"]), "acme/brand-voice", "--base", "meta-llama/Llama-3.1-8B"
    )
    assert r.exit_code == 0 and "unchanged: identical to acme/brand-voice:2" in r.stdout

    r = lorareg("pull", "acme/brand-voice:1", "-o", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    for f in adapter_library["v1"].iterdir():
        assert (tmp_path / "out" / f.name).read_bytes() == f.read_bytes()

    r = lorareg("list", "acme")
    assert "acme/brand-voice" in r.stdout and "meta-llama/Llama-3.1-8B" in r.stdout
    listed = json.loads(lorareg("list", "--json").stdout)
    assert [(a["name"], a["versions"]) for a in listed] == [("brand-voice", 2)]

    r = lorareg("show", "acme/brand-voice:2")
    assert (
        "acme/brand-voice:2" in r.stdout
        and "r=4 alpha=8" in r.stdout
        and "adapter_model.safetensors" in r.stdout
    )
    shown = json.loads(lorareg("show", "acme/brand-voice:1", "--json").stdout)
    assert shown["tags"] == {"owner": "marketing"} and shown["author"] == "cli-user"

    events = json.loads(lorareg("history", "acme/brand-voice", "--json").stdout)
    assert [(e["kind"], e["version"]) for e in events] == [
        ("version.created", 1),
        ("version.created", 2),
    ]
    assert "version.created" in lorareg("history", "acme/brand-voice").stdout

    r = lorareg("tag", "acme/brand-voice:2", "reviewed=yes", "--json")
    assert json.loads(r.stdout)["tags"] == {"reviewed": "yes"}


def test_refusals_exit_1_with_one_line(lorareg: Any, adapter_dir: Path, tmp_path: Path) -> None:
    (adapter_dir / "adapter_model.bin").write_bytes(b"pickle")
    r = lorareg("push", str(adapter_dir), "acme/a")
    assert r.exit_code == 1
    assert (
        r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and "safetensors" in r.stderr
    )
    assert "Traceback" not in r.output
    r = lorareg("pull", "acme/none:1", "-o", str(tmp_path / "o"))
    assert r.exit_code == 1 and "does not exist" in r.stderr
    assert not (tmp_path / "o").exists()
    r = lorareg("show", "Bad/Name")
    assert r.exit_code == 1 and "invalid namespace" in r.stderr


def test_usage_errors_exit_2(lorareg: Any, adapter_dir: Path) -> None:
    assert lorareg("push", str(adapter_dir)).exit_code == 2
    assert lorareg("push", str(adapter_dir), "acme/a", "--tag", "novalue").exit_code == 2
    assert lorareg("push", str(adapter_dir), "acme/a", "--eval", "acc=high").exit_code == 2
    assert lorareg("frobnicate").exit_code == 2


def test_installed_console_script(adapter_dir: Path, tmp_path: Path) -> None:
    """The real ``lorareg`` executable on the embedded defaults (SQLite and a local folder):
    exit codes and stderr as a shell user sees them."""
    exe = Path(sys.executable).parent / "lorareg"
    env = {"LORAREG_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    ok = subprocess.run(
        [exe, "push", str(adapter_dir), "acme/a"], env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    assert "pushed acme/a:1" in ok.stdout
    bad = subprocess.run(
        [exe, "pull", "acme/a:5"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert bad.returncode == 1 and bad.stderr.strip() == "error: acme/a has no version 5"
    usage = subprocess.run([exe, "pull"], env=env, capture_output=True, text=True)
    assert usage.returncode == 2


def test_lifecycle_commands(lorareg: Any, adapter_library: dict[str, Path]) -> None:
    base = ["--base", "meta-llama/Llama-3.1-8B"]
    lorareg("push", str(adapter_library["v1"]), "acme/v", *base)
    lorareg("push", str(adapter_library["v2"]), "acme/v", *base)
    r = lorareg(
        "eval",
        "add",
        "acme/v:2",
        "helpfulness=0.82",
        "brand_tone=0.91",
        "--dataset",
        "brand-eval-v2",
    )
    assert r.exit_code == 0, r.output
    assert "helpfulness=0.82" in r.stdout
    assert lorareg("eval", "add", "acme/v:2", "helpfulness=lots").exit_code == 2
    r = lorareg("promote", "acme/v:1", "--to", "production", "--reason", "baseline")
    assert r.exit_code == 0 and "acme/v:1 -> production" in r.stdout
    r = lorareg("promote", "acme/v:2", "--to", "production", "--reason", "wins the A/B test")
    assert "v1 archived" in r.stdout
    assert lorareg("promote", "acme/v:2", "--to", "prod").exit_code == 2
    r = lorareg("alias", "set", "acme/v", "canary-b", "1")
    assert r.exit_code == 0 and "acme/v@canary-b -> 1" in r.stdout
    r = lorareg("diff", "acme/v:1", "acme/v:2")
    assert (
        r.exit_code == 0 and "helpfulness" in r.stdout and "adapter_model.safetensors" in r.stdout
    )
    r = lorareg("policy", "set", "acme", "--min-eval", "helpfulness=0.9", "--require-reason")
    assert r.exit_code == 0, r.output
    r = lorareg("promote", "acme/v:1", "--to", "production")
    assert r.exit_code == 1
    assert "a reason is required" in r.stderr and "helpfulness is required" in r.stderr
    assert (
        "production" in json.loads(lorareg("show", "acme/v@production", "--json").stdout)["stage"]
    )
    history = lorareg("history", "acme/v").stdout
    assert "stage.changed" in history and "alias.moved" in history
    assert "policy.changed" in lorareg("history", "acme").stdout
    tok = lorareg("token", "create", "--name", "ci", "--role", "reader", "--json")
    assert json.loads(tok.stdout)["token"].startswith("lrg_")
    assert "ci" in lorareg("token", "list").stdout


def test_serve_refuses_a_public_address_without_tokens(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "lorareg"
    env = {"LORAREG_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run(
        [exe, "serve", "--host", "0.0.0.0", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "no admin token" in r.stderr
    r = subprocess.run(
        [exe, "serve", "--host", "0.0.0.0"],
        env={**env, "LORAREG_AUTH": "open"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "without auth" in r.stderr

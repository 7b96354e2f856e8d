"""Every command answers ``--help``, and every command that prints a result prints JSON with
``--json``, with timestamps in the one wire format (ISO 8601, UTC, ``Z``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cli.main import cli
from registry.config import Settings

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
# Commands that run until stopped and print logs, not a result.
NO_JSON = {"serve", "worker"}


def commands() -> dict[str, click.Command]:
    """Every leaf command and every group, by its words (``"alias set"``)."""
    found: dict[str, click.Command] = {}

    def walk(cmd: click.Command, words: list[str]) -> None:
        if words:
            found[" ".join(words)] = cmd
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, [*words, name])

    walk(cli, [])
    return found


def takes_json(cmd: click.Command) -> bool:
    return any("--json" in p.opts for p in cmd.params)


def test_every_command_answers_help() -> None:
    runner = CliRunner()
    for words, cmd in commands().items():
        r = runner.invoke(cli, [*words.split(), "--help"], catch_exceptions=False)
        assert r.exit_code == 0, (words, r.output)
        assert r.stdout.startswith("Usage: "), words
        assert "later release" not in r.stdout, words
        if not isinstance(cmd, click.Group) and words not in NO_JSON:
            assert takes_json(cmd), f"`lorareg {words}` prints a result but takes no --json"


def timestamps_in(doc: Any) -> list[str]:
    if isinstance(doc, dict):
        return [t for v in doc.values() for t in timestamps_in(v)]
    if isinstance(doc, list):
        return [t for v in doc for t in timestamps_in(v)]
    return [doc] if isinstance(doc, str) and TIMESTAMP.match(doc) else []


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The session adds a webhook on loopback: an operator allows that host by name."""
    return settings.model_copy(update={"webhook_allow_hosts": ["127.0.0.1"]})


# JSON output is a catalog read and write; the store plays no part in its shape.
@pytest.mark.parametrize("storage_backend", ["local"])
def test_every_command_prints_json(
    lorareg: Any,
    client_kind: str,
    adapter_library: dict[str, Path],
    base_library: dict[str, Path],
    tmp_path: Path,
) -> None:
    """One session touching every --json command, as a script would drive it."""
    v1, v2 = str(adapter_library["v1"]), str(adapter_library["v2"])
    node = str(tmp_path / "node")
    script: list[tuple[str, list[str]]] = [
        ("db upgrade", []),
        ("base add", ["tiny-llama", str(base_library["tiny"])]),
        ("base list", []),
        ("base show", ["tiny-llama"]),
        ("push", [v1, "acme/voice"]),
        ("push", [v2, "acme/voice", "--eval", "helpfulness=0.8"]),
        ("compose", ["acme/voice:1,acme/voice:2", "--output", "acme/both"]),
        ("interference", ["--base", "tiny-llama"]),
        ("analyze", ["acme/voice:2"]),
        ("compress", ["acme/voice:2", "--rank", "2", "--output", "acme/small"]),
        ("list", []),
        ("show", ["acme/voice:2"]),
        ("pull", ["acme/voice:1", "-o", str(tmp_path / "pulled")]),
        ("tag", ["acme/voice:2", "owner=alice"]),
        ("check", ["acme/voice:2", "--base", "tiny-llama"]),
        ("eval add", ["acme/voice:1", "helpfulness=0.7"]),
        ("diff", ["acme/voice:1", "acme/voice:2"]),
        ("promote", ["acme/voice:2", "--to", "production"]),
        ("alias set", ["acme/voice", "champion", "2"]),
        ("alias delete", ["acme/voice", "champion"]),
        ("policy set", ["acme", "--min-eval", "helpfulness=0.5"]),
        ("policy show", ["acme"]),
        ("history", ["acme/voice"]),
        ("token create", ["--name", "ci", "--role", "reader"]),
        ("token list", []),
        ("webhook add", ["http://127.0.0.1:9/hook"]),
        ("webhook list", []),
        ("merge", ["acme/voice:2", "--base", "tiny-llama"]),
        ("jobs", []),
        ("jobs show", ["1"]),
        ("jobs cancel", ["1"]),
        ("sync", ["--to", node, "--base", "tiny-llama"]),
        ("sync", ["--status", node]),
        ("namespace quota set", ["acme", "--max-versions", "100"]),
        ("namespace show", ["acme"]),
        ("push", [v1, "acme/gone"]),
        ("delete", ["acme/gone", "--reason", "offboarded"]),
        ("push", [v1, "beta/gone"]),
        ("namespace delete", ["beta", "--reason", "contract ended"]),
        ("push", [v1, "acme/ab", "--base", "tiny-llama"]),
        ("push", [v2, "acme/ab", "--base", "tiny-llama", "--eval", "helpfulness=0.9"]),
        ("experiment create", ["acme/ab", "t", "--variant", "control=1", "--variant", "b=2"]
         + ["--split", "50,50", "--metric", "ctr"]),
        ("experiment assign", ["acme/ab", "t", "client-1"]),
        ("experiment ramp", ["acme/ab", "t", "--split", "40,60"]),
        ("experiment record", ["acme/ab", "t", "--variant", "b", "--successes", "3"]
         + ["--trials", "10"]),
        ("experiment show", ["acme/ab", "t"]),
        ("experiment list", ["acme/ab"]),
        ("experiment conclude", ["acme/ab", "t", "--winner", "b"]),
        ("regions", []),
        ("regions status", ["--ref", "acme/voice:2"]),
        ("fsck", []),
        ("gc", ["--dry-run"]),
    ]  # fmt: skip
    done: set[str] = set()
    outputs: dict[str, Any] = {}
    for words, args in script:
        r = lorareg(*words.split(), *args, "--json")
        if client_kind == "remote" and words in ("fsck", "gc"):
            # Upkeep works on the catalog and the store directly, never through a server.
            assert r.exit_code == 1 and r.stderr.count("\n") == 1, r.output
            done.add(words)
            continue
        assert r.exit_code == 0, (words, r.output)
        doc = json.loads(r.stdout)
        outputs[words] = doc
        done.add(words)
        for stamp in timestamps_in(doc):
            assert ISO_Z.match(stamp), f"`lorareg {words} --json`: timestamp {stamp!r}"
    # Commands whose argument is an id the session just printed.
    token_id = outputs["token create"]["id"]
    webhook_id = outputs["webhook add"]["id"]
    for words, args in (("token revoke", [str(token_id)]), ("webhook delete", [str(webhook_id)])):
        r = lorareg(*words.split(), *args, "--json")
        assert r.exit_code == 0, (words, r.output)
        json.loads(r.stdout)
        done.add(words)
    # `import` needs a Hub to import from (tests/hf drive it); here it must refuse cleanly.
    r = lorareg("import", "hf://acme/none@main", "acme/imported", "--json")
    assert r.exit_code == 1 and r.stderr.count("\n") == 1, r.output
    done.add("import")
    with_json = {w for w, c in commands().items() if takes_json(c)}
    assert with_json - done == set(), "add these commands to the session above"

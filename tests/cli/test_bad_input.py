"""No traceback reaches a user: every setting fed a bad value, every path argument fed a
file, a missing parent and an unwritable folder, a missing database driver. Each answer is
exit 1 with one line on stderr naming what is wrong (or success, where the input is fine).
"""

from __future__ import annotations

import os
import sys
import typing
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from registry.config import Settings
from tests.cli.environment import cli_environment

# Settings whose every value is acceptable (free text); all others get bad values below.
# Host and bucket allow-lists are names an operator writes; any text is a (useless) name.
FREE_TEXT = {"token", "author", "secret_key", "webhook_allow_hosts", "base_buckets"}
# String settings: values that must be refused, and the command that reads them.
BAD_STRINGS: dict[str, list[str]] = {
    "database_url": ["notaurl", "mysql://u@127.0.0.1/db", "nosuchdb://x/y"],
    "storage_url": ["notaurl", "ftp://host/x", "s3://"],
    "url": ["notaurl", "http://127.0.0.1:1"],
    "s3_endpoint_url": ["notaurl", "ftp://minio:9000"],
    "base_roots": ["relative/models", "/srv/models/../../etc"],
    "regions": [
        "notjson",
        '{"name": "eu"}',
        '[{"name": "Bad Name", "storage_url": "file:///tmp/x"}]',
        '[{"name": "eu", "storage_url": "ftp://host/x"}]',
        '[{"name": "primary", "storage_url": "file:///tmp/x"}]',
    ],
    "primary_region": ["Bad Name", "x" * 40],
    "region": ["Bad Name"],
    "region_fallback": ["Bad Name", "eu,eu"],
}


def _unwritable(tmp_path: Path) -> Path:
    """A folder this process cannot write into, root included (sysfs refuses mkdir)."""
    if os.geteuid() == 0:
        return Path("/sys")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str | None]:
    """A newcomer's environment: embedded defaults under a fresh home, nothing else set."""
    env: dict[str, str | None] = {f"LORAREG_{k.upper()}": None for k in Settings.model_fields}
    env.update(
        {
            "LORAREG_HOME": str(tmp_path / "home"),
            "LORAREG_CACHE_DIR": str(tmp_path / "cache"),
            "LORAREG_AUTHOR": "alice",
        }
    )
    return env


def run(env: dict[str, str | None], *args: str) -> Result:
    # catch_exceptions=False: an uncaught exception (a traceback for a user) fails the test.
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def assert_one_line_error(r: Result, *mentions: str) -> None:
    assert r.exit_code == 1, (r.exit_code, r.output)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.output
    assert any(m in r.stderr for m in mentions), (mentions, r.stderr)


def _bad_values(name: str, annotation: Any, tmp_path: Path) -> list[str]:
    if name in BAD_STRINGS:
        return BAD_STRINGS[name]
    args = typing.get_args(annotation)
    if annotation in (int, float):
        return ["abc", "0", "-1"]
    if typing.get_origin(annotation) is typing.Literal:
        return ["bogus"]
    if annotation is Path or Path in args:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        return [str(blocker), str(blocker / "below"), str(_unwritable(tmp_path) / "lorareg")]
    if annotation is bool:
        return ["perhaps"]
    raise AssertionError(
        f"setting {name!r} ({annotation}) has no bad values: add it to BAD_STRINGS or FREE_TEXT"
    )


def test_every_setting_with_a_bad_value_is_one_line(
    embedded_env: dict[str, str | None], adapter_dir: Path, tmp_path: Path
) -> None:
    assert run(embedded_env, "push", str(adapter_dir), "acme/a").exit_code == 0
    swept: set[str] = set()
    for name, field in Settings.model_fields.items():
        if name in FREE_TEXT:
            continue
        var = f"LORAREG_{name.upper()}"
        for value in _bad_values(name, field.annotation, tmp_path):
            env = {**embedded_env, var: value}
            if name == "s3_endpoint_url":
                env["LORAREG_STORAGE_URL"] = "s3://bucket/prefix"
            # pull reads the catalog, the store and the cache: every setting is used.
            r = run(env, "pull", "acme/a:1", "-o", str(tmp_path / f"out-{len(swept)}"), "--force")
            swept.add(name)
            if r.exit_code == 0 and name in ("cache_dir",):
                continue  # the cache is optional: an unusable one only costs speed
            assert_one_line_error(r, var, value, "cannot reach", "not a folder")
    assert swept == set(Settings.model_fields) - FREE_TEXT


def test_messages_name_the_setting_and_the_fix(embedded_env: dict[str, str | None]) -> None:
    r = run({**embedded_env, "LORAREG_PART_SIZE": "abc"}, "list")
    assert_one_line_error(r, "LORAREG_PART_SIZE='abc'")
    r = run({**embedded_env, "LORAREG_DATABASE_URL": "notaurl"}, "list")
    assert_one_line_error(r, "LORAREG_DATABASE_URL is not a database URL")
    r = run({**embedded_env, "LORAREG_AUTH": "bogus"}, "list")
    assert_one_line_error(r, "'auto', 'required' or 'open'")


@pytest.mark.parametrize("command", [("db", "upgrade"), ("list",)])
def test_missing_postgres_driver_names_the_extra(
    embedded_env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """The README's production shape without the postgres extra installed."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ModuleNotFoundError
    env = {**embedded_env, "LORAREG_DATABASE_URL": "postgresql://lorareg@127.0.0.1/lorareg"}
    r = run(env, *command)
    assert_one_line_error(r, "pip install 'lorareg[postgres]'")
    assert "psycopg" in r.stderr


def test_unreachable_database_and_bad_revision_on_db_upgrade(
    embedded_env: dict[str, str | None],
) -> None:
    env = {**embedded_env, "LORAREG_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}
    assert_one_line_error(run(env, "db", "upgrade"), "cannot be reached")
    assert_one_line_error(run(embedded_env, "db", "upgrade", "--revision", "bogus"), "bogus")


def _path_arguments() -> set[str]:
    """Every click.Path parameter of every command, as 'command words --option'."""
    found = set()

    def walk(cmd: click.Command, words: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, [*words, name])
        for p in cmd.params:
            if isinstance(p.type, click.Path):
                found.add(" ".join([*words, p.opts[-1] if p.opts[0].startswith("-") else p.name]))

    walk(cli, [])
    return found


# Each path argument, as a command line with {P} where the path goes. Folder arguments of
# commands whose type is a plain string (base add SOURCE) are listed too.
PATH_COMMANDS = {
    "push folder": ["push", "{P}", "acme/b"],
    "pull --output": ["pull", "acme/a:1", "-o", "{P}"],
    "sync --to": ["sync", "--to", "{P}", "--base", "tiny-llama"],
    "sync --status": ["sync", "--status", "{P}"],
    "base add source": ["base", "add", "tiny", "{P}"],
}


def test_every_path_argument_with_a_file_a_missing_parent_and_an_unwritable_folder(
    cli_env: dict[str, str | None], adapter_dir: Path, tmp_path: Path
) -> None:
    assert _path_arguments() <= set(PATH_COMMANDS), "a new path argument: add it above"
    assert run(cli_env, "push", str(adapter_dir), "acme/a").exit_code == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for n, (key, argv) in enumerate(PATH_COMMANDS.items()):
        cases = {
            "file": blocker,
            "under a file": blocker / "below",
            "missing parent": tmp_path / f"missing-{n}" / "parent" / "x",
            "unwritable": _unwritable(tmp_path) / "lorareg-x",
        }
        for case, path in cases.items():
            r = run(cli_env, *[str(path) if a == "{P}" else a for a in argv])
            if r.exit_code == 0:
                # Only an output folder may be created where nothing stood.
                assert case == "missing parent", (key, case)
                assert key in ("pull --output", "sync --to"), (key, case)
                continue
            assert_one_line_error(r, str(path), str(blocker))
    assert blocker.read_text() == "not a folder"


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path) -> dict[str, str | None]:
    """The CLI on this test's catalog and store (SQLite/PostgreSQL x local/S3)."""
    return cli_environment(settings, tmp_path / "cli-cache")


def test_out_of_range_numbers_are_usage_errors(embedded_env: dict[str, str | None]) -> None:
    assert run(embedded_env, "worker", "--poll-seconds", "0").exit_code == 2
    assert run(embedded_env, "merge", "a/b", "--base", "x", "--claim-timeout", "-1").exit_code == 2

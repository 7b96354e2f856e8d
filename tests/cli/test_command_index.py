"""``lorareg --help`` lists the commands from ``cli.command_index`` without importing their
modules: the index must say what the commands themselves say, and every command must be
found in the module it names."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.command_index import COMMANDS
from cli.main import cli

ROOT = Path(__file__).resolve().parents[2]


def test_the_index_names_every_command_its_module_and_help() -> None:
    assert sorted(COMMANDS) == sorted(cli.commands)
    for name, cmd in cli.commands.items():
        module, first = COMMANDS[name]
        assert cmd.callback is not None
        assert cmd.callback.__module__ == f"cli.commands.{module}", name
        assert inspect.cleandoc(cmd.help or "").split("\n\n")[0] == first, name
        assert not cmd.hidden and not cmd.deprecated and cmd.short_help is None, name


def _run(code: str, columns: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": columns}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, check=True
    )
    return proc.stdout.decode()


@pytest.mark.parametrize("columns", ["60", "80", "200"])
def test_help_lists_the_same_as_the_loaded_commands(columns: str) -> None:
    lazy = _run(
        "import sys\nfrom cli.main import main\nsys.argv = ['lorareg', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "assert not [m for m in sys.modules if m.startswith('cli.commands.')], 'imported'",
        columns,
    )
    full = _run("from cli.main import cli; cli(['--help'], prog_name='lorareg')", columns)
    assert lazy == full
    assert "push" in lazy and "worker" in lazy


def test_each_command_is_found_in_the_module_it_names() -> None:
    names = sorted(COMMANDS)
    out = _run(
        "import click\nfrom cli.app import cli\n"
        f"for n in {names!r}:\n"
        "    c = cli.get_command(click.Context(cli), n)\n"
        "    print(n, c is not None and c.name == n)",
        "80",
    )
    assert out.split() == [w for n in names for w in (n, "True")]

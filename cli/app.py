"""The ``lorareg`` click group and the helpers every command shares.

Exit status: 0 success, 1 refused or invalid request (one line on stderr), 2 bad usage.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from registry.errors import LoraregError

if TYPE_CHECKING:
    from registry.client.base import RegistryClient
    from registry.config import Settings

F = TypeVar("F", bound=Callable[..., Any])


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)  # type: ignore[return-value]


def handle_errors(f: F) -> F:
    """Turn domain errors into one line on stderr and exit status 1."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except LoraregError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:
            # A path that is a file, a missing parent, an unwritable folder, a full disk.
            click.echo(f"error: {describe_os_error(exc)}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def describe_os_error(exc: OSError) -> str:
    """``PATH: reason``, naming the file that stands where a folder is needed."""
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return what
    path = Path(os.fsdecode(exc.filename))
    if isinstance(exc, FileExistsError | NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker == path:
            return f"{path} is a file, not a folder"
        if blocker is not None:
            return f"{path}: {blocker} is a file, not a folder"
    return f"{path}: {what}"


def parse_pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{v!r}: write {what} as KEY=VALUE")
        out[key] = val
    return out


class Context:
    """Lazily built settings and client, shared by the subcommands."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._client: RegistryClient | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            # Imported here: pydantic-settings costs a tenth of a second of start-up.
            from registry.config import load_settings

            self._settings = load_settings()
        return self._settings

    @property
    def client(self) -> RegistryClient:
        if self._client is None:
            from registry.client import connect

            self._client = connect(self.settings)
            # Release database pools and HTTP connections when the command ends.
            click.get_current_context().call_on_close(self._client.close)
        return self._client


pass_ctx = click.make_pass_decorator(Context, ensure=True)


class LazyGroup(click.Group):
    """The ``lorareg`` group: a command's module is imported when that command runs, and
    ``lorareg --help`` lists the commands from ``cli.command_index`` (their modules cost a
    third of a second of imports)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from cli.command_index import COMMANDS

        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from cli.command_index import COMMANDS

        if cmd_name not in self.commands and cmd_name in COMMANDS:
            import importlib

            importlib.import_module(f"cli.commands.{COMMANDS[cmd_name][0]}")  # registers it
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing, with a stand-in carrying the indexed help line for each
        command not imported yet."""
        from cli.command_index import COMMANDS

        listed = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name) or click.Command(name, help=COMMANDS[name][1])
            if not cmd.hidden:
                listed.append((name, cmd))
        if listed:
            limit = formatter.width - 6 - max(len(name) for name, _ in listed)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in listed])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lorareg")
def cli() -> None:
    """lorareg: a registry for LoRA adapters."""

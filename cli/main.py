"""Entry point of the ``lorareg`` command: the group plus every subcommand module.

``main()`` first offers the command line to ``cli.fast_path``, which answers the read
commands (``list``, ``show``, ``history``, ``jobs``) without importing the command tree;
anything it does not answer runs through click, which imports only the module of the command
that runs (``cli.app.LazyGroup``). ``from cli.main import cli`` gives the group with every
command imported (tests walk it).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click


def full_cli() -> click.Group:
    """The ``lorareg`` group with every subcommand registered."""
    from cli.app import cli
    from cli.commands import (  # noqa: F401  (importing registers the commands)
        catalog,
        compat,
        experiments,
        imports,
        library,
        lifecycle,
        merge,
        namespaces,
        regions,
        server,
        sync,
        upkeep,
    )

    return cli


def __getattr__(name: str) -> Any:
    # ``cli.main.cli``, imported lazily so that importing this module (the console script
    # does) costs nothing before the fast path has had its say.
    if name == "cli":
        return full_cli()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    from cli.fast_path import answer

    if answer(sys.argv[1:]):
        return
    from cli.app import cli  # each command's module is imported when it runs

    cli(prog_name="lorareg")


if __name__ == "__main__":
    main()

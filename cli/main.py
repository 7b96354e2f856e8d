"""Entry point of the ``lorareg`` command: the group plus every subcommand module."""

from __future__ import annotations

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


def main() -> None:
    cli(prog_name="lorareg")


if __name__ == "__main__":
    main()

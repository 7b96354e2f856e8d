"""The read commands at start-up cost: ``list``, ``show``, ``history`` and ``jobs`` answered
before click's command tree, pydantic, the settings, SQLAlchemy and httpx are imported.

``lorareg list`` used to import every command module, pydantic-settings, SQLAlchemy's ORM and
the catalog models before reading three rows (0.9 s on an idle machine). Here the command
line is recognised by hand; an embedded SQLite catalog is read with ``sqlite3``
(``registry.client.fast_reads``), a server (``LORAREG_URL``) asked with ``http.client``
(``registry.client.fast_http``); the result is printed by the same functions as the click
commands (``cli.render``), so the output is the same bytes (``tests/cli/test_fast_reads.py``
compares every command both ways, embedded and over a live server).

Shapes answered: ``list [NS] [--json]``, ``show REF [--base B] [--json]``,
``history REPO|NS [--json]``, ``jobs [--json]``. Everything else returns False and the normal
path runs, as if this module did not exist:
- any other option or argument shape (``--help`` included);
- a ``LORAREG_*`` variable other than those read here, or set to an empty value (the normal
  path validates all of them and may refuse); a proxy variable in remote mode;
- a catalog that is not a SQLite file, storage that is not a local folder;
- a catalog that does not exist yet or is not exactly at the schema head (the normal path
  creates or migrates it), or that ``sqlite3`` cannot read;
- a server that cannot be reached or answers other than lorareg's JSON (the normal path asks
  again through httpx and reports).

``LORAREG_FAST_READS=0`` turns it off (the exactness tests run both ways). The settings are
read from the environment here, not through ``registry.config`` (whose pydantic-settings
import is what this path avoids); ``UNDERSTOOD`` lists the few it reads.
"""

from __future__ import annotations

import os
import sys
from typing import Any
from urllib.parse import urlsplit

SWITCH = "LORAREG_FAST_READS"
# The settings this path understands; any other LORAREG_* variable sends the command to the
# normal path, where Settings validates it (and may refuse the command).
UNDERSTOOD = frozenset(
    {
        "LORAREG_HOME",
        "LORAREG_DATABASE_URL",
        "LORAREG_STORAGE_URL",
        "LORAREG_CACHE_DIR",
        "LORAREG_AUTHOR",
        "LORAREG_TOKEN",
        "LORAREG_URL",
        SWITCH,
    }
)


class _NotHere(Exception):
    """The command or the setup is not one this path answers: take the normal path."""


def answer(argv: list[str]) -> bool:
    """Run ``lorareg ARGV`` here when it is a read this path answers; True when it did
    (output printed, or a refusal printed and SystemExit raised), False to fall through."""
    if os.environ.get(SWITCH, "1") == "0" or not argv:
        return False
    try:
        command = _parse(argv)
        _check_settings(os.environ)
        if os.environ.get("LORAREG_URL"):
            return _remote(os.environ, *command)
        path = _catalog_path(os.environ)
    except _NotHere:
        return False
    from registry.client.fast_reads import open_catalog

    conn = open_catalog(path)
    if conn is None:
        return False
    try:
        return _run(conn, *command)
    finally:
        conn.close()


def _parse(argv: list[str]) -> tuple[str, list[str], dict[str, Any]]:
    """(command, positional arguments, options) for the shapes answered here."""
    name, *rest = argv
    if name not in ("list", "show", "history", "jobs"):
        raise _NotHere
    args: list[str] = []
    opts: dict[str, Any] = {}
    it = iter(rest)
    for word in it:
        if word == "--json" and "json" not in opts:
            opts["json"] = True
        elif name == "show" and "base" not in opts and word.startswith("--base="):
            opts["base"] = word.removeprefix("--base=")
        elif name == "show" and "base" not in opts and word == "--base":
            value = next(it, None)
            if value is None or value.startswith("-"):
                raise _NotHere
            opts["base"] = value
        elif word.startswith("-"):
            raise _NotHere  # --help, -h, --, unknown options: click's to answer
        else:
            args.append(word)
    wanted = {"list": (0, 1), "show": (1, 1), "history": (1, 1), "jobs": (0, 0)}[name]
    if not wanted[0] <= len(args) <= wanted[1]:
        raise _NotHere
    return name, args, opts


Env = os._Environ[str] | dict[str, str]


def _check_settings(env: Env) -> None:
    """Only the settings read here, none empty (``Settings`` would read them otherwise)."""
    for key, value in env.items():
        if key.upper().startswith("LORAREG_") and (key not in UNDERSTOOD or value == ""):
            raise _NotHere


def _catalog_path(env: Env) -> str:
    """The SQLite file of the embedded catalog, as ``Settings`` would name it."""
    storage = env.get("LORAREG_STORAGE_URL")
    if storage is not None:
        parts = urlsplit(storage)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not parts.path:
            raise _NotHere
    url = env.get("LORAREG_DATABASE_URL")
    if url is None:
        from pathlib import Path

        home = Path(env["LORAREG_HOME"]) if "LORAREG_HOME" in env else Path.home() / ".lorareg"
        return str(home / "catalog.db")
    if not url.startswith("sqlite:///") or "?" in url:
        raise _NotHere
    path = url.removeprefix("sqlite:///")
    if path in ("", ":memory:"):
        raise _NotHere
    return path


# What httpx (the normal path's client) reads from the environment besides the trust store:
# proxies. With one set, the normal path answers.
_PROXIES = ("http_proxy", "https_proxy", "all_proxy")


def _remote(env: Env, name: str, args: list[str], opts: dict[str, Any]) -> bool:
    """The read against ``LORAREG_URL`` (``registry.client.fast_http``), or False."""
    import re

    url = env["LORAREG_URL"]
    # Settings' own check of LORAREG_URL; anything else is its to refuse.
    if not re.fullmatch(r"https?://[^/\s?#]+(/\S*)?", url):
        raise _NotHere
    if any(k.lower() in _PROXIES and v for k, v in env.items()):
        raise _NotHere
    from collections.abc import Callable
    from functools import partial

    import click

    from cli import render
    from registry.client.fast_http import FastApi, NotAnswered
    from registry.errors import LoraregError

    api = FastApi(url, token=env.get("LORAREG_TOKEN"), actor=_author(env))
    as_json = bool(opts.get("json"))
    show: Callable[[], None]
    try:  # every request first, then print: a request not answered here leaves no output
        if name == "list":
            namespace = args[0] if args else None
            adapters = api.list_adapters(namespace)
            show = partial(render.print_adapters, adapters, namespace, as_json=as_json)
        elif name == "show":
            v = api.show(args[0], base=opts.get("base"))
            checks = api.checks(v.ref)
            show = partial(render.print_version, v, checks, as_json=as_json)
        elif name == "history":
            whole = "/" not in args[0]
            events = api.namespace_history(args[0]) if whole else api.history(args[0])
            show = partial(render.print_history, events, whole_namespace=whole, as_json=as_json)
        else:
            docs = api.jobs()
            show = partial(render.print_jobs, docs, as_json=as_json)
    except NotAnswered:
        return False  # the normal path asks again (reads are idempotent) and reports
    except LoraregError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    finally:
        api.close()
    show()
    return True


def _author(env: Env) -> str:
    """``Settings.effective_author``."""
    if env.get("LORAREG_AUTHOR"):
        return env["LORAREG_AUTHOR"]
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"


def _run(conn: Any, name: str, args: list[str], opts: dict[str, Any]) -> bool:
    """Read everything first, then print: a row this path cannot read (``sqlite3.Error``,
    a timestamp or JSON value it does not parse) falls through before any output."""
    import sqlite3
    from collections.abc import Callable
    from functools import partial

    import click

    from cli import render
    from registry.catalog.refs import check_name, parse_ref, parse_repo
    from registry.client import fast_reads as reads
    from registry.errors import LoraregError

    as_json = bool(opts.get("json"))
    show: Callable[[], None]
    try:
        if name == "list":
            namespace = args[0] if args else None
            if namespace is not None:
                check_name(namespace, what="namespace")
            adapters = reads.list_adapters(conn, namespace)
            show = partial(render.print_adapters, adapters, namespace, as_json=as_json)
        elif name == "show":
            vid = reads.version_id(conn, parse_ref(args[0]), base=opts.get("base"))
            version, checks = reads.version_info(conn, vid), reads.latest_checks(conn, vid)
            show = partial(render.print_version, version, checks, as_json=as_json)
        elif name == "history":
            whole = "/" not in args[0]
            if whole:
                events = reads.namespace_history(conn, args[0])
            else:
                events = reads.history(conn, parse_repo(args[0]))
            show = partial(render.print_history, events, whole_namespace=whole, as_json=as_json)
        else:
            docs = reads.jobs(conn)
            show = partial(render.print_jobs, docs, as_json=as_json)
    except LoraregError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except (sqlite3.Error, ValueError, TypeError, KeyError):
        return False  # nothing printed yet: the normal path reads it, or explains
    show()
    return True

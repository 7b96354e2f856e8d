"""The read fast path (``cli/fast_path.py`` over ``registry/client/fast_reads.py``) prints
exactly what the click commands print: every read command and option, text and --json,
refusals included, over an embedded catalog with several adapters, versions, stages,
aliases, tags, evals, a stored check and jobs. Whatever it does not answer falls through,
and it never writes to the catalog."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import fast_path
from cli.main import cli
from registry.client import fast_reads
from registry.domain import Stage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def catalog(
    tmp_path_factory: pytest.TempPathFactory,
    adapter_library: dict[str, Path],
    base_library: dict[str, Path],
) -> dict[str, str]:
    """The environment of an embedded catalog built with the normal commands."""
    tmp = tmp_path_factory.mktemp("fast-reads")
    env = {
        "LORAREG_HOME": str(tmp / "home"),
        "LORAREG_CACHE_DIR": str(tmp / "cache"),
        "LORAREG_AUTHOR": "alice",
    }
    v1, v2, r8 = (str(adapter_library[k]) for k in ("v1", "v2", "r8"))
    script = [
        ["base", "add", "tiny-llama", str(base_library["tiny"])],
        ["push", v1, "acme/voice", "--tag", "owner=alice", "--eval", "helpfulness=0.8",
         "--description", "first cut"],
        ["push", v2, "acme/voice", "--base", "tiny-llama", "--eval", "helpfulness=0.85"],
        ["push", r8, "acme/voice"],
        ["push", v1, "beta/other"],
        ["push", v2, "acme/zeta", "--base", "tiny-llama"],
        ["push", v1, "acme/zeta", "--base", "tiny-llama", "--tag", "a=b"],
        ["promote", "acme/voice:2", "--to", "staging"],
        ["promote", "acme/voice:1", "--to", "production"],
        ["promote", "acme/zeta:2", "--to", "production"],
        ["alias", "set", "acme/voice", "champion", "2"],
        ["tag", "acme/voice:2", "team=nlp", "region=eu"],
        ["eval", "add", "acme/voice:1", "accuracy=0.5"],
        ["check", "acme/voice:2", "--base", "tiny-llama"],
        ["merge", "acme/voice:2", "--base", "tiny-llama"],
        ["merge", "acme/zeta:1", "--base", "tiny-llama", "--output", "acme/zeta-merged"],
        ["jobs", "cancel", "1"],
    ]  # fmt: skip
    for args in script:
        r = CliRunner().invoke(cli, args, env=_only(env), catch_exceptions=False)
        assert r.exit_code == 0, (args, r.output)
    # Ages print as "N d ago": move every timestamp 1000.5 days back so that the count of
    # days cannot change between the two runs compared below.
    shift = timedelta(days=1000, hours=12)
    with sqlite3.connect(tmp / "home" / "catalog.db") as conn:
        for table, cols in {
            "versions": ["created_at"],
            "events": ["created_at"],
            "eval_scores": ["created_at"],
            "check_results": ["created_at"],
            "jobs": ["created_at", "started_at", "finished_at"],
        }.items():
            for col in cols:
                for rowid, at in conn.execute(f"SELECT rowid, {col} FROM {table}").fetchall():
                    if at is not None:
                        old = datetime.fromisoformat(at) - shift
                        conn.execute(
                            f"UPDATE {table} SET {col} = ? WHERE rowid = ?",
                            (old.isoformat(sep=" "), rowid),
                        )
        # The queued merge as another worker's, leased for ever: the `lorareg serve` of the
        # remote tests runs a worker that would otherwise run it while reads are compared.
        started = (datetime.now() - shift).isoformat(sep=" ")
        conn.execute(
            "UPDATE jobs SET state = 'running', worker_id = 'elsewhere', started_at = ?,"
            " heartbeat_at = ?, lease_expires_at = ? WHERE state = 'queued'",
            (started, started, datetime(2999, 1, 1).isoformat(sep=" ")),
        )
    env["content_id"] = _content_id(env)
    return env


def _only(env: dict[str, str]) -> dict[str, str | None]:
    """``env`` as the whole LORAREG_* environment (every other LORAREG_ variable unset)."""
    out: dict[str, str | None] = {k: None for k in os.environ if k.upper().startswith("LORAREG_")}
    out.update({k: v for k, v in env.items() if k.upper().startswith("LORAREG_")})
    return out


def _content_id(env: dict[str, str]) -> str:
    r = CliRunner().invoke(cli, ["show", "acme/voice:2", "--json"], env=_only(env))
    return str(json.loads(r.stdout)["content_id"])


def _normal(env: dict[str, str], argv: list[str]) -> tuple[str, str, int]:
    r = CliRunner().invoke(cli, argv, env=_only(env), catch_exceptions=False)
    return r.stdout, r.stderr, r.exit_code


def _fast(
    env: dict[str, str], argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> tuple[str, str, int] | None:
    """The fast path's answer in this process; None when it fell through."""
    with monkeypatch.context() as m:
        for k, v in _only(env).items():
            if v is None:
                m.delenv(k, raising=False)
            else:
                m.setenv(k, v)
        capsys.readouterr()
        code = 0
        try:
            answered = fast_path.answer(argv)
        except SystemExit as exc:
            answered, code = True, int(exc.code or 0)
        out, err = capsys.readouterr()
    if not answered:  # falling through prints nothing: the normal path prints it all
        assert (out, err) == ("", ""), argv
    return (out, err, code) if answered else None


CASES = [
    ["list"],
    ["list", "--json"],
    ["list", "acme"],
    ["list", "--json", "acme"],
    ["list", "nobody"],
    ["list", "Not_A-Name!"],
    ["show", "acme/voice"],
    ["show", "acme/voice", "--json"],
    ["show", "acme/voice:1"],
    ["show", "--json", "acme/voice:1"],
    ["show", "acme/voice:2", "--json"],
    ["show", "acme/voice:2"],
    ["show", "acme/voice@production"],
    ["show", "acme/voice@staging", "--json"],
    ["show", "acme/voice@archived"],
    ["show", "acme/voice@champion"],
    ["show", "acme/voice@champion", "--json"],
    ["show", "acme/voice@nolabel"],
    ["show", "acme/voice@main"],
    ["show", "acme/voice@v2"],
    ["show", "acme/voice", "--base", "tiny-llama"],
    ["show", "acme/voice", "--base=other-base"],
    ["show", "acme/voice@production", "--base", "tiny-llama"],
    ["show", "acme/voice:1", "--base", "tiny-llama"],
    ["show", "acme/voice@champion", "--base", "tiny-llama", "--json"],
    ["show", "acme/zeta@production"],
    ["show", "acme/voice:9"],
    ["show", "acme/voice:0"],
    ["show", "acme/nothing"],
    ["show", "acme"],
    ["show", "acme/voice@Bad"],
    ["show", "Acme/voice"],
    ["history", "acme/voice"],
    ["history", "acme/voice", "--json"],
    ["history", "acme/zeta"],
    ["history", "acme/none"],
    ["history", "a/b/c"],
    ["history", "acme"],
    ["history", "acme", "--json"],
    ["history", "beta"],
    ["history", "nobody"],
    ["jobs"],
    ["jobs", "--json"],
]


def test_every_read_prints_the_same_both_ways(
    catalog: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    content_ref = f"acme/voice@{catalog['content_id']}"
    cases = [*CASES, ["show", content_ref], ["show", content_ref, "--json"]]
    db = Path(catalog["LORAREG_HOME"]) / "catalog.db"
    before = _digest(db)
    for argv in cases:
        fast = _fast(catalog, argv, monkeypatch, capsys)
        assert fast is not None, f"{argv}: the fast path did not answer"
        assert _digest(db) == before, f"{argv}: the fast path wrote to the catalog"
        assert fast == _normal(catalog, argv), argv
    # The catalog really has what the cases are about (else they would prove little).
    shown = json.loads(_normal(catalog, ["show", "acme/voice:2", "--json"])[0])
    assert shown["stage"] == "staging" and shown["aliases"] == ["champion"]
    assert shown["checks"] and shown["tags"] == {"region": "eu", "team": "nlp"}
    assert len(json.loads(_normal(catalog, ["jobs", "--json"])[0])) == 2


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.parent.glob(path.name + "*")):  # the file and its -wal
        if p.name.endswith("-shm"):
            continue
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(
    "argv",
    [
        ["list", "--help"],
        ["show", "acme/voice", "--base"],
        ["show", "acme/voice", "--base", "--json"],
        ["show"],
        ["show", "a/b", "c/d"],
        ["jobs", "show", "1"],
        ["jobs", "--all"],
        ["list", "--json", "--json"],
        ["--version"],
        ["push", "x", "y"],
    ],
)
def test_what_it_does_not_know_falls_through(
    catalog: dict[str, str], argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    assert _fast(catalog, argv, monkeypatch, capsys) is None


@pytest.mark.parametrize(
    "extra",
    [
        {"LORAREG_PART_SIZE": "abc"},  # the normal path refuses it
        {"LORAREG_URL": "http://127.0.0.1:9"},  # remote
        {"LORAREG_DATABASE_URL": "postgresql://u@127.0.0.1/db"},
        {"LORAREG_STORAGE_URL": "s3://bucket/prefix"},
        {"LORAREG_AUTHOR": ""},
        {"lorareg_home": "/elsewhere"},
        {"LORAREG_FAST_READS": "0"},
    ],
)
def test_settings_it_does_not_read_fall_through(
    catalog: dict[str, str], extra: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    env = {**catalog, **extra}
    assert _fast(env, ["list"], monkeypatch, capsys) is None


def test_a_catalog_not_at_the_head_is_left_to_the_normal_path(
    catalog: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """No catalog yet (the normal path creates it), or one at another revision (the normal
    path migrates it): the fast path neither creates nor reads it."""
    env = {**catalog, "LORAREG_HOME": str(tmp_path / "new")}
    assert _fast(env, ["list"], monkeypatch, capsys) is None
    assert not (tmp_path / "new").exists()
    old = tmp_path / "old"
    old.mkdir()
    src = sqlite3.connect(Path(catalog["LORAREG_HOME"]) / "catalog.db")
    with sqlite3.connect(old / "catalog.db") as dst:
        src.backup(dst)
        dst.execute("UPDATE alembic_version SET version_num = 'someoldrevision'")
    src.close()
    assert _fast({**catalog, "LORAREG_HOME": str(old)}, ["list"], monkeypatch, capsys) is None


def test_stage_names_are_the_domain_stages() -> None:
    assert tuple(s.value for s in Stage) == fast_reads.STAGE_NAMES


def _run(env: dict[str, str], *argv: str, fast: bool, importtime: bool = False) -> Any:
    full = {k: v for k, v in os.environ.items() if not k.upper().startswith("LORAREG_")}
    full.update({k: v for k, v in env.items() if k.startswith("LORAREG_")})
    full.update({"PYTHONPATH": str(ROOT), "LORAREG_FAST_READS": "1" if fast else "0"})
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run(
        [sys.executable, *flags, "-m", "cli.main", *argv],
        cwd=ROOT,
        env=full,
        capture_output=True,
    )


@pytest.mark.parametrize(
    "argv", [["list"], ["show", "acme/voice@champion", "--json"], ["show", "acme/x"], ["jobs"]]
)
def test_the_command_line_answers_the_same_both_ways(
    catalog: dict[str, str], argv: list[str]
) -> None:
    """``python -m cli.main`` as a user runs it: same bytes, same exit status."""
    fast, slow = _run(catalog, *argv, fast=True), _run(catalog, *argv, fast=False)
    assert (fast.stdout, fast.stderr, fast.returncode) == (
        slow.stdout,
        slow.stderr,
        slow.returncode,
    )


def test_a_read_loads_neither_the_orm_nor_pydantic(catalog: dict[str, str]) -> None:
    proc = _run(catalog, "show", "acme/voice", fast=True, importtime=True)
    assert proc.returncode == 0
    loaded = {line.split("|")[-1].strip() for line in proc.stderr.decode().splitlines()}
    assert "sqlite3" in loaded
    assert not {"sqlalchemy", "pydantic", "pydantic_settings", "cli.commands"} & loaded


# -- remote mode: the same reads against a live server -------------------------------------


def _token(env: dict[str, str], *args: str) -> str:
    r = CliRunner().invoke(cli, ["token", "create", *args, "--json"], env=_only(env))
    assert r.exit_code == 0, r.output
    return str(json.loads(r.stdout)["token"])


@pytest.fixture(scope="module")
def server(catalog: dict[str, str]) -> Iterator[dict[str, str]]:
    """``lorareg serve`` on the catalog, tokens required; an admin's and a reader's scoped
    to namespace ``beta``."""
    import httpx

    from tests.fixtures.s3 import free_port

    tokens = {
        "admin": _token(catalog, "--name", "admin", "--role", "admin"),
        "beta": _token(catalog, "--name", "beta", "--role", "reader", "--namespace", "beta"),
    }
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.upper().startswith("LORAREG_")}
    full.update({k: v for k, v in catalog.items() if k.startswith("LORAREG_")})
    full.update({"PYTHONPATH": str(ROOT), "LORAREG_AUTH": "required"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "--port", str(port)],
        cwd=ROOT,
        env=full,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert proc.poll() is None, "the server exited"
            try:
                httpx.get(f"{url}/healthz", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield {"url": url, **tokens}
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize("who", ["admin", "beta", "nobody"])
def test_remote_reads_print_the_same_both_ways(
    catalog: dict[str, str],
    server: dict[str, str],
    who: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """Through the API as an admin, as a reader scoped to ``beta`` (the server hides
    ``acme``), and with no token (refused): the same bytes and exit status both ways."""
    env = {**catalog, "LORAREG_URL": server["url"] + "/"}
    if who != "nobody":
        env["LORAREG_TOKEN"] = server[who]
    content_ref = f"acme/voice@{catalog['content_id']}"
    cases = [*CASES, ["show", content_ref, "--json"], ["list", "beta"], ["show", "beta/other"]]
    if who != "admin":  # the refusals are alike for every command: a few suffice
        cases = [c for c in cases if c[0] != "show" or "beta" in c[1] or c[1] == "acme/voice"]
    answered = 0
    for argv in cases:
        fast = _fast(env, argv, monkeypatch, capsys)
        if fast is None:
            continue  # e.g. an error body the fast path does not word itself
        answered += 1
        assert fast == _normal(env, argv), (who, argv)
    assert answered == len(cases)
    if who == "beta":  # tenancy: the scoped token sees its namespace only
        listed = _fast(env, ["list"], monkeypatch, capsys)
        assert listed is not None and "beta/other" in listed[0] and "acme/" not in listed[0]


def test_a_server_that_cannot_be_reached_is_left_to_the_normal_path(
    catalog: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from tests.fixtures.s3 import free_port

    env = {**catalog, "LORAREG_URL": f"http://127.0.0.1:{free_port()}"}
    assert _fast(env, ["list"], monkeypatch, capsys) is None
    out, err, code = _normal(env, ["list"])
    assert code == 1 and err.startswith("error: cannot reach lorareg at")


@pytest.mark.parametrize(
    ("fields", "model"),
    [
        ("ADAPTER_SUMMARY", "AdapterSummary"),
        ("EVENT_INFO", "EventInfo"),
        ("VERSION_INFO", "VersionInfo"),
        ("EVAL_RECORD", "EvalRecord"),
        ("FILE_ENTRY", "FileEntry"),
    ],
)
def test_remote_records_have_the_models_fields(fields: str, model: str) -> None:
    from registry import domain
    from registry.client import fast_http

    assert tuple(getattr(domain, model).model_fields) == getattr(fast_http, fields)
    for name, info in getattr(domain, model).model_fields.items():
        if not info.is_required():
            defaults = {**fast_http.VERSION_DEFAULTS, **fast_http.EVAL_DEFAULTS}
            assert defaults[name] == info.get_default(call_default_factory=True), name


def test_identical_version_answers_as_the_push_check(catalog: dict[str, str]) -> None:
    """The unchanged re-push check (``catalog.push.identical_version``), read with sqlite3."""
    from sqlalchemy import text

    from registry.catalog.manifest import content_id
    from registry.catalog.push import identical_version
    from registry.catalog.refs import Repo
    from registry.db.database import Database
    from registry.domain import FileEntry, VersionInfo

    path = Path(catalog["LORAREG_HOME"]) / "catalog.db"
    db = Database(f"sqlite:///{path}")
    conn = fast_reads.open_catalog(path)
    assert conn is not None
    try:
        with db.read() as s:
            cids = s.scalars(text("SELECT DISTINCT content_id FROM versions")).all()
        for cid in cids:
            with db.read() as s:
                vid = s.scalar(
                    text("SELECT min(id) FROM versions WHERE content_id = :c"), {"c": cid}
                )
                rows = s.execute(
                    text("SELECT path, sha256, size FROM version_files WHERE version_id = :v"),
                    {"v": vid},
                ).all()
            files = [FileEntry(path=p, sha256=h, size=n) for p, h, n in rows]
            assert content_id(files) == cid
            for repo in (Repo("acme", "voice"), Repo("acme", "zeta"), Repo("acme", "none")):
                for base in (None, "tiny-llama", "other"):
                    with db.read() as s:
                        row = identical_version(s, repo, files, base)
                        want = None if row is None else row.id
                    assert fast_reads.identical_version_id(conn, repo, cid, base) == want
        found = fast_reads.identical_version_id(
            conn, Repo("acme", "voice"), catalog["content_id"], "tiny-llama"
        )
        assert found is not None
        v = VersionInfo.model_validate(fast_reads.version_info(conn, found))
        assert v.ref == "acme/voice:2"
    finally:
        conn.close()
        db.dispose()


def test_a_value_it_cannot_read_falls_through_before_any_output(
    catalog: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    copy = tmp_path / "home"
    copy.mkdir()
    src = sqlite3.connect(Path(catalog["LORAREG_HOME"]) / "catalog.db")
    with sqlite3.connect(copy / "catalog.db") as dst:
        src.backup(dst)
        dst.execute("UPDATE versions SET created_at = 'not a time' WHERE number = 2")
    src.close()
    env = {**catalog, "LORAREG_HOME": str(copy)}
    assert _fast(env, ["list"], monkeypatch, capsys) is None  # and printed nothing
    assert _fast(env, ["show", "acme/voice:1"], monkeypatch, capsys) is not None

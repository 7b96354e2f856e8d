"""The error table of ``registry/errors.py`` holds: one class per code, every code the API
sends has a class, and database errors reach the wire as what they are (a lost connection
is 503 "retry", a refused statement is a 500 bug, never "retry shortly")."""

from __future__ import annotations

import ast
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry import errors
from registry.api.limits import MAX_JSON_BYTES
from registry.config import load_settings
from registry.errors import LoraregError, all_error_classes, error_for_code
from registry.runtime import Runtime, open_runtime
from registry.server import create_app
from tests.fixtures.catalog import LiveServer

ROOT = Path(__file__).resolve().parents[1]
# Modules that turn errors into responses (the Hub routes speak the Hub's codes instead).
EDGE_MODULES = ["registry/api/errors.py", "registry/api/limits.py", "registry/api/origins.py"]


def test_every_class_declares_its_own_code_status_and_exit_code() -> None:
    classes = all_error_classes()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    for cls in classes:
        assert "code" in vars(cls), f"{cls.__name__} inherits its parent's code"
        assert 400 <= cls.http_status <= 599 or cls is LoraregError, cls
        assert cls.exit_code == 1, cls  # 2 is click's bad usage, 0 success
        assert error_for_code(cls.code) is cls


def test_the_docstring_table_lists_every_class_with_its_code_and_status() -> None:
    table = errors.__doc__ or ""
    rows = {}
    for line in table.splitlines():
        words = line.replace("│", " ").replace("├──", " ").replace("└──", " ").split()
        if len(words) >= 3 and words[0].isidentifier() and words[0][0].isupper():
            rows[words[0]] = words[1:3]
    for cls in all_error_classes():
        assert cls.__name__ in rows, f"{cls.__name__} missing from the table in errors.py"
        if cls is not LoraregError:  # the root's row is the table's header
            assert rows[cls.__name__] == [cls.code, str(cls.http_status)], cls


def test_the_checksum_class_does_not_shadow_sqlalchemys_integrity_error() -> None:
    from sqlalchemy.exc import IntegrityError as SQLAlchemyIntegrityError

    assert not hasattr(errors, "IntegrityError")
    assert not issubclass(errors.ChecksumMismatch, SQLAlchemyIntegrityError)


def _codes_sent_as_literals(path: Path) -> list[tuple[int, str]]:
    """String literals passed where an edge module builds an error response."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            where = {"error_response": 1, "_refuse": 2}.get(name)
            if where is not None and len(node.args) > where:
                arg = node.args[where]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.append((node.lineno, arg.value))
    return found


@pytest.mark.parametrize("module", EDGE_MODULES)
def test_edge_modules_send_codes_from_the_classes(module: str) -> None:
    assert _codes_sent_as_literals(ROOT / module) == [], "use the error class's .code"


# Behaviour: the codes the edge really sends, each provoked the way a client would.
pytestmark_storage = pytest.mark.parametrize("storage_backend", ["local"])


@pytest.fixture
def live(runtime: Runtime) -> Iterator[str]:
    with LiveServer(create_app(runtime, background=False)) as srv:
        yield srv.url


@pytestmark_storage
def test_every_code_the_edge_sends_has_a_class(live: str) -> None:
    known = {c.code for c in all_error_classes()}
    with httpx.Client(base_url=live, timeout=30) as http:
        answers = {
            "validation": http.get("/api/v1/adapters", params={"limit": "many"}),
            "NUL byte": http.get("/api/v1/adapters", params={"q": "a\x00b"}),
            "unknown route": http.get("/api/v1/no-such-thing"),
            "wrong method": http.delete("/api/v1/adapters"),
            "too large": http.post(
                "/api/v1/tokens",
                content=b" " * (MAX_JSON_BYTES + 1),
                headers={"content-type": "application/json"},
            ),
            "cross site": http.post("/api/v1/tokens", json={}, headers={"Origin": "http://evil"}),
            "rebinding": http.get("/api/v1/adapters", headers={"Host": "evil.example"}),
            "domain": http.get("/api/v1/adapters/acme/missing"),
        }
    for what, r in answers.items():
        assert r.status_code >= 400, what
        code = r.json()["error"]["code"]
        assert code in known, (what, code)
        assert r.headers["X-Error-Code"] == code, what
        assert error_for_code(code).http_status in (r.status_code, 422), (what, code)


@pytestmark_storage
def test_a_refused_statement_is_a_500_bug_not_a_retry(
    runtime: Runtime, db_backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A table that is not there (a missing migration) is a programming error: 500, logged."""
    url = runtime.settings.effective_database_url
    if db_backend == "sqlite":
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("ALTER TABLE adapters RENAME TO adapters_gone")
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            conn.execute("ALTER TABLE adapters RENAME TO adapters_gone")
    try:
        with LiveServer(create_app(runtime, background=False)) as srv:
            r = httpx.get(f"{srv.url}/api/v1/adapters", timeout=30)
        assert r.status_code == 500, r.text
        assert r.json()["error"]["code"] == "internal"
        assert "retry" not in r.text and "adapters_gone" not in r.text
        assert any("database error" in rec.getMessage() for rec in caplog.records)
    finally:
        if db_backend == "postgres":
            with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
                conn.execute("ALTER TABLE adapters_gone RENAME TO adapters")


def test_a_database_that_cannot_be_reached_is_503(tmp_path: Path) -> None:
    rt = open_runtime(
        load_settings(
            home=tmp_path / "h",
            database_url="postgresql://nobody@127.0.0.1:9/none?connect_timeout=2",
            storage_url=(tmp_path / "blobs").as_uri(),
        )
    )
    try:
        with LiveServer(create_app(rt, background=False)) as srv:
            r = httpx.get(f"{srv.url}/api/v1/adapters", timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "database_unavailable"
    finally:
        rt.close()

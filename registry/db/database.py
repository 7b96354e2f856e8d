"""Engines and sessions. Built from settings by the app factory or the CLI, never at import.

``Database.read()`` and ``Database.write()`` are the only ways services touch the catalog.
On SQLite, write sessions open with ``BEGIN IMMEDIATE`` so two writers queue on the file
lock instead of failing when one upgrades a read lock; readers never wait (WAL).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from registry.errors import DatabaseUnavailable, InvalidInput


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    path = url.split("sqlite:///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """The catalog connection: one engine (two on SQLite) and their session factories."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, immediate=False)
            self._write_engine = _sqlite_engine(url, immediate=True)
        else:
            url = _prefer_psycopg3(url)
            self.engine = create_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                pool_timeout=10,
                connect_args={"connect_timeout": 5},
            )
            self._write_engine = self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries. Closing it ends the transaction without expiring what was
        loaded, so objects read inside stay readable after the block."""
        with _translated(), self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction: committed when the block ends normally, rolled back otherwise."""
        with _translated(), self._write() as session, session.begin():
            yield session

    def ping(self) -> None:
        with _translated(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
        if self._write_engine is not self.engine:
            self._write_engine.dispose()


def _prefer_psycopg3(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the driver we install), not psycopg2."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://") :]
    return url


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        if is_connection_error(exc):
            raise DatabaseUnavailable(
                "the catalog database cannot be reached; check LORAREG_DATABASE_URL and that"
                " the database is running, then retry"
            ) from exc
        raise
    except DataError as exc:
        # The database refused a value it cannot hold (PostgreSQL: a NUL byte in text, an
        # integer out of range). That is the request's fault, never a reason to retry.
        raise InvalidInput(
            f"the catalog cannot store or search for a value in this request"
            f" ({_first_line(exc.orig)}); remove NUL bytes and out-of-range numbers"
        ) from exc


def _first_line(err: BaseException | None) -> str:
    return (str(err).strip().splitlines() or ["invalid value"])[0][:200]


def is_connection_error(exc: DBAPIError) -> bool:
    """The driver lost, refused or timed out the connection (or SQLite's file is busy)."""
    if exc.connection_invalidated:
        return True
    msg = str(exc.orig).lower()
    return any(
        s in msg
        for s in (
            "connection",
            "could not connect",
            "server closed",
            "terminating",
            "timeout",
            "unable to open database",
            "database is locked",
        )
    )

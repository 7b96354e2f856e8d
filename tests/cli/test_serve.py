"""``lorareg serve`` and ``lorareg worker`` as processes, the way a user starts them."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

EXE = Path(sys.executable).parent / "lorareg"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {"LORAREG_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if "PYTHONPATH" in os.environ:  # a worktree run: its code, not the editable install's
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_on_a_taken_port_says_so_and_exits_1(tmp_path: Path, taken_port: int) -> None:
    r = subprocess.run(
        [EXE, "serve", "--port", str(taken_port)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"error: port {taken_port} is taken")
    assert "serving" not in r.stderr and "Traceback" not in r.stderr


def test_serve_says_serving_once_bound_and_answers_head_healthz(tmp_path: Path) -> None:
    """--port 0 binds a free port and prints it; load balancers probe with HEAD."""
    proc = subprocess.Popen(
        [EXE, "serve", "--port", "0"], env=_env(tmp_path), stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("lorareg serving on http://127.0.0.1:"), first
        url = first.split()[3]
        port = int(url.rsplit(":", 1)[1])
        assert port != 0
        # The socket is bound before the banner: connecting cannot be refused now.
        with socket.create_connection(("127.0.0.1", port), timeout=30):
            pass
        for path in ("/healthz", "/readyz"):
            r = httpx.head(url + path, timeout=30)
            assert r.status_code == 200 and r.content == b""
        assert httpx.get(url + "/healthz", timeout=30).json() == {"status": "ok"}
        _idle_connection_stays_open(port)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if proc.stderr is not None:
            proc.stderr.close()


def _idle_connection_stays_open(port: int) -> None:
    """A keep-alive connection idle for longer than uvicorn's default 5 s is still served.

    With the default, a client that sends on a pooled connection as the server closes it gets
    "server disconnected without a response" (the load suite saw 52 of 27,650 resolves fail).
    """
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        for _ in range(2):
            sock.sendall(request)
            head = _read_response(sock)
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            assert b"connection: close" not in head.lower()
            time.sleep(6.0)  # idle past uvicorn's default keep-alive
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # nothing to read: the connection is open
            assert sock.recv(1, socket.MSG_PEEK) != b"", "the server closed an idle connection"


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response (head and its Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection mid-response: {data[:100]!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.lower().split(b"\r\n")
    length = next(int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    return head

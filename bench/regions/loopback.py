"""Regions on loopback for the benchmarks: one moto S3 server process per region, each
behind a TCP relay that can be switched off to stand for an outage (moto keeps its
buckets in memory, so stopping the server itself would lose them)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import boto3
from botocore.config import Config

from tests.fixtures.s3 import free_port


class Relay:
    """Forwards 127.0.0.1:port to a backend port; ``down()`` refuses and cuts every
    connection (a region that does not answer), ``up()`` serves again."""

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.port = free_port()
        self._up = threading.Event()
        self._up.set()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=256)
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        self._up.clear()
        with self._lock:
            for c in list(self._conns):
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
            self._conns.clear()

    def up(self) -> None:
        self._up.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                with contextlib.suppress(OSError):
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                    client.close()  # a reset: "connection refused" as near as TCP allows
                continue
            try:
                backend = socket.create_connection(("127.0.0.1", self.backend_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, backend))
            for a, b in ((client, backend), (backend, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._conns.discard(src)


@dataclass
class Region:
    name: str
    process: subprocess.Popen[bytes]
    backend_port: int
    relay: Relay | None = None
    buckets: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        """What lorareg is configured with (through the relay when there is one)."""
        port = self.relay.port if self.relay else self.backend_port
        return f"http://127.0.0.1:{port}"

    @property
    def direct(self) -> str:
        return f"http://127.0.0.1:{self.backend_port}"

    def client(self, *, direct: bool = False) -> object:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.direct if direct else self.endpoint,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=16),
        )


def _start(name: str, relay: bool) -> Region:
    for _ in range(3):
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = boto3.session.Session().client("s3", endpoint_url=f"http://127.0.0.1:{port}")
        for _ in range(150):
            if proc.poll() is not None:
                break
            try:
                probe.list_buckets()
                region = Region(name, proc, port, Relay(port) if relay else None)
                return region
            except Exception:
                time.sleep(0.1)
        proc.terminate()
    raise RuntimeError(f"moto server for region {name} did not start")


@contextlib.contextmanager
def regions(names: list[str], *, relay: set[str] = frozenset()) -> Iterator[dict[str, Region]]:  # type: ignore[assignment]
    """One S3 server per name (behind a relay for the names in ``relay``), stopped after."""
    started: dict[str, Region] = {}
    try:
        for n in names:
            started[n] = _start(n, n in relay)
        yield started
    finally:
        for r in started.values():
            r.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.process.wait(timeout=10)

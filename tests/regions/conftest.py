"""Regions fixtures: two more moto S3 servers standing for regional stores, the first one
behind a TCP relay that a test can cut and restore (an outage that keeps the bucket).

- ``region_servers``: session-scoped endpoints of the ``eu`` and ``us`` moto servers.
- ``eu_link``: a relay to the eu server; ``.cut()`` refuses connections, ``.restore()``.
- ``settings``: the catalog fixtures' settings (SQLite and PostgreSQL), an S3 primary on
  ``s3_server``, and ``LORAREG_REGIONS`` with ``eu`` (replicate, through the relay) and
  ``us`` (external), each in a fresh bucket.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from registry.config import Settings, load_settings
from tests.fixtures.s3 import TEST_PART_SIZE, _stop, free_port, start_moto


@pytest.fixture(scope="session")
def region_servers(
    s3_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Endpoints of two more S3 servers (``s3_server`` set up the fake AWS credentials)."""
    folder = tmp_path_factory.mktemp("moto-regions")
    procs = {}
    try:
        for name in ("eu", "us"):
            procs[name] = start_moto(folder / f"{name}.log")
        yield {name: endpoint for name, (_, endpoint) in procs.items()}
    finally:
        for proc, _ in procs.values():
            _stop(proc)


class Relay:
    """A TCP relay on a fixed loopback port to ``target``: ``cut`` closes the listener and
    every open connection (clients get 'connection refused'); ``restore`` listens again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            # Wakes the thread blocked in accept(); close() alone would not on Linux.
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def eu_link(region_servers: dict[str, str]) -> Iterator[Relay]:
    relay = Relay(int(region_servers["eu"].rsplit(":", 1)[1]))
    yield relay
    relay.cut()


def s3(endpoint: str) -> Any:
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, config=Config(s3={"addressing_style": "path"})
    )


@pytest.fixture
def buckets(region_servers: dict[str, str], s3_server: str) -> dict[str, str]:
    """A fresh bucket per region (and the primary), by region name."""
    names = {}
    for region, endpoint in {"primary": s3_server, **region_servers}.items():
        name = f"lorareg-{region}-{uuid.uuid4().hex[:12]}"
        client = s3(endpoint)
        client.create_bucket(Bucket=name)
        client.close()
        names[region] = name
    return names


@pytest.fixture
def storage_overrides(buckets: dict[str, str], s3_server: str) -> dict[str, Any]:
    return {
        "storage_url": f"s3://{buckets['primary']}/blobs",
        "s3_endpoint_url": s3_server,
        "part_size": TEST_PART_SIZE,
    }


@pytest.fixture
def regions_json(buckets: dict[str, str], region_servers: dict[str, str], eu_link: Relay) -> str:
    return json.dumps(
        [
            {
                "name": "eu",
                "storage_url": f"s3://{buckets['eu']}/blobs",
                "endpoint_url": eu_link.url,
            },
            {
                "name": "us",
                "storage_url": f"s3://{buckets['us']}/blobs",
                "endpoint_url": region_servers["us"],
                "mode": "external",
            },
        ]
    )


@pytest.fixture
def settings(
    database_url: str, storage_overrides: dict[str, Any], regions_json: str, tmp_path: Path
) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        database_url=database_url,
        cache_dir=tmp_path / "cache",
        author="tester",
        regions=regions_json,
        **storage_overrides,
    )

"""A production-shaped lorareg on one machine: N ``lorareg serve`` and M ``lorareg worker``
processes sharing one PostgreSQL catalog and one S3 bucket, as separate OS processes so
they share nothing but the database and the bucket (as replicas behind a balancer would).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from tests.fixtures.s3 import free_port

EXE = Path(sys.executable).parent / "lorareg"


@dataclass
class Process:
    """One started process and the file its stdout and stderr go to."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def log_text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        # SIGTERM first: uvicorn and the worker both shut down cleanly on it.
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
        return self.proc.returncode


@dataclass
class Cluster:
    """Environment, then ``start_servers`` / ``start_workers``; ``stop`` ends them all."""

    env: dict[str, str]
    logs: Path
    servers: list[Process] = field(default_factory=list)
    workers: list[Process] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)

    def _spawn(self, name: str, args: list[str]) -> Process:
        log_path = self.logs / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed by Process.stop
        proc = subprocess.Popen(
            [str(EXE), *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return Process(name, proc, log_path, log)

    def start_servers(self, count: int, *, deadline_s: float = 60.0) -> None:
        started = []
        for i in range(count):
            port = free_port()
            p = self._spawn(f"serve-{i}", ["serve", "--host", "127.0.0.1", "--port", str(port)])
            started.append((p, f"http://127.0.0.1:{port}"))
        # Started together, waited for together: on two cores imports dominate start-up.
        for p, url in started:
            self.servers.append(p)
            _wait_ready(p, url, deadline_s)
            self.urls.append(url)

    def start_workers(self, count: int, *, deadline_s: float = 60.0) -> None:
        started = [
            self._spawn(f"worker-{i}", ["worker", "--poll-seconds", "0.2", "--lease-seconds", "30"])
            for i in range(count)
        ]
        deadline = time.monotonic() + deadline_s
        for p in started:
            self.workers.append(p)
            # The worker says so on stderr once it is polling the queue.
            while "waiting for jobs" not in p.log_text():
                if p.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{p.name} did not start:\n{p.log_text()}")
                time.sleep(0.1)

    def exited(self) -> list[str]:
        """Names of the processes that have exited (none should, under load)."""
        return [p.name for p in self.servers + self.workers if p.proc.poll() is not None]

    def log_tails(self, lines: int = 30) -> str:
        """The last lines each process wrote, for a failure message."""
        return "\n".join(
            f"--- {p.name} (exit {p.proc.poll()}):\n"
            + "\n".join(p.log_text().splitlines()[-lines:])
            for p in self.servers + self.workers
        )

    def stop(self) -> None:
        for p in self.workers + self.servers:
            p.stop()


def _wait_ready(p: Process, url: str, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{p.name} at {url} did not become ready:\n{p.log_text()}")


def cluster_env(
    *, database_url: str, storage_url: str, s3_endpoint_url: str, home: Path
) -> dict[str, str]:
    """The environment every process gets: one catalog, one bucket, open auth on loopback."""
    env = {
        **os.environ,
        "LORAREG_HOME": str(home),
        "LORAREG_DATABASE_URL": database_url,
        "LORAREG_STORAGE_URL": storage_url,
        "LORAREG_S3_ENDPOINT_URL": s3_endpoint_url,
        "LORAREG_CACHE_DIR": str(home / "cache"),
        "LORAREG_AUTH": "open",
        "LORAREG_AUTHOR": "load",
    }
    env.pop("LORAREG_URL", None)
    env.pop("LORAREG_TOKEN", None)
    return env

"""Many followers of one lorareg server's change feed, on raw non-blocking sockets with
``selectors``, spread over ``--procs`` worker processes (an HTTP client object or an asyncio
task per follower would cost more CPU than the server side being measured, on the same
machine).

    python bench/feed/followers.py URL N --mode sse|longpoll --since ID [--procs 2]

Prints ``READY <connected> <failed> <worker pids...>`` once every follower is connected and
waiting, then follows (answering ``WAIT`` lines, see ``_worker``) until its stdin closes,
then prints one JSON line: for each event id, the ``time.time()`` at which each follower
received it, and the count of broken connections.

A stream follower records an event when a received line reads ``id: <n>`` (uvicorn writes
each send as one chunk, so chunk framing never splits a line; a line split across two
reads is joined first). A long-poll follower reads each answer by its Content-Length and
asks again from the newest id.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections import defaultdict
from urllib.parse import urlsplit

CONNECTS_AT_ONCE = 256


class Follower:
    __slots__ = ("sock", "state", "buffer", "cursor", "length")

    def __init__(self, sock: socket.socket, cursor: int) -> None:
        self.sock = sock
        self.state = "connecting"  # -> "head" (request sent) -> "live"
        self.buffer = b""
        self.cursor = cursor
        self.length = -1  # long poll: the body length of the answer being read


class Crowd:
    def __init__(self, host: str, port: int, n: int, mode: str, since: int) -> None:
        self.addr = (host, port)
        self.n, self.mode, self.since = n, mode, since
        self.sel = selectors.DefaultSelector()
        self.received: dict[int, list[float]] = defaultdict(list)
        self.ready = self.failed = self.broken = 0
        self.started = 0
        self.pending = 0  # connects not yet answered

    def request(self, f: Follower) -> bytes:
        if self.mode == "sse":
            return (
                f"GET /api/v1/events?since={self.since} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Accept: text/event-stream\r\n\r\n"
            ).encode()
        return (
            f"GET /api/v1/events?since={f.cursor}&wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        ).encode()

    def connect_more(self) -> None:
        while self.started < self.n and self.pending < CONNECTS_AT_ONCE:
            s = socket.socket()
            s.setblocking(False)
            err = s.connect_ex(self.addr)
            if err not in (0, errno.EINPROGRESS):
                s.close()
                self.failed += 1
                self.started += 1
                continue
            f = Follower(s, self.since)
            self.sel.register(s, selectors.EVENT_WRITE, f)
            self.started += 1
            self.pending += 1

    def fail(self, f: Follower) -> None:
        self.sel.unregister(f.sock)
        f.sock.close()
        if f.state == "live":
            self.broken += 1
        else:
            self.failed += 1
            self.pending -= 1

    def on_writable(self, f: Follower) -> None:
        if f.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            self.fail(f)
            return
        f.sock.send(self.request(f))
        f.state = "head"
        self.sel.modify(f.sock, selectors.EVENT_READ, f)

    def on_readable(self, f: Follower) -> None:
        try:
            data = f.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.fail(f)
            return
        now = time.time()
        if self.mode == "sse":
            self.sse(f, data, now)
        else:
            self.long_poll(f, data, now)

    def sse(self, f: Follower, data: bytes, now: float) -> None:
        buf = f.buffer + data
        if f.state == "head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                f.buffer = buf
                return
            if not buf.startswith(b"HTTP/1.1 200"):
                self.fail(f)
                return
            f.state = "live"
            self.ready += 1
            self.pending -= 1
            buf = buf[end + 4 :]
        *lines, f.buffer = buf.split(b"\n")
        for line in lines:
            if line.startswith(b"id: "):
                self.received[int(line[4:])].append(now)

    def long_poll(self, f: Follower, data: bytes, now: float) -> None:
        buf = f.buffer + data
        while True:
            if f.length < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = buf[:end].lower()
                f.length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
                status = head[9:12]
                buf = buf[end + 4 :]
                if status != b"200":
                    f.length = -1
                    f.buffer = b""
                    self.fail(f)  # 429: over the cap
                    return
            if len(buf) < f.length:
                break
            body, buf = buf[: f.length], buf[f.length :]
            f.length = -1
            for e in json.loads(body):
                self.received[e["id"]].append(now)
                f.cursor = max(f.cursor, e["id"])
            f.sock.send(self.request(f))
        f.buffer = buf

    def step(self, timeout: float) -> list[str]:
        """One round of socket events; the command lines read from stdin meanwhile."""
        lines: list[str] = []
        for key, _mask in self.sel.select(timeout):
            if key.data is None:  # stdin
                chunk = os.read(key.fd, 4096).decode()
                lines.append(chunk)
                continue
            f: Follower = key.data
            if f.state == "connecting":
                self.on_writable(f)
                if self.mode == "longpoll" and f.state == "head":
                    f.state = "live"  # its first poll waits: connected and waiting
                    self.ready += 1
                    self.pending -= 1
            else:
                self.on_readable(f)
        self.connect_more()
        return lines


def _worker(url: str, n: int, mode: str, since: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parts = urlsplit(url)
    crowd = Crowd(parts.hostname or "127.0.0.1", parts.port or 80, n, mode, since)
    crowd.connect_more()
    while crowd.ready + crowd.failed < n:
        crowd.step(0.05)
    end = time.monotonic() + 0.5  # the last requests reach their wait
    while time.monotonic() < end:
        crowd.step(0.05)
    print(f"READY {crowd.ready} {crowd.failed}", flush=True)
    # Commands until the driver closes our stdin: "WAIT <event id> <seconds>" answers how
    # many of our followers hold that event, once all do or the seconds are up.
    crowd.sel.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
    text = ""
    while True:
        got = crowd.step(0.05)
        if any(chunk == "" for chunk in got):
            break
        text += "".join(got)
        while "\n" in text:
            line, text = text.split("\n", 1)
            _, event_id, seconds = line.split()
            until = time.monotonic() + float(seconds)
            while (
                len(crowd.received.get(int(event_id), ())) < crowd.ready
                and time.monotonic() < until
            ):
                text += "".join(crowd.step(0.05))  # (the driver sends nothing meanwhile)
            print(len(crowd.received.get(int(event_id), ())), flush=True)
    print(json.dumps({"received": crowd.received, "broken": crowd.broken}), flush=True)


def main() -> None:
    url, n = sys.argv[1], int(sys.argv[2])
    mode = sys.argv[sys.argv.index("--mode") + 1]
    since = int(sys.argv[sys.argv.index("--since") + 1])
    if "--worker" in sys.argv:
        _worker(url, n, mode, since)
        return
    procs = int(sys.argv[sys.argv.index("--procs") + 1]) if "--procs" in sys.argv else 2
    shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                url,
                str(k),
                "--mode",
                mode,
                "--since",
                str(since),
                "--worker",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in shares
    ]
    ready = failed = 0
    for w in workers:
        assert w.stdout is not None
        _, r, f = w.stdout.readline().split()
        ready, failed = ready + int(r), failed + int(f)
    print(f"READY {ready} {failed} {' '.join(str(w.pid) for w in workers)}", flush=True)
    while line := sys.stdin.readline():
        for w in workers:
            assert w.stdin is not None
            w.stdin.write(line)
            w.stdin.flush()
        print(sum(int(w.stdout.readline()) for w in workers if w.stdout), flush=True)
    received: dict[str, list[float]] = defaultdict(list)
    broken = 0
    for w in workers:
        assert w.stdin is not None and w.stdout is not None
        w.stdin.close()
        got = json.loads(w.stdout.readline())
        for k, v in got["received"].items():
            received[k].extend(v)
        broken += got["broken"]
        w.wait(timeout=60)
    print(json.dumps({"received": received, "broken": broken, "failed": failed}), flush=True)


if __name__ == "__main__":
    main()

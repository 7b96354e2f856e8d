"""Many followers of one lorareg server's change feed, in one asyncio process on raw sockets
(an HTTP client object per follower would cost more than the server side being measured).

    python bench/feed/followers.py URL N --mode sse|longpoll --since ID

Prints ``READY <connected> <failed>`` once every follower is connected and waiting, then
follows (answering ``WAIT`` lines, see ``main``) until its stdin closes, then prints one JSON line: for each event id, the
``time.time()`` at which each follower received it, and the count of broken connections.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections import defaultdict
from urllib.parse import urlsplit

CONNECTS_AT_ONCE = 256


class Followers:
    def __init__(self, host: str, port: int, since: int) -> None:
        self.host, self.port, self.since = host, port, since
        self.received: dict[int, list[float]] = defaultdict(list)
        self.ready = 0
        self.failed = 0
        self.broken = 0

    async def _connect(
        self, path: str, accept: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n\r\n".encode())
        await writer.drain()
        return reader, writer

    async def sse(self, gate: asyncio.Semaphore) -> None:
        try:
            async with gate:
                reader, _writer = await self._connect(
                    f"/api/v1/events?since={self.since}", "text/event-stream"
                )
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(head[:80])
                self.ready += 1
        except Exception:
            self.failed += 1
            return
        buffer = b""
        try:
            while True:  # chunked transfer encoding, then SSE lines
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    break
                buffer += (await reader.readexactly(size + 2))[:-2]
                now = time.time()
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.startswith(b"id: "):
                        self.received[int(line[4:])].append(now)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        self.broken += 1

    async def long_poll(self, gate: asyncio.Semaphore) -> None:
        cursor = self.since
        first = True
        try:
            async with gate:
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
            while True:
                writer.write(
                    f"GET /api/v1/events?since={cursor}&wait=30 HTTP/1.1\r\n"
                    "Host: 127.0.0.1\r\n\r\n".encode()
                )
                await writer.drain()
                if first:
                    self.ready += 1
                    first = False
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                now = time.time()
                if not head.startswith(b"HTTP/1.1 200"):
                    await asyncio.sleep(1)  # 429: over the cap
                    continue
                for e in json.loads(body):
                    self.received[e["id"]].append(now)
                    cursor = max(cursor, e["id"])
        except Exception:
            if first:
                self.failed += 1
            else:
                self.broken += 1


async def main() -> None:
    url, n = sys.argv[1], int(sys.argv[2])
    mode = sys.argv[sys.argv.index("--mode") + 1]
    since = int(sys.argv[sys.argv.index("--since") + 1])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    parts = urlsplit(url)
    f = Followers(parts.hostname or "127.0.0.1", parts.port or 80, since)
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
    follow = f.sse if mode == "sse" else f.long_poll
    tasks = [asyncio.create_task(follow(gate)) for _ in range(n)]
    while f.ready + f.failed < n:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the last requests reach their wait
    print(f"READY {f.ready} {f.failed}", flush=True)
    loop = asyncio.get_running_loop()
    # Commands until the driver closes our stdin: "WAIT <event id> <seconds>" answers how
    # many followers hold that event, once all do or the seconds are up.
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        _, event_id, seconds = line.split()
        end = time.monotonic() + float(seconds)
        while len(f.received.get(int(event_id), ())) < f.ready and time.monotonic() < end:
            await asyncio.sleep(0.05)
        print(len(f.received.get(int(event_id), ())), flush=True)
    print(json.dumps({"received": f.received, "broken": f.broken, "failed": f.failed}), flush=True)
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main())

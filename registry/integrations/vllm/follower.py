"""The plugin's follower: promotions reach the names vLLM already loaded.

vLLM keeps a resolved name forever, so a thread in vLLM's API server process follows
lorareg's change feed, read exactly as ``lorareg sync --follow`` reads it: through the
sync source's ``events`` (``registry.sync.source.RemoteSource``), which holds one stream
of Server-Sent Events open, resumes it with ``Last-Event-ID`` from the follower's cursor
whenever it breaks or the server ends it, and long-polls a server that does not stream
(the embedded catalog is polled). When an event names an adapter behind a served name,
the name is resolved again; if its version changed, the new version is fetched into its own
content-id folder first (so the switch is warm), then switched in vLLM through its
runtime endpoints (``registry.sync.engines.VllmEngine.switch``: requests in flight
finish on the old version, new ones get the new one). A name whose reference no longer
names anything (demoted, erased) is unloaded. The replaced folder stays in use for the
grace period, then becomes evictable.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from registry.catalog.refs import Repo
from registry.domain import EventInfo
from registry.errors import LoraregError
from registry.integrations.vllm.gate import Refused
from registry.integrations.vllm.resolver import AdapterResolver, Served
from registry.sync.engines import EngineError, VllmEngine
from registry.sync.follow import Backoff
from registry.sync.source import SyncSource

Log = Callable[[str], None]
# A server's resolve answers may trail its feed by up to 200 ms: look again after this.
RECHECK_S = 0.5
RETRY_S = 5.0


class NameFollower:
    """Follows the feed in a daemon thread and keeps ``resolver``'s names current in
    ``engine`` (the vLLM server this process is)."""

    def __init__(
        self,
        resolver: AdapterResolver,
        source: SyncSource,
        engine: VllmEngine,
        *,
        log: Log,
        poll_wait_s: float = 10.0,
    ) -> None:
        self.resolver = resolver
        self.source = source
        self.engine = engine
        self.log = log
        self.poll_wait_s = poll_wait_s
        self.backoff = Backoff()
        self.cursor: int | None = None
        self._due: dict[Repo, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lorareg-follower", daemon=True)

    def start(self) -> None:
        """Read the feed's head now (so no change after this call is missed), then follow
        in the thread."""
        with contextlib.suppress(LoraregError):  # else the thread reads it later
            self.cursor = self._head()
        self.thread.start()

    def close(self) -> None:
        """Stop following: the open stream is closed, which ends a wait on it at once."""
        self.stop.set()
        self.source.close()
        self.thread.join(timeout=5)
        self.source.close()  # one the thread opened just before it saw ``stop``

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.step()
                self.backoff.reset()
            except LoraregError as exc:
                delay = self.backoff.next()
                if self.backoff.failures == 1:
                    self.log(f"lorareg feed paused: {exc.message}; retrying with backoff")
                self.stop.wait(delay)

    def step(self) -> None:
        """Read the feed once (from its head on the first call), then refresh the names
        of every adapter it named, and of those due for a second look."""
        if self.cursor is None:
            self.cursor = self._head()
        wait = self.poll_wait_s
        if self._due:
            wait = max(0.0, min(wait, min(self._due.values()) - time.monotonic()))
        batch = self._events(self.cursor, wait=wait)
        now = time.monotonic()
        named = {Repo(e.namespace, e.adapter) for e in batch if e.namespace and e.adapter}
        due = {r for r, t in self._due.items() if t <= now}
        for repo in due:
            del self._due[repo]
        for repo in sorted(named | due, key=str):
            self.refresh(repo)
        for repo in named:
            self._due.setdefault(repo, now + RECHECK_S)
        if batch:
            self.cursor = batch[-1].id
        self.resolver.release_expired()

    def refresh(self, repo: Repo) -> None:
        """Bring every served name of ``repo`` to the version its reference names now."""
        for served in self.resolver.names_of(repo):
            try:
                self._refresh(served)
            except (EngineError, LoraregError, Refused, OSError) as exc:
                self.log(f"{served.name}: not switched: {exc}; trying again in {RETRY_S:g} s")
                self._due[repo] = time.monotonic() + RETRY_S

    def _refresh(self, served: Served) -> None:
        target = self.resolver.target(served.ref)
        if target is None:
            self.engine.unload(served.name)
            self.resolver.forget(served.name)
            self.log(f"{served.name}: unloaded (it names no version any more)")
            return
        if target.content_id == served.content_id:
            return
        new = self.resolver.fetch(served.name, served.ref, target)
        try:
            self.engine.switch(served.name, str(new.path))
        except BaseException:
            new.holding.release()
            raise
        self.resolver.replace(new)
        self.log(f"{served.name}: v{served.version} -> v{new.version} ({new.content_id[:12]})")

    def _head(self) -> int:
        cursor = 0
        while batch := self._events(cursor, wait=0):
            cursor = batch[-1].id
        return cursor

    def _events(self, since: int, *, wait: float) -> list[EventInfo]:
        """The feed after ``since``: with ``wait``, from the open stream (opened, or opened
        again from ``since``, as needed); without, a plain read (or what the open stream
        holds already)."""
        if self.stop.is_set():
            return []
        return self.source.events(since, wait=wait, namespace=None)

"""Running a sync: once, or following the change feed until stopped.

Start-up (both modes): read the feed from the saved cursor to its head, then re-resolve,
then save the head as the cursor (with the options of the pass). After a complete pass with
the same options, on a folder that still matches its state, only the adapters the events
since name are re-resolved (and those the state lists as pending: failed, or named by the
newest events last time, and those the disk budget left out); every adapter is re-resolved
on a first pass, after other options, on a folder changed behind sync's back, when the feed
no longer holds the cursor, or when there are more events than adapters. Anything changed
before the head is in that pass; anything after it comes through the feed, so nothing is
missed however long the node was away, and nothing before the cursor is replayed.

Following: read the feed from the cursor (over HTTP a stream of Server-Sent Events, resumed
from the cursor whenever it breaks; a long poll with an older server); the events name the
adapters to re-resolve, and an ``experiment.*`` change re-reads the running experiments.
The cursor on disk moves only after those adapters are in place, so a crash replays a
batch rather than losing it. When the registry is unreachable the loop retries with
exponential backoff and jitter, logging once when it goes and once when it comes back.

A server answers ``resolve`` from a cache that can trail its feed by up to 200 ms (a
change made through another replica), so every adapter the feed names is resolved again
half a second later; the second answer is usually the same and changes nothing.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta

from registry.catalog.refs import Repo
from registry.domain import EventInfo
from registry.errors import LoraregError
from registry.sync.experiments import affects
from registry.sync.layout import NodeLayout
from registry.sync.node import Log, NodeSync, SyncOptions, transient
from registry.sync.source import SyncSource
from registry.sync.state import FolderLock, SyncState, now, open_state, save_state

COLLECT_EVERY_S = 1.0
# When to resolve an adapter named by the feed a second time (see ``_step``).
RECHECK_S = 0.5
# A pass after a complete one reads the feed from its cursor and re-resolves only what the
# events name, unless there are more events than adapters on the node (or than this).
MIN_EVENTS = 100
# Adapters named by events this close to the newest one read are re-resolved by the next
# pass as well: the server's resolve cache may not have had them yet.
RECENT_S = 1.0


def named(events: Iterable[EventInfo]) -> set[Repo]:
    """The adapters a run of events names: those to re-resolve."""
    return {Repo(e.namespace, e.adapter) for e in events if e.namespace and e.adapter}


def recent(events: Sequence[EventInfo]) -> set[Repo]:
    """The adapters named by the events within ``RECENT_S`` of the newest of ``events``."""
    if not events:
        return set()
    since = events[-1].created_at - timedelta(seconds=RECENT_S)
    return named(e for e in events if e.created_at >= since)


class Backoff:
    """Delays of ``initial * 2**n`` seconds up to ``maximum``, each with +-25% jitter."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next(self) -> float:
        delay = min(self.maximum, self.initial * 2**self.failures)
        self.failures += 1
        return delay * random.uniform(0.75, 1.25)

    def reset(self) -> None:
        self.failures = 0


class Follower:
    """Sync ``layout`` from ``source``; ``run`` holds the folder's lock while it works."""

    def __init__(
        self,
        layout: NodeLayout,
        source: SyncSource,
        options: SyncOptions,
        *,
        log: Log,
        poll_wait_s: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.layout = layout
        self.source = source
        self.options = options
        self.log = log
        self.poll_wait_s = poll_wait_s
        self.backoff = backoff or Backoff()
        # Adapters that failed on their own (a damaged blob) are retried on this schedule.
        self.adapter_backoff = Backoff(initial=self.backoff.initial, maximum=300.0)
        self._retry: set[Repo] = set()
        self._retry_at = 0.0
        self._collected_at = 0.0
        self._recheck: dict[Repo, float] = {}
        self.stop = threading.Event()
        # True only while blocked on the feed or a backoff: nothing half-done to lose, so a
        # signal handler may leave at once instead of waiting for the long poll to end.
        self.idle = False
        self.node: NodeSync | None = None

    def run(self, *, follow: bool) -> None:
        """Sync once; with ``follow``, then keep following until ``stop`` is set.

        Once, a failure raises. Following, outages are waited out (start-up included) and
        only a refusal such as a bad token raises.
        """
        self.layout.root.mkdir(parents=True, exist_ok=True)
        with FolderLock(self.layout):
            self.layout.prepare()
            state = open_state(self.layout, self.options.binding, self.source.identity)
            node = self.node = NodeSync(self.layout, self.source, state, self.options, log=self.log)
            if not follow:
                self._start(node)
                return
            try:
                while not self.stop.is_set() and not self._attempt(lambda: self._start(node)):
                    pass
                while not self.stop.is_set():
                    self._attempt(lambda: self._step(node))
            finally:
                self.source.close()  # the open event stream, if any

    def _start(self, node: NodeSync) -> None:
        """One pass: re-resolve only what the feed named since the last pass when the
        folder is whole and was synced with the same options, else every adapter."""
        state = node.state
        cursor = state.last_event_id
        why = self._full_pass_reason(node)
        if cursor > 0 and not self._has_cursor(cursor):
            # The cursor is an event this node saw; a feed without it was restored or replaced.
            self.log(f"the registry's feed no longer has event {cursor}; re-reading it all")
            why = why or f"the feed no longer has event {cursor}"
            cursor = 0
        bound = None if why else max(MIN_EVENTS, len(state.adapters) + len(state.left_out))
        head, events, whole = self._read(cursor, bound=bound)
        if why is None and not whole:
            why = f"more than {bound} events since the last pass"
        # The newest changes may not be in the server's resolve cache yet: ask again soon
        # (following) or at the next pass (``pending`` in the state).
        due = time.monotonic() + RECHECK_S
        self._recheck.update({r: due for r in recent(events)})
        if why is None:
            repos = named(events)
            failed = node.sync_changed(repos)
            how = f"{len(repos)} named by {len(events)} event(s) re-resolved"
        else:
            failed = node.sync_all()
            how = f"all re-resolved: {why}"
        self._failed(failed)
        state.last_event_id = head
        state.caught_up_at = now()
        state.pass_options = self._pass_options()
        self._save_pending(state)
        save_state(self.layout, state)
        where = f"{self.options.ref} for {self.options.base}"
        self.log(
            f"synced {len(state.adapters)} adapter(s) in {where} into {self.layout.root}"
            f" (event {head}; {how})" + (f"; {len(failed)} failed" if failed else "")
        )

    def _full_pass_reason(self, node: NodeSync) -> str | None:
        """Why this pass must re-resolve every adapter; None when the feed may tell."""
        state = node.state
        if state.last_event_id <= 0:
            return "no event cursor yet"
        if state.pass_options != self._pass_options():
            return "options changed since the last pass"
        if not node.consistent():
            return "the folder does not match its state"
        return None

    def _pass_options(self) -> dict[str, object]:
        # Another token may see other namespaces: events it saw are not the whole story.
        return {**self.options.pass_options(), "credentials": self.source.credentials}

    def _has_cursor(self, cursor: int) -> bool:
        """The feed still holds event ``cursor`` (it was not restored or replaced)."""
        probe = self.source.events(cursor - 1, wait=0, namespace=self.options.namespace)
        return bool(probe) and probe[0].id == cursor

    def _read(self, cursor: int, *, bound: int | None) -> tuple[int, list[EventInfo], bool]:
        """The newest event id after ``cursor`` and the events read, page by page. All of
        them (True) unless there are more than ``bound``; then (and without a bound) only
        the last page (False)."""
        kept: list[EventInfo] = []
        whole = bound is not None
        while batch := self.source.events(cursor, wait=0, namespace=self.options.namespace):
            cursor = batch[-1].id
            if self.node is not None:
                self.node.state.last_event_at = batch[-1].created_at
            if whole and bound is not None and len(kept) + len(batch) <= bound:
                kept.extend(batch)
            else:
                whole = False
                kept = batch
        return cursor, kept, whole

    def _save_pending(self, state: SyncState) -> None:
        """What a pass after this one must re-resolve whatever the feed says."""
        state.pending = sorted(str(r) for r in self._retry | set(self._recheck))

    def _step(self, node: NodeSync) -> None:
        """One long poll, then the changes it names (and failed adapters, when due)."""
        state = node.state
        due = [*self._recheck.values(), *([self._retry_at] if self._retry else [])]
        wait = self.poll_wait_s
        if due:
            wait = max(0.0, min(wait, min(due) - time.monotonic()))
        self.idle = True
        try:
            batch = self.source.events(
                state.last_event_id, wait=wait, namespace=self.options.namespace
            )
        finally:
            self.idle = False
        names = named(batch)
        clock = time.monotonic()
        rechecks = {r for r, t in self._recheck.items() if t <= clock}
        retries = set(self._retry) if clock >= self._retry_at else set()
        repos = names | rechecks | retries
        failed = node.apply(sorted(repos, key=str))
        events = [(e.kind, f"{e.namespace}/{e.adapter}" if e.adapter else None) for e in batch]
        if affects(node, events):
            node.sync_experiments()  # one call lists them all: no per-experiment requests
        for r in rechecks:
            del self._recheck[r]
        for r in names:
            # A server's resolve answers come from a cache that may trail the feed by a
            # moment (up to 200 ms for a change made through another replica): ask again.
            self._recheck[r] = clock + RECHECK_S
        self._retry.difference_update(retries)
        if batch:
            state.last_event_id = batch[-1].id
            state.last_event_at = batch[-1].created_at
        state.caught_up_at = now()
        if time.monotonic() - self._collected_at >= COLLECT_EVERY_S:
            node.collect()  # a scan of the folder: not after every change of a burst
            self._collected_at = time.monotonic()
        self._save_pending(state)
        save_state(self.layout, state)
        if failed:
            self._failed(failed)
        elif retries:
            self.adapter_backoff.reset()

    def _failed(self, repos: list[Repo]) -> None:
        if repos:
            self._retry.update(repos)
            self._retry_at = time.monotonic() + self.adapter_backoff.next()

    def _attempt(self, work: Callable[[], None]) -> bool:
        """Run ``work``; on a transient failure wait one backoff step and return False."""
        try:
            work()
        except (LoraregError, OSError) as exc:
            if not transient(exc):
                raise
            delay = self.backoff.next()
            if self.backoff.failures == 1:
                why = exc.message if isinstance(exc, LoraregError) else str(exc)
                self.log(f"sync paused: {why}; retrying with backoff")
            self.idle = True
            try:
                self.stop.wait(delay)
            finally:
                self.idle = False
            return False
        if self.backoff.failures:
            cursor = self.node.state.last_event_id if self.node else 0
            self.log(f"sync resumed after event {cursor}")
            self.backoff.reset()
        return True

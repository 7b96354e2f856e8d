"""Many adapters per node: resolve and fetch in parallel, place them within the budget.

``apply`` of a folder with thousands of adapters spends its time waiting on the network:
one resolve and one or two downloads per adapter. Resolves (over HTTP) and downloads run
``PARALLEL`` at a time; building folders, flipping links and the state stay on the
calling thread, one adapter at a time, in the order the budget prefers (pinned first,
then most recently used). Work goes in chunks, so a budget decision is made before the
bytes it admits are fetched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from registry.catalog.refs import Repo
from registry.sync.budget import need_bytes
from registry.sync.source import RemoteSource, Target

if TYPE_CHECKING:
    from registry.sync.node import NodeSync

PARALLEL = 8
CHUNK = 64
T = TypeVar("T")
R = TypeVar("R")


def run_all(fn: Callable[[T], R], items: Sequence[T], *, parallel: bool) -> list[R | BaseException]:
    """``fn`` of each item (its result or the exception it raised), in order."""

    def safe(item: T) -> R | BaseException:
        try:
            return fn(item)
        except Exception as exc:  # handed back to the caller, which decides
            return exc

    if not parallel or len(items) < 2:
        return [safe(i) for i in items]
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="sync") as pool:
        return list(pool.map(safe, items))


def resolve_all(node: NodeSync, repos: Sequence[Repo]) -> list[Target | None | BaseException]:
    """What the stage names for each repo; over HTTP in parallel (the embedded catalog
    answers in-process, where threads would only contend for the database)."""
    opts = node.options
    return run_all(
        lambda r: node.source.resolve(r, ref=opts.ref, base=opts.base),
        repos,
        parallel=isinstance(node.source, RemoteSource),
    )


def fetch_all(node: NodeSync, targets: Sequence[Target]) -> list[int | BaseException]:
    """Download the files of ``targets`` not yet in the node's cache; bytes per target."""

    def fetch(target: Target) -> int:
        fetched = 0
        for f in target.files:
            if not node.blobs.has(f.sha256, f.size):
                fetched += node.blobs.add_stream(f.sha256, f.size, node.source.open_blob(f))
        return fetched

    return run_all(fetch, targets, parallel=True)


def target_bytes(target: Target) -> int:
    return sum(f.size for f in target.files)


def preference(node: NodeSync, repo: Repo, seen_at: datetime) -> tuple[int, float, str]:
    """Sort key: pinned first, then most recently used, then by name."""
    key = str(repo)
    used = node.last_used(key) or seen_at
    return (0 if node.budget.pinned(key) else 1, -used.timestamp(), key)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def admit(node: NodeSync, repo: Repo, target: Target, seen_at: datetime) -> str | None:
    """Make room for ``target`` and reserve its bytes; None when admitted, else why not.

    The reservation counts the bytes before they are fetched, so a chunk admitted
    together stays within the budget; the count is made exact again from disk after.
    """
    budget = node.budget
    files = {f.sha256: f.size for f in target.files if f.sha256 not in budget.reserved}
    need = need_bytes(budget.blobs, files.items())
    why = _room(node, repo, need, seen_at)
    if why is None:
        budget.used += need
        budget.reserved.update(files)
    return why


def _room(node: NodeSync, repo: Repo, need: int, seen_at: datetime) -> str | None:
    budget = node.budget
    if budget.fits(need):
        return None
    budget.free_unlinked()
    if budget.fits(need):
        return None
    node.free_retired(until=lambda: budget.fits(need))
    if budget.fits(need):
        return None
    key = str(repo)
    mine = node.last_used(key) or seen_at
    pinned = budget.pinned(key)
    victims = []
    for other, entry in node.state.adapters.items():
        if other == key or budget.pinned(other):
            continue
        used = entry.last_used or entry.synced_at
        if entry.stale or pinned or used < mine:
            victims.append((not entry.stale, used, other))
    # Only start evicting when it can succeed: evicting and still not fitting helps no one.
    max_bytes = budget.max_bytes or 0
    evictable = sum(node.state.adapters[v].bytes for *_, v in victims)
    if budget.used + need - evictable > max_bytes:
        what = "pinned adapters and more recently used ones" if not pinned else "pinned adapters"
        return f"needs {need} B more; the budget is {max_bytes} B, {budget.used} B in use by {what}"
    for *_, victim in sorted(victims):
        node.evict(victim, reason=f"evicted for {key}")
        if budget.fits(need):
            return None
    return f"needs {need} B more; the budget is {max_bytes} B"

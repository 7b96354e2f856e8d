"""One synced folder: bring an adapter (or all of them) in line with the registry.

Each change is: resolve, build the version folder if it is new, flip the link, record it
in the state file, log one line. Folders a link no longer points at are kept for
``grace_s`` (a reader that resolved the old link may still be opening its files), then
removed.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from registry.catalog.refs import Repo, parse_repo
from registry.domain import Stage
from registry.errors import LoraregError, Unauthorized, Unavailable
from registry.observability import metrics
from registry.sync import fleet
from registry.sync.blobs import NodeBlobs
from registry.sync.budget import DiskBudget, read_uses
from registry.sync.layout import NodeLayout
from registry.sync.manifest import manifest, write_manifest
from registry.sync.materialise import build_version, read_marker
from registry.sync.source import SyncSource, Target
from registry.sync.state import Binding, LeftOut, OnDisk, Retired, SyncState, now, save_state

Log = Callable[[str], None]
STAGES: tuple[str, ...] = tuple(Stage)
# The state and manifest are rewritten at most this often while a pass runs (and at its
# end): a pass over thousands of adapters would otherwise rewrite them thousands of times.
SAVE_EVERY_S = 1.0
USES_EVERY_S = 1.0


@dataclass(frozen=True)
class SyncOptions:
    """What to sync and how; the CLI flags of ``lorareg sync``."""

    base: str
    ref: str = "production"  # a stage or an alias
    namespace: str | None = None
    prune: bool = False
    model_name: str | None = None  # the engine's name for the base (default: ``base``)
    grace_s: float = 300.0  # how long a replaced version folder stays readable
    max_bytes: int | None = None  # disk budget of the blob cache (see ``budget``)
    pins: tuple[str, ...] = ()  # ``ns/name`` or ``ns/*``: never evicted

    def pass_options(self) -> dict[str, Any]:
        """What a pass's result depends on beyond the binding: a pass with other values
        than the last one re-resolves every adapter (see ``Follower._start``)."""
        return {
            "ref": self.ref,
            "base": self.base,
            "namespace": self.namespace,
            "model_name": self.model_name or self.base,
            "prune": self.prune,
            "max_bytes": self.max_bytes,
            "pins": sorted(set(self.pins)),
        }

    @property
    def binding(self) -> Binding:
        return Binding(
            base=self.base,
            ref=self.ref,
            namespace=self.namespace,
            model_name=self.model_name or self.base,
        )


def transient(exc: BaseException) -> bool:
    """Worth retrying the same work later: the registry, storage or local disk faltered."""
    if isinstance(exc, Unauthorized):
        return False
    # A bare LoraregError is an unmapped server answer (a proxy's 502, a 500).
    return isinstance(exc, Unavailable | OSError) or type(exc) is LoraregError


class NodeSync:
    """The registry's view of one stage (or alias) for one base, kept in ``layout``."""

    def __init__(
        self,
        layout: NodeLayout,
        source: SyncSource,
        state: SyncState,
        options: SyncOptions,
        *,
        log: Log,
    ) -> None:
        self.layout = layout
        self.source = source
        self.state = state
        self.options = options
        self.blobs = NodeBlobs(layout.blobs, layout.tmp)
        self.log = log
        self.model_name = options.model_name or options.base
        self.budget = DiskBudget(self.blobs, options.max_bytes, options.pins)
        self._dirty = True  # the first flush writes the manifest
        self._saved_at = 0.0
        self._uses_at = float("-inf")
        self._prefetched: dict[Repo, int] = {}

    # -- whole folder ---------------------------------------------------------------------

    def sync_all(self) -> list[Repo]:
        """Bring every adapter in line; returns those that failed (already logged)."""
        listed = self.source.adapters(self.options.namespace)
        known = {parse_repo(r) for r in self.state.adapters} | {r for r, _ in self.layout.linked()}
        known |= {parse_repo(r) for r in self.state.left_out}
        failed = self.apply(sorted(set(listed) | known, key=str))
        self.sync_experiments()
        self.collect()
        return failed

    def sync_changed(self, repos: Iterable[Repo]) -> list[Repo]:
        """``sync_all`` for a folder that was whole at its last pass: re-resolve only
        ``repos`` (those the feed named since), what the state says is unfinished (failed
        or named by the newest events last time) and what the budget left out (room may
        have been made); returns those that failed."""
        again = {parse_repo(k) for k in self.state.pending}
        again |= {parse_repo(k) for k in self.state.left_out}
        failed = self.apply(sorted(set(repos) | again, key=str))
        self.sync_experiments()
        self.collect()
        return failed

    def consistent(self) -> bool:
        """The folder holds what the state says: every link is an adapter of the state
        pointing at its recorded folder, which exists (nothing moved behind its back)."""
        linked = dict(self.layout.linked())
        if {str(r) for r in linked} != set(self.state.adapters):
            return False
        if set(self.state.left_out) & set(self.state.adapters):
            return False
        for key, entry in self.state.adapters.items():
            folder = self.layout.root / entry.folder
            if linked.get(parse_repo(key)) != folder or not folder.is_dir():
                return False
        return True

    def sync_experiments(self) -> list[str]:
        """Link every running A/B experiment's variants (see ``sync.experiments``)."""
        from registry.sync.experiments import sync_experiments

        return sync_experiments(self)

    def apply(self, repos: Iterable[Repo]) -> list[Repo]:
        """Re-resolve ``repos`` (and adapters left out by the budget but used since) and
        change what differs.

        Transient errors (registry down) propagate so the caller retries the lot; an error
        that only concerns one adapter (a damaged blob) is logged and that adapter returned.
        """
        seen_at = now()
        wanted = set(repos) | self._wanted_back()
        ns = self.options.namespace
        todo = sorted((r for r in wanted if not ns or r.namespace == ns), key=str)
        failed: list[Repo] = []
        resolved = fleet.resolve_all(self, todo)
        placed: list[tuple[Repo, Target | None]] = []
        for repo, result in zip(todo, resolved, strict=True):
            if isinstance(result, BaseException):
                self._failure(repo, result, failed)
            else:
                placed.append((repo, result))
        if self.budget.max_bytes is not None:
            placed.sort(key=lambda p: fleet.preference(self, p[0], seen_at))
        try:
            for chunk in fleet.chunks(placed):
                self._place(chunk, seen_at, failed)
        finally:
            if self.budget.max_bytes is not None:
                self.budget.rescan()  # reservations become what is really on disk
        self.flush()
        return failed

    def _place(
        self, chunk: Sequence[tuple[Repo, Target | None]], seen_at: datetime, failed: list[Repo]
    ) -> None:
        """Admit what fits, fetch it in parallel, then put each in place in order."""
        admitted: list[tuple[Repo, Target | None]] = []
        for repo, target in chunk:
            if target is not None and not self._unchanged(repo, target):
                why = fleet.admit(self, repo, target, seen_at)
                if why is not None:
                    self._leave_out(repo, target, why, seen_at)
                    continue
            admitted.append((repo, target))
        new = [(r, t) for r, t in admitted if t is not None and not self._unchanged(r, t)]
        fetched = fleet.fetch_all(self, [t for _, t in new])
        broken: dict[Repo, BaseException] = {}
        for (repo, _), got in zip(new, fetched, strict=True):
            if isinstance(got, BaseException):
                broken[repo] = got
            else:
                self._prefetched[repo] = got  # its bytes were reserved by ``admit``
                metrics.SYNC_FETCHED_BYTES.inc(got)
        for repo, target in admitted:
            try:
                if repo in broken:
                    raise broken[repo]
                self.apply_target(repo, target, seen_at=seen_at)
            except Exception as exc:
                self._failure(repo, exc, failed)
            finally:
                self._prefetched.pop(repo, None)

    def _failure(self, repo: Repo, exc: BaseException, failed: list[Repo]) -> None:
        if not isinstance(exc, LoraregError):
            raise exc
        if transient(exc) or isinstance(exc, Unauthorized):
            raise exc
        self.log(f"{repo}: not synced: {exc.message}")
        metrics.SYNC_FAILURES.inc()
        failed.append(repo)

    def _unchanged(self, repo: Repo, target: Target) -> bool:
        current = self.state.adapters.get(str(repo))
        return current is not None and current.content_id == target.content_id

    # -- one adapter ----------------------------------------------------------------------

    def apply_target(
        self, repo: Repo, target: Target | None, *, seen_at: datetime | None = None
    ) -> None:
        """Make ``repo`` on disk match ``target`` (None: not in the stage any more)."""
        key = str(repo)
        current = self.state.adapters.get(key)
        on_disk = self.layout.current(repo)
        if target is None:
            if self.state.left_out.pop(key, None) is not None:
                self._save()
            self._gone(repo, current, on_disk)
            return
        folder = self.layout.version_folder(repo, target.number, target.content_id)
        if on_disk == folder and current is not None and current.content_id == target.content_id:
            if current.stale:
                self.state.adapters[key] = current.model_copy(update={"stale": False})
                self._save()
            return
        started = time.monotonic()
        built = build_version(
            self.layout, self.blobs, self.source, target, model_name=self.model_name
        )
        self.layout.flip(repo, built.folder)
        self._unretire(built.folder)
        if on_disk is not None and on_disk != built.folder:
            self._retire_or_erase(repo, on_disk)
        self.budget.used += built.fetched
        early = self._prefetched.get(repo, 0)  # fetched by ``_place``, found in the cache here
        fetched = built.fetched + early
        metrics.SYNC_FETCHED_BYTES.inc(built.fetched)
        metrics.SYNC_CHANGES.labels("updated" if on_disk is not None else "added").inc()
        left = self.state.left_out.pop(key, None)
        self.state.adapters[key] = OnDisk(
            version=target.number,
            content_id=target.content_id,
            folder=self.layout.relative(built.folder),
            synced_at=now(),
            bytes=fleet.target_bytes(target),
            last_used=self.last_used(key) or (left.last_used if left else None) or seen_at or now(),
        )
        self._save()
        was = _version_of(on_disk) if on_disk is not None else None
        before = f"v{was} -> " if was is not None else "added "
        ms = (time.monotonic() - started) * 1000
        moved = (
            f"fetched {_size(fetched)}, reused {_size(built.reused - early)} from cache"
            if built.new_folder
            else "its folder was still on disk"
        )
        self.log(
            f"{repo}: {before}v{target.number} ({self.options.ref}, content"
            f" {target.content_id[:12]}; {moved}; {ms:.0f} ms)"
        )

    def _gone(self, repo: Repo, current: OnDisk | None, on_disk: Path | None) -> None:
        key = str(repo)
        if current is None and on_disk is None:
            return
        if on_disk is not None and self._erased(repo, on_disk):
            self.layout.unlink(repo)
            self._remove_now(on_disk)
            self.state.adapters.pop(key, None)
            self._save()
            self.log(f"{repo}: removed its folder at once (erased from the registry)")
            return
        where = f"{self.options.ref} for {self.options.base}"
        if self.options.prune:
            self.layout.unlink(repo)
            if on_disk is not None:
                self._retire(on_disk)
            self.state.adapters.pop(key, None)
            self._save()
            was = f"v{current.version}" if current else "its version"
            self.log(f"{repo}: removed {was} (no longer in {where})")
            metrics.SYNC_CHANGES.labels("removed").inc()
            return
        if current is not None and not current.stale:
            self.state.adapters[key] = current.model_copy(update={"stale": True})
            self._save()
            self.log(
                f"{repo}: no longer in {where}; keeping v{current.version} on disk"
                " (--prune removes it)"
            )

    # -- housekeeping ---------------------------------------------------------------------

    def collect(self) -> None:
        """Remove version folders retired more than ``grace_s`` ago (and, with --prune,
        blobs no folder links to); adopt stray folders so they get the same grace."""
        linked = {target for _, target in self.layout.linked()} | self.layout.variant_targets()
        retired = {r.folder for r in self.state.retired}
        for folder in self.layout.version_folders():
            if folder not in linked and self.layout.relative(folder) not in retired:
                self._retire(folder)
        cutoff = now() - timedelta(seconds=self.options.grace_s)
        keep: list[Retired] = []
        removed = 0
        for r in self.state.retired:
            folder = self.layout.root / r.folder
            if folder in linked:
                continue
            if r.since > cutoff:
                keep.append(r)
                continue
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
            with contextlib.suppress(OSError):
                folder.parent.rmdir()  # the adapter's folder, once empty
        if removed or len(keep) != len(self.state.retired):
            self.state.retired = keep
            self._save()
        if removed and self.options.prune:
            self.blobs.prune()
        if removed:
            self.budget.rescan()
        self.flush()

    def _erased(self, repo: Repo, folder: Path) -> bool:
        """The version in ``folder`` no longer exists in the registry (``lorareg delete``)."""
        number = _version_of(folder)
        return number is not None and not self.source.version_exists(repo, number)

    def _retire_or_erase(self, repo: Repo, folder: Path) -> None:
        """A replaced version stays readable for the grace period, unless it was erased:
        an erased client's weights must not linger on serving nodes."""
        if self._erased(repo, folder):
            self._remove_now(folder)
        else:
            self._retire(folder)

    def _remove_now(self, folder: Path) -> None:
        # Its files are hard links into the node's blob cache: those no other folder links
        # to go too (other cached blobs stay for rollbacks).
        inodes = {p.stat().st_ino for p in folder.rglob("*") if p.is_file()}
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the adapter's folder, once empty
        self._unretire(folder)
        for blob in self.layout.blobs.rglob("*"):
            with contextlib.suppress(OSError):
                info = blob.stat()
                if blob.is_file() and info.st_ino in inodes and info.st_nlink == 1:
                    blob.unlink()
        self.budget.rescan()

    def _retire(self, folder: Path) -> None:
        rel = self.layout.relative(folder)
        if all(r.folder != rel for r in self.state.retired):
            self.state.retired.append(Retired(folder=rel, since=now()))

    def _unretire(self, folder: Path) -> None:
        rel = self.layout.relative(folder)
        self.state.retired = [r for r in self.state.retired if r.folder != rel]

    def _save(self) -> None:
        self._dirty = True
        if time.monotonic() - self._saved_at >= SAVE_EVERY_S:
            self.flush()

    def flush(self) -> None:
        """Write the state and the manifest if anything changed since they were written."""
        if not self._dirty:
            return
        save_state(self.layout, self.state)
        doc = manifest(
            self.layout,
            self.state,
            max_bytes=self.budget.max_bytes,
            disk_bytes=self.budget.used,
            pins=self.budget.pinned,
        )
        write_manifest(self.layout, doc)
        self._dirty = False
        self._saved_at = time.monotonic()

    # -- the budget -----------------------------------------------------------------------

    def last_used(self, key: str) -> datetime | None:
        entry = self.state.adapters.get(key) or self.state.left_out.get(key)
        return entry.last_used if entry is not None else None

    def _wanted_back(self) -> set[Repo]:
        """Read the use marks (at most once a second); adapters left out and used since."""
        if time.monotonic() - self._uses_at < USES_EVERY_S:
            return set()
        self._uses_at = time.monotonic()
        back: set[Repo] = set()
        for key, when in read_uses(self.layout).items():
            entry = self.state.adapters.get(key) or self.state.left_out.get(key)
            if entry is None or (entry.last_used is not None and entry.last_used >= when):
                continue
            entry.last_used = when
            self._dirty = True
            if key in self.state.left_out and when > self.state.left_out[key].since:
                back.add(parse_repo(key))
        return back

    def _leave_out(self, repo: Repo, target: Target, why: str, seen_at: datetime) -> None:
        """``target`` does not fit: the adapter is not on disk (its older version neither:
        the stage no longer names it)."""
        key = str(repo)
        known = self.state.left_out.get(key)
        if self.state.adapters.get(key) is not None:
            self.evict(key, reason=why)
        elif known is not None and known.content_id == target.content_id:
            return  # still left out, for the same version: nothing new to say
        self.state.left_out[key] = LeftOut(
            version=target.number,
            content_id=target.content_id,
            bytes=fleet.target_bytes(target),
            last_used=self.last_used(key) or (known.last_used if known else None) or seen_at,
            since=now(),
            reason=why,
        )
        self._save()
        self.log(f"{repo}: v{target.number} not on disk: {why}")

    def evict(self, key: str, *, reason: str) -> None:
        """Remove an adapter's link and folder now (the budget needs the room)."""
        entry = self.state.adapters.pop(key)
        repo = parse_repo(key)
        folder = self.layout.current(repo)
        self.layout.unlink(repo)
        # A folder a running experiment's variant links to stays (the variant serves it).
        shared = folder is not None and folder in self.layout.variant_targets()
        freed = self.budget.free_folder(folder) if folder is not None and not shared else 0
        if folder is not None:
            self._unretire(folder)
        self.state.left_out[key] = LeftOut(
            version=entry.version,
            content_id=entry.content_id,
            bytes=entry.bytes,
            last_used=entry.last_used or entry.synced_at,
            since=now(),
            reason=reason,
        )
        self._save()
        metrics.SYNC_CHANGES.labels("evicted").inc()
        self.log(f"{key}: evicted v{entry.version} ({reason}; {_size(freed)} freed)")

    def free_retired(self, *, until: Callable[[], bool]) -> None:
        """Remove retired version folders now, oldest first, until ``until()`` holds."""
        if not self.state.retired:
            return
        linked = {target for _, target in self.layout.linked()} | self.layout.variant_targets()
        for r in sorted(self.state.retired, key=lambda r: r.since):
            if until():
                return
            folder = self.layout.root / r.folder
            if folder not in linked:
                self.budget.free_folder(folder)
            self._unretire(folder)
        self._save()


def _version_of(folder: Path) -> int | None:
    # The folder itself says which version it is: the state may lag it after a crash.
    marker = read_marker(folder)
    version = marker.get("version") if marker else None
    return version if isinstance(version, int) else None


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"

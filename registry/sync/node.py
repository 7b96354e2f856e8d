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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from registry.catalog.refs import Repo, parse_repo
from registry.errors import LoraregError, Unauthorized, Unavailable
from registry.sync.blobs import NodeBlobs
from registry.sync.layout import NodeLayout
from registry.sync.materialise import build_version, read_marker
from registry.sync.source import SyncSource, Target
from registry.sync.state import Binding, OnDisk, Retired, SyncState, now, save_state

Log = Callable[[str], None]
STAGES = ("staging", "production", "archived")


@dataclass(frozen=True)
class SyncOptions:
    """What to sync and how; the CLI flags of ``lorareg sync``."""

    base: str
    ref: str = "production"  # a stage or an alias
    namespace: str | None = None
    prune: bool = False
    model_name: str | None = None  # the engine's name for the base (default: ``base``)
    grace_s: float = 300.0  # how long a replaced version folder stays readable

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

    # -- whole folder ---------------------------------------------------------------------

    def sync_all(self) -> list[Repo]:
        """Bring every adapter in line; returns those that failed (already logged)."""
        listed = self.source.adapters(self.options.namespace)
        known = {parse_repo(r) for r in self.state.adapters} | {r for r, _ in self.layout.linked()}
        failed = self.apply(sorted(set(listed) | known, key=str))
        self.collect()
        return failed

    def apply(self, repos: Iterable[Repo]) -> list[Repo]:
        """Re-resolve ``repos`` and change what differs.

        Transient errors (registry down) propagate so the caller retries the lot; an error
        that only concerns one adapter (a damaged blob) is logged and that adapter returned.
        """
        failed: list[Repo] = []
        for repo in repos:
            if self.options.namespace and repo.namespace != self.options.namespace:
                continue
            try:
                target = self.source.resolve(repo, ref=self.options.ref, base=self.options.base)
                self.apply_target(repo, target)
            except LoraregError as exc:
                if transient(exc) or isinstance(exc, Unauthorized):
                    raise
                self.log(f"{repo}: not synced: {exc.message}")
                failed.append(repo)
        return failed

    # -- one adapter ----------------------------------------------------------------------

    def apply_target(self, repo: Repo, target: Target | None) -> None:
        """Make ``repo`` on disk match ``target`` (None: not in the stage any more)."""
        key = str(repo)
        current = self.state.adapters.get(key)
        on_disk = self.layout.current(repo)
        if target is None:
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
        self.state.adapters[key] = OnDisk(
            version=target.number,
            content_id=target.content_id,
            folder=self.layout.relative(built.folder),
            synced_at=now(),
        )
        self._save()
        was = _version_of(on_disk) if on_disk is not None else None
        before = f"v{was} -> " if was is not None else "added "
        ms = (time.monotonic() - started) * 1000
        moved = (
            f"fetched {_size(built.fetched)}, reused {_size(built.reused)} from cache"
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
        linked = {target for _, target in self.layout.linked()}
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

    def _retire(self, folder: Path) -> None:
        rel = self.layout.relative(folder)
        if all(r.folder != rel for r in self.state.retired):
            self.state.retired.append(Retired(folder=rel, since=now()))

    def _unretire(self, folder: Path) -> None:
        rel = self.layout.relative(folder)
        self.state.retired = [r for r in self.state.retired if r.folder != rel]

    def _save(self) -> None:
        save_state(self.layout, self.state)


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

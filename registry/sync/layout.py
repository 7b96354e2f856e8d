"""Where ``lorareg sync`` keeps things in the node's folder, and the atomic flip.

::

    DIR/
      acme/
        brand-voice -> ../.lorareg/versions/acme/brand-voice/v3-0123456789ab
        brand-voice@tone-test/          one folder per running A/B experiment
          control -> ../../.lorareg/versions/acme/brand-voice/v3-0123456789ab
          warm    -> ../../.lorareg/versions/acme/brand-voice/v4-89abcdef0123
      .lorareg/
        state.json        last event id, what is on disk, when the node last caught up
        lock              held by the one sync process writing DIR
        blobs/sha256/..   verified files by sha256, hard-linked into version folders
        versions/acme/brand-voice/v3-0123456789ab/
                          adapter_config.json (exported), weights, .lorareg.json
        tmp/              folders and downloads being built

An engine asks for ``acme/brand-voice``: vLLM's filesystem resolver joins the request's
name to ``VLLM_LORA_RESOLVER_CACHE_DIR``, resolves it with ``realpath`` and checks that it
stays inside that folder, so the registry's own ``namespace/name`` is the adapter name and
two namespaces never collide; a variant is ``acme/brand-voice@tone-test/warm`` (``@`` is in
no adapter name, so it never collides with a stage link). Every version folder is complete
before a link points at it, and a link is replaced with ``rename(2)`` of a new link over it,
which is atomic.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Collection, Iterator
from pathlib import Path

from registry.catalog.refs import NAME_RE, Repo
from registry.errors import Conflict

STATE_DIR = ".lorareg"
MARKER = ".lorareg.json"


class NodeLayout:
    """Paths under one synced folder, and the operations that change what readers see."""

    def __init__(self, root: Path) -> None:
        # Resolved, so paths built here compare equal to links resolved by ``current``
        # even when DIR is reached through a symlink.
        self.root = root.resolve()
        self.meta = self.root / STATE_DIR
        self.blobs = self.meta / "blobs"
        self.versions = self.meta / "versions"
        self.tmp = self.meta / "tmp"
        self.state_file = self.meta / "state.json"
        self.lock_file = self.meta / "lock"

    def prepare(self) -> None:
        """Create the folders and clear what a killed run left half-made."""
        for d in (self.blobs, self.versions, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        for ns_dir in self._namespace_dirs():
            for entry in [*ns_dir.iterdir(), *self._experiment_entries(ns_dir)]:
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    entry.unlink(missing_ok=True)  # a link made but never flipped in

    def link(self, repo: Repo) -> Path:
        """The path an engine opens for ``repo``: ``DIR/namespace/name``."""
        return self.root / repo.namespace / repo.name

    def version_folder(self, repo: Repo, number: int, content_id: str) -> Path:
        # Named by number for people and by content for uniqueness.
        return self.versions / repo.namespace / repo.name / f"v{number}-{content_id[:12]}"

    def current(self, repo: Repo) -> Path | None:
        """The version folder ``repo``'s link points at, or None when there is no link."""
        link = self.link(repo)
        if not link.is_symlink():
            return None
        return (link.parent / os.readlink(link)).resolve()

    def flip(self, repo: Repo, folder: Path) -> None:
        """Point ``repo``'s link at ``folder`` in one atomic rename.

        A reader that resolved the old link keeps the old folder (kept for a grace period);
        one that resolves it now gets the new folder; none sees a half-written one.
        """
        flip_link(self.link(repo), folder)

    # -- A/B experiments: DIR/ns/name@experiment/variant --------------------------------

    def experiment_dir(self, repo: Repo, experiment: str) -> Path:
        return self.root / repo.namespace / f"{repo.name}@{experiment}"

    def variant_link(self, repo: Repo, experiment: str, variant: str) -> Path:
        """The path an engine or router opens for one variant of a running experiment."""
        return self.experiment_dir(repo, experiment) / variant

    def experiment_dirs(self) -> Iterator[tuple[Repo, str, Path]]:
        """(adapter, experiment, folder) of every experiment folder on disk."""
        for ns_dir in self._namespace_dirs():
            for entry in sorted(ns_dir.iterdir()):
                name, at, experiment = entry.name.partition("@")
                if (
                    at
                    and entry.is_dir()
                    and not entry.is_symlink()
                    and NAME_RE.match(name)
                    and NAME_RE.match(experiment)
                ):
                    yield Repo(ns_dir.name, name), experiment, entry

    def variant_targets(self) -> set[Path]:
        """Every version folder a variant link points at (kept like stage links)."""
        found: set[Path] = set()
        for _, _, folder in self.experiment_dirs():
            for entry in folder.iterdir():
                if entry.is_symlink():
                    found.add((folder / os.readlink(entry)).resolve())
        return found

    def remove_experiment(self, repo: Repo, experiment: str, keep: Collection[str] = ()) -> None:
        """Remove the variant links of ``experiment`` (all but ``keep``; the folder too when
        none is kept). Version folders stay: the caller retires them."""
        folder = self.experiment_dir(repo, experiment)
        if not folder.is_dir() or folder.is_symlink():
            return
        for entry in folder.iterdir():
            if entry.is_symlink() and entry.name not in keep:
                entry.unlink()
        fsync_dir(folder)
        if not keep:
            with contextlib.suppress(OSError):
                folder.rmdir()
            with contextlib.suppress(OSError):
                folder.parent.rmdir()  # the namespace folder, once empty

    def _experiment_entries(self, ns_dir: Path) -> Iterator[Path]:
        for entry in ns_dir.iterdir():
            if "@" in entry.name and entry.is_dir() and not entry.is_symlink():
                yield from entry.iterdir()

    def unlink(self, repo: Repo) -> None:
        """Remove ``repo``'s link (one atomic unlink); its version folder stays for now."""
        link = self.link(repo)
        if link.is_symlink():
            link.unlink()
            fsync_dir(link.parent)
        with contextlib.suppress(OSError):
            link.parent.rmdir()  # the namespace folder, once empty

    def linked(self) -> Iterator[tuple[Repo, Path]]:
        """Every adapter link on disk and the version folder it points at."""
        for ns_dir in self._namespace_dirs():
            for entry in sorted(ns_dir.iterdir()):
                if entry.is_symlink() and NAME_RE.match(entry.name):
                    repo = Repo(ns_dir.name, entry.name)
                    target = self.current(repo)
                    if target is not None:
                        yield repo, target

    def version_folders(self) -> Iterator[Path]:
        """Every built version folder, current or retired."""
        if not self.versions.is_dir():
            return
        for ns_dir in self.versions.iterdir():
            for adapter_dir in ns_dir.iterdir() if ns_dir.is_dir() else ():
                yield from (p for p in adapter_dir.iterdir() if p.is_dir())

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _namespace_dirs(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for d in sorted(self.root.iterdir()):
            if d.is_dir() and not d.is_symlink() and NAME_RE.match(d.name):
                yield d


def flip_link(link: Path, folder: Path) -> None:
    """Point ``link`` at ``folder``: a new link renamed over the old one (atomic)."""
    if os.path.lexists(link) and not link.is_symlink():
        raise Conflict(
            f"{link} exists and was not made by lorareg sync; move it away and sync again"
        )
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.parent / f".{link.name}.{uuid.uuid4().hex[:8]}.tmp"
    os.symlink(os.path.relpath(folder, link.parent), tmp)
    try:
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(link.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename or link in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)

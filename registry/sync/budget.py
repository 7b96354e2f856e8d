"""The node's disk budget (``--max-bytes``), pins, and recorded uses.

What counts: the bytes of the node's blob cache, ``.lorareg/blobs/``. Every version
folder's files are hard links into it, so a file shared by many adapters counts once;
markers and directories are not counted.

When a version does not fit, room is made in this order, and only as far as needed:
blobs no folder links to any more; version folders retired by a promotion (the grace
period is a courtesy to readers mid-open, not worth a live adapter); then adapters not
pinned, those no longer in the stage first, then the least recently used. An adapter is
only evicted for one used more recently (or pinned), so a pass over thousands of unused
adapters keeps the first that fit instead of churning. Pinned: ``--pin ns/name`` or
``--pin 'ns/*'``.

Uses: a router or engine records that it served ``acme/client-7`` by touching
``DIR/.lorareg/used/acme/client-7`` (creating it, and its folder, when needed); the file's
modification time is the last use. Sync reads these marks at most once a second; an
adapter left out by the budget and used since is fetched again.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from registry.catalog.refs import NAME_RE, parse_repo
from registry.errors import InvalidInput
from registry.sync.blobs import NodeBlobs
from registry.sync.layout import NodeLayout
from registry.sync.materialise import read_marker

USED_DIR = "used"


def check_pins(pins: Iterable[str]) -> tuple[str, ...]:
    """``ns/name`` or ``ns/*``; anything else is refused with the form to use."""
    out = []
    for pin in pins:
        ns, _, name = pin.partition("/")
        if not NAME_RE.fullmatch(ns) or not (name == "*" or NAME_RE.fullmatch(name)):
            raise InvalidInput(f"--pin {pin!r}: give an adapter as namespace/name or namespace/*")
        out.append(pin)
    return tuple(out)


class DiskBudget:
    """Bytes in the blob cache against ``max_bytes`` (None: no budget), and pins."""

    def __init__(self, blobs: NodeBlobs, max_bytes: int | None, pins: tuple[str, ...]) -> None:
        self.blobs = blobs
        self.max_bytes = max_bytes
        self.pins = pins
        self.used = 0
        self.reserved: set[str] = set()  # sha256s admitted, counted in ``used``, maybe unfetched
        self._may_hold_unlinked = True
        self.rescan()

    def rescan(self) -> None:
        """Count the cache's bytes from disk (after changes made outside this object)."""
        total = 0
        for dirpath, _dirs, files in os.walk(self.blobs.root):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        self.used = total
        self.reserved.clear()
        # Folders may have been removed since: files they linked may be unlinked now.
        self._may_hold_unlinked = True

    def pinned(self, key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, pin) for pin in self.pins)

    def fits(self, need: int) -> bool:
        return self.max_bytes is None or self.used + need <= self.max_bytes

    def free_folder(self, folder: Path) -> int:
        """Remove a version folder now, and the blobs only it linked to; the bytes freed."""
        marker = read_marker(folder) or {}
        shas = marker.get("files")
        _remove_tree(folder)
        freed = 0
        for sha in shas.values() if isinstance(shas, dict) else ():
            freed += self._drop_if_unlinked(self.blobs.path(str(sha)))
        self.used -= freed
        return freed

    def free_unlinked(self) -> int:
        """Remove every blob no version folder links to; the bytes freed.

        Walks the cache only when a folder may have been removed since the last walk
        (``rescan``): a pass leaving out thousands of adapters asks thousands of times.
        """
        if not self._may_hold_unlinked:
            return 0
        freed = 0
        for dirpath, _dirs, files in os.walk(self.blobs.root):
            for name in files:
                freed += self._drop_if_unlinked(Path(dirpath) / name)
        self.used -= freed
        self._may_hold_unlinked = False
        return freed

    @staticmethod
    def _drop_if_unlinked(path: Path) -> int:
        try:
            info = path.lstat()
            if info.st_nlink != 1:
                return 0
            path.unlink()
        except FileNotFoundError:
            return 0
        return info.st_size


def need_bytes(blobs: NodeBlobs, sizes: Iterable[tuple[str, int]]) -> int:
    """Bytes still to fetch for files of (sha256, size): those not in the cache."""
    missing = {sha: size for sha, size in sizes if not blobs.has(sha, size)}
    return sum(missing.values())


def read_uses(layout: NodeLayout) -> dict[str, datetime]:
    """The last recorded use of each adapter marked under ``.lorareg/used/``."""
    root = layout.meta / USED_DIR
    uses: dict[str, datetime] = {}
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for ns in os.scandir(root):
            if not ns.is_dir(follow_symlinks=False) or not NAME_RE.fullmatch(ns.name):
                continue
            for entry in os.scandir(ns.path):
                if not NAME_RE.fullmatch(entry.name):
                    continue
                with contextlib.suppress(OSError):
                    when = entry.stat(follow_symlinks=False).st_mtime
                    key = str(parse_repo(f"{ns.name}/{entry.name}"))
                    uses[key] = datetime.fromtimestamp(when, UTC)
    return uses


def _remove_tree(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # the adapter's folder, once empty

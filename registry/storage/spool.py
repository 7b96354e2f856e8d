"""The server's upload spool: request bodies land here while they are hashed.

A folder the server owns (``<cache dir>/spool``), not the system temp folder, so that what
a killed server leaves can be found, reported by ``fsck``, removed by ``gc`` and swept when
the server starts. File names carry the writer's pid (``lorareg-upload-<pid>-<random>``):
a sweep never removes the file of a process that is still running.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from registry.errors import InvalidInput, StorageUnavailable
from registry.storage.base import Leftover, pid_alive, scan_temp_files

PREFIX = "lorareg-upload-"


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def create(self) -> tuple[int, Path]:
        """A new spool file, open for writing: (file descriptor, path)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self.root)
        except OSError as exc:
            raise StorageUnavailable(f"cannot spool an upload under {self.root}: {exc}") from exc
        return fd, Path(name)

    def leftovers(self) -> Iterator[Leftover]:
        """Every spool file (a live upload's or a killed server's)."""
        return scan_temp_files(self.root, "spool file", PREFIX)

    def remove(self, item: Leftover) -> None:
        name = Path(item.ref).name
        if not name.startswith(PREFIX):
            raise InvalidInput(f"not a spool file: {item.ref!r}")
        try:
            (self.root / name).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete {self.root / name}: {exc}") from exc

    def sweep_dead(self) -> int:
        """Remove the files of writers that no longer run (a server calls this at start);
        the number removed."""
        removed = 0
        for item in list(self.leftovers()):
            if item.pid is not None and pid_alive(item.pid):
                continue
            self.remove(item)
            removed += 1
        return removed


def spool_for(cache_dir: Path) -> Spool:
    """The spool of a server whose cache folder is ``cache_dir``."""
    return Spool(Path(cache_dir) / "spool")

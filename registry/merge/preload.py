"""Importing torch ahead of need, in a thread: it takes seconds (2 s on a 2-core machine,
more under load) that a merge run in this process would otherwise wait for in one piece.

Light on purpose (the standard library only): the CLI's ``merge`` command calls it first
thing in embedded mode, before it opens the catalog, so the import overlaps the CLI's own
start-up as well as the catalog queries and the adapters' download.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading


def import_torch_in_background() -> None:
    """Start importing torch in a thread unless it is imported or being imported; whoever
    imports it next waits for it there (Python's import lock).

    Not a daemon: a process that exits early (a refused request) waits for the import to
    end rather than tearing the interpreter down under a half-initialised extension."""
    with _LOCK:
        if "torch" in sys.modules or any(t.name == _THREAD for t in threading.enumerate()):
            return
        threading.Thread(target=_import_torch, name=_THREAD).start()


_THREAD = "import-torch"
_LOCK = threading.Lock()


def _import_torch() -> None:
    # A broken or missing install fails again, with its message, where the merge imports
    # torch itself (or where the request is refused for want of it).
    with contextlib.suppress(Exception):
        importlib.import_module("torch")

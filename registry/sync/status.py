"""``lorareg sync --status DIR``: what a synced folder holds, read from disk alone.

It works while the registry is down (that is when an operator asks), and while a sync
process is running (the state file is replaced atomically, never rewritten in place).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from registry.catalog.refs import parse_repo
from registry.errors import NotFound
from registry.sync.layout import NodeLayout
from registry.sync.state import load_state, lock_holder, now
from registry.timestamps import iso_z


def folder_status(root: Path) -> dict[str, Any]:
    """The versions on disk, the feed cursor, and the lag of the folder ``root``.

    ``lag_s`` is how long ago the node last confirmed with the registry that it had every
    change: at most the long-poll wait while a follower is healthy, growing while the
    registry is unreachable or no follower runs.
    """
    layout = NodeLayout(root)
    state = load_state(layout)
    if state is None:
        raise NotFound(f"{root} was never synced: no {layout.state_file}")
    holder = lock_holder(layout)
    adapters = []
    for key, entry in sorted(state.adapters.items()):
        expected = (layout.root / entry.folder).resolve()
        actual = layout.current(parse_repo(key))
        if actual is None:
            disk = "missing"
        elif actual != expected:
            disk = "differs from state"
        else:
            disk = "stale" if entry.stale else "current"
        adapters.append(
            {
                "adapter": key,
                "version": entry.version,
                "content_id": entry.content_id,
                "path": str(layout.link(parse_repo(key))),
                "synced_at": iso_z(entry.synced_at),
                "state": disk,
            }
        )
    caught_up = state.caught_up_at
    return {
        "folder": str(layout.root),
        "base": state.binding.base,
        "ref": state.binding.ref,
        "namespace": state.binding.namespace,
        "served_as": state.binding.model_name,
        "registry": state.registry,
        "following": holder is not None,
        "pid": holder if holder and holder > 0 else None,
        "last_event_id": state.last_event_id,
        "last_event_at": iso_z(state.last_event_at),
        "caught_up_at": iso_z(caught_up),
        "lag_s": round((now() - caught_up).total_seconds(), 3) if caught_up else None,
        "adapters": adapters,
        # Adapters of the stage the disk budget keeps off this node (see the manifest).
        "left_out": sorted(state.left_out),
        "retired_folders": len(state.retired),
    }

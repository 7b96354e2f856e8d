"""``DIR/.lorareg/state.json``: what a synced folder holds and how far it has followed.

Written with write-to-temp, fsync, rename, so a crash leaves the old state or the new one.
The state is a cache of what is on disk plus the feed cursor: a pass re-resolves everything
when the folder does not match the state (see ``NodeSync.consistent``), so a state that
lags the disk by one change heals itself.
"""

from __future__ import annotations

import fcntl
import os
from datetime import UTC, datetime
from typing import IO, Any

from pydantic import BaseModel, Field

from registry.errors import Conflict, InvalidInput
from registry.sync.layout import NodeLayout, fsync_dir

FORMAT = 1


class Binding(BaseModel):
    """What a folder is a copy of; one folder serves one base model and one stage/alias."""

    base: str
    ref: str
    namespace: str | None = None
    model_name: str


class OnDisk(BaseModel):
    version: int
    content_id: str
    folder: str  # relative to DIR
    synced_at: datetime
    # No longer in the stage or alias, kept because --prune was not given.
    stale: bool = False
    bytes: int = 0  # the version's files, as the registry lists them
    # The newest of: first seen on this node, a use recorded under ``.lorareg/used/``.
    last_used: datetime | None = None


class LeftOut(BaseModel):
    """An adapter of the stage that is not on disk: evicted by the --max-bytes budget (or
    too big to fit), and fetched again once it is used or room is made."""

    version: int
    content_id: str
    bytes: int
    last_used: datetime | None = None
    since: datetime
    reason: str


class Retired(BaseModel):
    folder: str
    since: datetime


class VariantOnDisk(BaseModel):
    version: int | None  # None: erased in the registry, nothing to serve
    content_id: str | None
    folder: str | None  # relative to DIR; None when not on disk
    control: bool = False


class ExperimentOnDisk(BaseModel):
    """A running A/B experiment of the synced base: its definition (what a router needs to
    assign a subject offline) and the variant folders linked under ``ns/name@experiment``."""

    id: int
    namespace: str
    adapter: str
    name: str
    base_model: str
    salt: str
    period: int
    ranges: list[tuple[int, int, str]]
    variants: dict[str, VariantOnDisk]
    synced_at: datetime


class SyncState(BaseModel):
    format: int = FORMAT
    binding: Binding
    registry: str | None = None
    last_event_id: int = 0
    last_event_at: datetime | None = None
    # The last time the feed confirmed the node had every change.
    caught_up_at: datetime | None = None
    adapters: dict[str, OnDisk] = Field(default_factory=dict)
    retired: list[Retired] = Field(default_factory=list)
    left_out: dict[str, LeftOut] = Field(default_factory=dict)
    # Keyed ``ns/name@experiment``.
    experiments: dict[str, ExperimentOnDisk] = Field(default_factory=dict)
    # What the last complete pass ran with (``--max-bytes``, pins, ``--prune``...): a pass
    # with other options re-resolves everything instead of only what the feed names.
    pass_options: dict[str, Any] | None = None
    # Adapters the next pass re-resolves whatever the feed says: those that failed, and
    # those named by the newest events (a server's resolve cache may trail its feed).
    pending: list[str] = Field(default_factory=list)


def now() -> datetime:
    return datetime.now(UTC)


def load_state(layout: NodeLayout) -> SyncState | None:
    """The folder's state, or None for a folder never synced."""
    try:
        raw = layout.state_file.read_text()
    except FileNotFoundError:
        return None
    return SyncState.model_validate_json(raw)


def open_state(layout: NodeLayout, binding: Binding, registry: str | None) -> SyncState:
    """The state to continue from; refuses a folder synced for another base, stage or alias."""
    state = load_state(layout)
    if state is None:
        return SyncState(binding=binding, registry=registry)
    if state.binding != binding:
        was, want = state.binding, binding
        raise InvalidInput(
            f"{layout.root} holds {was.ref} adapters for base {was.base}"
            f" (namespace {was.namespace or 'all'}, served as {was.model_name}), not {want.ref}"
            f" for {want.base} (namespace {want.namespace or 'all'}, served as"
            f" {want.model_name}); sync into another folder"
        )
    if registry is not None and state.registry not in (None, registry):
        # Event ids are per registry: another registry's cursor means nothing here.
        state.last_event_id = 0
    state.registry = registry
    return state


def save_state(layout: NodeLayout, state: SyncState) -> None:
    tmp = layout.state_file.with_name(f".state.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(state.model_dump_json(indent=2))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, layout.state_file)
    fsync_dir(layout.meta)


class FolderLock:
    """An exclusive lock on a synced folder: two writers would fight over its links."""

    def __init__(self, layout: NodeLayout) -> None:
        self.path = layout.lock_file
        self._fh: IO[str] | None = None

    def __enter__(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            fh.close()
            raise Conflict(
                f"another lorareg sync (pid {holder}) is writing {self.path.parent.parent};"
                " one folder takes one sync process"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def lock_holder(layout: NodeLayout) -> int | None:
    """The pid of the sync process writing the folder now, or None when none is."""
    if not layout.lock_file.exists():
        return None
    with open(layout.lock_file) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = fh.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh, fcntl.LOCK_UN)
        return None

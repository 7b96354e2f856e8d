"""``lorareg sync``: keep a serving node's adapter folder equal to a stage or alias.

- ``layout``: the folder's layout and the atomic link flip (read it first);
- ``source``: the registry as sync needs it, over the local or the remote client;
- ``blobs``: the node's sha256 cache; ``materialise``: one version's folder, built whole;
- ``node``: apply a change to one adapter or to all; ``follow``: the run loop over the
  change feed, with backoff; ``state``: the state file and the folder lock;
  ``status``: what ``--status`` prints.
"""

from __future__ import annotations

from registry.sync.follow import Backoff, Follower
from registry.sync.layout import NodeLayout
from registry.sync.node import SyncOptions
from registry.sync.source import source_for
from registry.sync.status import folder_status

__all__ = ["Backoff", "Follower", "NodeLayout", "SyncOptions", "folder_status", "source_for"]

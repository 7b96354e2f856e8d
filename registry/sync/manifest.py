"""``DIR/.lorareg/manifest.json``: what a synced folder serves, for engines and routers.

Rewritten (temp file, fsync, rename) whenever the folder changes, so a reader always
opens a whole one. An engine loads ``path``: the version folder, named by version and
content id, so the path changes exactly when the content does (a cache keyed by path,
such as vLLM's prefix cache, never mixes two versions). ``link`` is the stable
``DIR/namespace/name`` that vLLM's filesystem resolver opens. An adapter of the stage
that the disk budget left out has ``present: false`` and no path.

::

    {"format": 1, "base": "tiny-llama", "ref": "production", "namespace": "acme",
     "served_as": "tiny-llama", "updated_at": "2026-12-03T12:00:00.000Z",
     "max_bytes": 500000000, "disk_bytes": 123456789,
     "adapters": {"acme/client-7": {"present": true, "version": 3,
        "content_id": "0123...",
        "path": "/srv/lora/.lorareg/versions/acme/client-7/v3-0123456789ab",
        "link": "/srv/lora/acme/client-7", "bytes": 4404019,
        "last_used": "2026-12-03T11:58:01.000Z", "pinned": false, "stale": false}, ...},
     "experiments": {"acme/client-7@tone-test": {"adapter": "acme/client-7",
        "name": "tone-test", "id": 12, "base_model": "tiny-llama", "salt": "9f86d081884c7d65",
        "buckets": 10000, "period": 1, "ranges": [[0, 8000, "control"], [8000, 10000, "warm"]],
        "variants": {"control": {"present": true, "control": true, "version": 3,
            "content_id": "0123...", "path": "/srv/lora/.lorareg/versions/acme/client-7/v3-...",
            "link": "/srv/lora/acme/client-7@tone-test/control"}, ...}}}}

A router assigns a subject to a variant from ``salt`` and ``ranges`` alone (the rule is in
``registry.experiments.assignment`` and the README) and loads that variant's ``path``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from registry.catalog.refs import parse_repo
from registry.experiments.assignment import BUCKETS
from registry.sync.layout import NodeLayout
from registry.sync.state import SyncState, now
from registry.timestamps import iso_z

FORMAT = 1
NAME = "manifest.json"


def manifest(
    layout: NodeLayout, state: SyncState, *, max_bytes: int | None, disk_bytes: int, pins: Any
) -> dict[str, Any]:
    """The manifest document of ``state`` (``pins``: a callable telling pinned names)."""
    adapters: dict[str, dict[str, Any]] = {}
    for key, entry in state.adapters.items():
        adapters[key] = {
            "present": True,
            "version": entry.version,
            "content_id": entry.content_id,
            "path": str(layout.root / entry.folder),
            "link": str(layout.link(parse_repo(key))),
            "bytes": entry.bytes,
            "last_used": iso_z(entry.last_used or entry.synced_at),
            "pinned": pins(key),
            "stale": entry.stale,
        }
    for key, out in state.left_out.items():
        adapters[key] = {
            "present": False,
            "version": out.version,
            "content_id": out.content_id,
            "path": None,
            "link": None,
            "bytes": out.bytes,
            "last_used": iso_z(out.last_used),
            "pinned": pins(key),
            "stale": False,
            "left_out": out.reason,
        }
    experiments: dict[str, dict[str, Any]] = {}
    for key, exp in state.experiments.items():
        repo = parse_repo(f"{exp.namespace}/{exp.adapter}")
        experiments[key] = {
            "adapter": str(repo),
            "name": exp.name,
            "id": exp.id,
            "base_model": exp.base_model,
            "salt": exp.salt,
            "buckets": BUCKETS,
            "period": exp.period,
            "ranges": [list(r) for r in exp.ranges],
            "variants": {
                name: {
                    "present": v.folder is not None,
                    "control": v.control,
                    "version": v.version,
                    "content_id": v.content_id,
                    "path": str(layout.root / v.folder) if v.folder else None,
                    "link": str(layout.variant_link(repo, exp.name, name)) if v.folder else None,
                }
                for name, v in exp.variants.items()
            },
        }
    return {
        "format": FORMAT,
        "base": state.binding.base,
        "ref": state.binding.ref,
        "namespace": state.binding.namespace,
        "served_as": state.binding.model_name,
        "updated_at": iso_z(now()),
        "max_bytes": max_bytes,
        "disk_bytes": disk_bytes,
        "adapters": dict(sorted(adapters.items())),
        "experiments": dict(sorted(experiments.items())),
    }


def write_manifest(layout: NodeLayout, doc: dict[str, Any]) -> None:
    """Replace the manifest in one rename: readers see the old one or the new one whole.

    Not fsynced: it is derived from the state, and every sync run writes it afresh, so
    after a power cut it is at worst one change behind until the next run starts.
    """
    path = layout.meta / NAME
    tmp = path.with_name(f".manifest.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(tmp, path)

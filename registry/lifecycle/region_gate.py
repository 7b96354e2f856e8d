"""The regions gate: ``require_regions`` names regional stores that must hold every file
of a version before it is promoted (``lorareg policy set acme --require-regions eu,us``).

Presence comes from the catalog's ``blob_replicas`` rows (filled by the replication
workers and the external checker): a file whose copy in a region is not recorded
``present`` is missing there, so the gate never opens on a copy nobody has seen. The
primary store holds every file by construction: ``set_policy`` leaves it out of the list.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from registry.db import models as m
from registry.regions.copies import missing_files

_LISTED = 5  # paths named per region before "and N more"


def region_problems(session: Session, version: m.AdapterVersion, regions: list[str]) -> list[str]:
    """Every required region that misses a file of ``version``, with the paths, phrased
    for the user (empty: the gate opens)."""
    ref = f"{version.adapter.namespace.name}/{version.adapter.name}:{version.number}"
    problems = []
    for region, paths in sorted(missing_files(session, version.id, regions).items()):
        if not paths:
            continue
        named = ", ".join(paths[:_LISTED])
        more = f" and {len(paths) - _LISTED} more" if len(paths) > _LISTED else ""
        problems.append(
            f"region {region} does not hold {len(paths)} file(s) of {ref} yet ({named}{more})"
        )
    return problems

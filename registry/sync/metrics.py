"""Figures of a synced folder for ``lorareg sync --metrics-port``, read from its state and
manifest at scrape time, so they are true whoever writes the folder and cost nothing
between scrapes."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily

from registry.sync.layout import NodeLayout
from registry.sync.manifest import NAME
from registry.sync.state import load_state, now

log = logging.getLogger("lorareg.sync")


class FolderCollector:
    """``lorareg_sync_adapters{state}``, ``lorareg_sync_disk_bytes``,
    ``lorareg_sync_budget_bytes`` and ``lorareg_sync_lag_seconds`` of one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # nothing read until a scrape

    def collect(self) -> Iterator[GaugeMetricFamily]:
        layout = NodeLayout(self.root)
        try:
            state = load_state(layout)
            doc = json.loads((layout.meta / NAME).read_text())
        except (OSError, ValueError):
            return  # not synced yet (or being replaced): no figures rather than wrong ones
        if state is None:
            return
        adapters = GaugeMetricFamily(
            "lorareg_sync_adapters",
            "Adapters of the synced stage or alias on disk (present) or left out by the budget.",
            labels=["state"],
        )
        adapters.add_metric(["present"], len(state.adapters))
        adapters.add_metric(["left_out"], len(state.left_out))
        yield adapters
        yield GaugeMetricFamily(
            "lorareg_sync_disk_bytes",
            "Bytes in the node's blob cache (version folders link into it).",
            value=float(doc.get("disk_bytes") or 0),
        )
        yield GaugeMetricFamily(
            "lorareg_sync_budget_bytes",
            "The --max-bytes budget; 0 when there is none.",
            value=float(doc.get("max_bytes") or 0),
        )
        if state.caught_up_at is not None:
            yield GaugeMetricFamily(
                "lorareg_sync_lag_seconds",
                "Seconds since the node last confirmed it had every change of the registry.",
                value=max(0.0, (now() - state.caught_up_at).total_seconds()),
            )

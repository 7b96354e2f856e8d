"""Two versions side by side: config, target modules, files and eval deltas."""

from __future__ import annotations

from typing import Any

from registry.domain import VersionInfo

# Keys whose differences are noise in a side-by-side view.
_IGNORED = {"revision"}


def diff_versions(a: VersionInfo, b: VersionInfo) -> dict[str, Any]:
    keys = sorted((set(a.config) | set(b.config)) - _IGNORED)
    config = {
        k: {"a": a.config.get(k), "b": b.config.get(k)}
        for k in keys
        if a.config.get(k) != b.config.get(k)
    }
    ta, tb = set(a.target_modules), set(b.target_modules)
    ea = {e.metric: e for e in a.evals}
    eb = {e.metric: e for e in b.evals}
    evals = {}
    for metric in sorted(set(ea) | set(eb)):
        va = ea[metric].value if metric in ea else None
        vb = eb[metric].value if metric in eb else None
        delta = vb - va if va is not None and vb is not None else None
        hib = (eb.get(metric) or ea[metric]).higher_is_better
        better = None if delta is None or delta == 0 else (delta > 0) == hib
        evals[metric] = {"a": va, "b": vb, "delta": delta, "better": better}
    fa = {f.path: f.sha256 for f in a.files}
    fb = {f.path: f.sha256 for f in b.files}
    return {
        "a": a.ref,
        "b": b.ref,
        "base_model": {"a": a.base_model, "b": b.base_model},
        "config": config,
        "targets": {
            "added": sorted(tb - ta),
            "removed": sorted(ta - tb),
            "common": sorted(ta & tb),
        },
        "evals": evals,
        "files": {
            "added": sorted(set(fb) - set(fa)),
            "removed": sorted(set(fa) - set(fb)),
            "changed": sorted(p for p in set(fa) & set(fb) if fa[p] != fb[p]),
        },
    }

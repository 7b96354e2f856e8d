"""Shaping domain objects for the pages: key eval columns, side-by-side diffs.

Presentation only: which metrics deserve a column, how two configs line up. No queries.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from registry.domain import EvalRecord, VersionInfo
from registry.web.format import human_size, number


def eval_label(e: EvalRecord) -> str:
    """A score is named by its metric and, when given, the dataset it was measured on."""
    return f"{e.metric} ({e.dataset})" if e.dataset else e.metric


def latest_scores(v: VersionInfo) -> dict[str, EvalRecord]:
    """The most recent record per metric label (records arrive oldest first)."""
    out: dict[str, EvalRecord] = {}
    for e in v.evals:
        out[eval_label(e)] = e
    return out


def key_metrics(versions: Iterable[VersionInfo], *, limit: int = 3) -> list[str]:
    """The labels most versions were scored on: the columns worth a table's width."""
    seen: Counter[str] = Counter()
    for v in versions:
        seen.update(latest_scores(v).keys())
    ranked = sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))
    return [label for label, _ in ranked[:limit]]


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True) if value else "–"
    return number(value)


@dataclass(frozen=True)
class Row:
    key: str
    a: str
    b: str

    @property
    def differs(self) -> bool:
        return self.a != self.b


def summary_rows(a: VersionInfo, b: VersionInfo) -> list[Row]:
    """The headline fields of two versions, in the order the version page lists them."""
    fields: list[tuple[str, Any, Any]] = [
        ("base model", a.base_model, b.base_model),
        ("PEFT type", a.peft_type, b.peft_type),
        ("rank (r)", a.r, b.r),
        ("alpha", a.lora_alpha, b.lora_alpha),
        ("size", human_size(a.size), human_size(b.size)),
        ("files", a.file_count, b.file_count),
        ("author", a.author, b.author),
        ("parent", a.parent, b.parent),
        ("content id", a.content_id, b.content_id),
    ]
    return [Row(k, _cell(x), _cell(y)) for k, x, y in fields]


def config_rows(a: VersionInfo, b: VersionInfo) -> list[Row]:
    """Every ``adapter_config.json`` key of either version, differing keys first."""
    keys = sorted(set(a.config) | set(b.config))
    rows = [Row(k, _cell(a.config.get(k)), _cell(b.config.get(k))) for k in keys]
    return sorted(rows, key=lambda r: not r.differs)


@dataclass(frozen=True)
class TargetDiff:
    common: list[str]
    only_a: list[str]
    only_b: list[str]


def target_diff(a: VersionInfo, b: VersionInfo) -> TargetDiff:
    ta, tb = set(a.target_modules), set(b.target_modules)
    return TargetDiff(sorted(ta & tb), sorted(ta - tb), sorted(tb - ta))


@dataclass(frozen=True)
class EvalDelta:
    label: str
    a: float | None
    b: float | None
    higher_is_better: bool

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def verdict(self) -> str:
        """``better``/``worse``/``same`` going from A to B, or ``""`` when not comparable."""
        d = self.delta
        if d is None:
            return ""
        if d == 0:
            return "same"
        return "better" if (d > 0) == self.higher_is_better else "worse"


def eval_deltas(a: VersionInfo, b: VersionInfo) -> list[EvalDelta]:
    sa, sb = latest_scores(a), latest_scores(b)
    out = []
    for label in sorted(set(sa) | set(sb)):
        ea, eb = sa.get(label), sb.get(label)
        # The newer record says which way is up; the label exists on at least one side.
        direction = eb.higher_is_better if eb else ea.higher_is_better if ea else True
        out.append(EvalDelta(label, ea.value if ea else None, eb.value if eb else None, direction))
    return out

"""Jinja filters: sizes, ages and hashes the way people read them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def human_size(n: int | float | None) -> str:
    """Decimal units, like the CLI (``10.9 KB``)."""
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def aware(when: datetime) -> datetime:
    # SQLite hands back naive datetimes; every timestamp we store is UTC.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def age(when: datetime | None, *, now: datetime | None = None) -> str:
    """``5s ago``, ``3h ago``, ``12d ago``; exact time goes in the ``<time>`` title."""
    if when is None:
        return ""
    s = max(0.0, ((now or datetime.now(UTC)) - aware(when)).total_seconds())
    for limit, div, unit in ((60, 1, "s"), (3600, 60, "m"), (86400, 3600, "h"), (1e12, 86400, "d")):
        if s < limit:
            return f"{int(s // div)}{unit} ago"
    return ""


def iso(when: datetime | None) -> str:
    return aware(when).isoformat(timespec="seconds") if when is not None else ""


def utc_text(when: datetime | None) -> str:
    return aware(when).strftime("%Y-%m-%d %H:%M:%S UTC") if when is not None else ""


def short(value: str | None, n: int = 12) -> str:
    return (value or "")[:n]


def number(value: Any) -> str:
    """Eval scores and alphas: drop noise digits, keep integers integral."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() else f"{value:.4g}"
    return str(value)


def signed(value: float | None) -> str:
    if value is None:
        return ""
    return ("+" if value > 0 else "") + number(value)


def as_json(value: Any, indent: int | None = None) -> str:
    """Plain text JSON (not Markup, unlike Jinja's ``tojson``), so autoescape shows a
    ``<script>`` inside a config value as the characters it is."""
    return json.dumps(value, indent=indent, sort_keys=indent is None, default=str)


def value_text(value: Any) -> str:
    """A config or payload value in one cell: containers as compact JSON, scalars plainly."""
    if isinstance(value, dict | list | tuple):
        return as_json(value)
    return number(value)


FILTERS = {
    "json": as_json,
    "value": value_text,
    "size": human_size,
    "age": age,
    "iso": iso,
    "utc": utc_text,
    "short": short,
    "num": number,
    "signed": signed,
}

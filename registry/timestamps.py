"""One timestamp format on every wire: ISO 8601 in UTC with a ``Z`` (as pydantic writes
aware datetimes), whichever edge or service builds the JSON."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_z(when: datetime | None) -> str | None:
    """``2026-11-28T20:05:23.123456Z``; naive datetimes are UTC (SQLite stores them so)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")

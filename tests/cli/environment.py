"""The environment a user sets to point the CLI at one test's catalog and store."""

from __future__ import annotations

from pathlib import Path

from registry.config import Settings


def cli_environment(
    settings: Settings, cache_dir: Path, url: str | None = None
) -> dict[str, str | None]:
    """Every ``LORAREG_*`` setting unset (None) but the catalog, store, cache and author of
    ``settings``; with ``url``, the CLI talks to that server instead (remote mode)."""
    env: dict[str, str | None] = {f"LORAREG_{k.upper()}": None for k in Settings.model_fields}
    env.update(
        {
            "LORAREG_HOME": str(settings.home),
            "LORAREG_DATABASE_URL": settings.effective_database_url,
            "LORAREG_STORAGE_URL": settings.effective_storage_url,
            "LORAREG_S3_ENDPOINT_URL": settings.s3_endpoint_url,
            "LORAREG_CACHE_DIR": str(cache_dir),
            "LORAREG_AUTHOR": "alice",
            "LORAREG_URL": url,
        }
    )
    return env

"""The Python SDK: ``connect(settings)`` gives a remote client when ``LORAREG_URL`` is set,
else an in-process one on the configured catalog and storage."""

from __future__ import annotations

from registry.client.base import RegistryClient
from registry.config import Settings


def connect(settings: Settings) -> RegistryClient:
    if settings.url:
        from registry.client.remote import RemoteClient

        return RemoteClient(
            settings.url,
            token=settings.token,
            actor=settings.effective_author,
            cache_dir=settings.effective_cache_dir,
            max_header_bytes=settings.max_header_bytes,
            region=settings.region,
        )
    from registry.client.local import LocalClient
    from registry.runtime import open_runtime

    return LocalClient(open_runtime(settings))


__all__ = ["RegistryClient", "connect"]

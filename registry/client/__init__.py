"""The Python SDK: ``connect(settings)`` gives a remote client when ``LORAREG_URL`` is set,
else an in-process one on the configured catalog and storage.

Nothing is imported up front: ``registry.client.fast_reads`` (the CLI's read fast path)
lives in this package and must not pay for pydantic and the settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    if name == "RegistryClient":
        from registry.client.base import RegistryClient

        return RegistryClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RegistryClient", "connect"]

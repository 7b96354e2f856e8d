"""The configured regions and each one's BlobStore (its own endpoint and credentials)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from registry.config import Settings
from registry.errors import UnknownRegion
from registry.storage import open_store_at
from registry.storage.base import BlobStore

Mode = Literal["primary", "replicate", "external"]


@dataclass(frozen=True)
class Region:
    """One region: its name, how its store is filled, and the store itself."""

    name: str
    mode: Mode
    url: str
    store: BlobStore

    @property
    def is_primary(self) -> bool:
        return self.mode == "primary"


class RegionSet:
    """The primary store and every regional store of ``settings``, in configuration order.

    Opening does no I/O (stores connect on first use). Without ``LORAREG_REGIONS`` the
    set holds only the primary, and every read goes there as before regions existed.
    """

    def __init__(self, settings: Settings, primary: BlobStore) -> None:
        self.settings = settings
        self.primary = Region(
            name=settings.primary_region,
            mode="primary",
            url=settings.effective_storage_url,
            store=primary,
        )
        self._by_name: dict[str, Region] = {self.primary.name: self.primary}
        for cfg in settings.regions:
            store = open_store_at(
                cfg.storage_url,
                settings=settings,
                endpoint_url=cfg.endpoint_url,
                profile=cfg.aws_profile,
            )
            self._by_name[cfg.name] = Region(
                name=cfg.name, mode=cfg.mode, url=cfg.storage_url, store=store
            )

    @property
    def enabled(self) -> bool:
        """True when any regional store is configured."""
        return len(self._by_name) > 1

    @property
    def names(self) -> list[str]:
        """Every region's name, the primary's first."""
        return list(self._by_name)

    def __iter__(self) -> Iterator[Region]:
        return iter(self._by_name.values())

    def replicas(self) -> list[Region]:
        """The non-primary regions."""
        return [r for r in self._by_name.values() if not r.is_primary]

    def get(self, name: str) -> Region:
        """The region ``name``; UnknownRegion (422) listing the configured ones otherwise."""
        region = self._by_name.get(name) if isinstance(name, str) else None
        if region is None:
            raise UnknownRegion(
                f"unknown region {str(name)[:40]!r}; this registry's regions are: "
                + ", ".join(self._by_name)
            )
        return region

    def order_for(self, reader: str) -> list[str]:
        """Where a reader in ``reader`` looks, in order: its own region, the configured
        fallback order (``LORAREG_REGION_FALLBACK``), then the primary, each once."""
        order: list[str] = []
        for name in (reader, *self.settings.region_fallback, self.primary.name):
            if name in self._by_name and name not in order:
                order.append(name)
        return order

    def close(self) -> None:
        """Close the regional stores' connections (the primary is its runtime's)."""
        for region in self.replicas():
            close = getattr(region.store, "close", None)
            if close is not None:
                close()


def open_regions(settings: Settings, primary: BlobStore) -> RegionSet:
    """The regions of ``settings`` around the already open ``primary`` store; a
    ``LORAREG_REGION`` that names no region is UnknownRegion."""
    regions = RegionSet(settings, primary)
    if settings.region is not None:
        regions.get(settings.region)
    return regions

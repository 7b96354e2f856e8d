"""Names vLLM is asked for, resolved through lorareg into content-addressed folders.

No vLLM import here (``plugin.py`` is the thin vLLM side), so this runs and is tested in
any process. A name is a lorareg reference:

- ``acme/client-1234``: what the configured stage (default ``production``) names;
- ``acme/client-1234@canary``: a stage or alias;
- ``acme/client-1234:7``: version 7.

Anything else is not lorareg's (``resolve`` returns None and vLLM asks its next resolver).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.catalog.refs import Ref, Repo, parse_ref
from registry.errors import InvalidInput, NotFound
from registry.integrations.vllm.cache import CacheFile, Holding, NodeCache
from registry.integrations.vllm.gate import Gate
from registry.sync.source import RemoteFile, SyncSource, Target


@dataclass
class Served:
    """A name handed to vLLM: which version, from which folder, held in use."""

    name: str
    ref: Ref
    content_id: str
    version: int
    path: Path
    holding: Holding
    fetched: int = 0  # bytes downloaded to serve it (0: from the cache)
    retired_at: float | None = field(default=None, compare=False)

    @property
    def movable(self) -> bool:
        """A stage, an alias or the default stage: it can move to another version."""
        return self.ref.number is None


def parse_name(name: str) -> Ref | None:
    """The lorareg reference ``name`` spells, or None when it is not one."""
    if "/" not in name:
        return None
    try:
        return parse_ref(name)
    except InvalidInput:
        return None


class AdapterResolver:
    """Resolves names for one served base model; thread-safe."""

    def __init__(
        self,
        source: SyncSource,
        client: Any,
        cache: NodeCache,
        *,
        served_model: str,
        base: str | None,
        stage: str = "production",
        grace_s: float = 300.0,
    ) -> None:
        self.source = source
        self.cache = cache
        self.base = base
        self.stage = stage
        self.grace_s = grace_s
        self.gate = Gate(served_model, client)
        self.served: dict[str, Served] = {}
        self._retired: list[Served] = []
        self._lock = threading.Lock()

    def resolve(self, name: str) -> Served | None:
        """Fetch, check and hold the version ``name`` names now; None when ``name`` is not
        a lorareg reference or names nothing. Raises Refused when the version does not fit
        the served base, and lorareg's errors (Unavailable, Unauthorized, ChecksumMismatch)."""
        ref = parse_name(name)
        if ref is None:
            return None
        target = self.target(ref)
        if target is None:
            return None
        served = self.fetch(name, ref, target)
        self.replace(served)
        return served

    def replace(self, served: Served) -> None:
        """``served`` backs its name from now on; what backed it before is retired."""
        with self._lock:
            previous = self.served.get(served.name)
            self.served[served.name] = served
        if previous is not None and previous is not served:
            self.retire(previous)

    def target(self, ref: Ref) -> Target | None:
        """The version ``ref`` names in the registry now (None: none)."""
        label = str(ref.number) if ref.number is not None else (ref.label or self.stage)
        try:
            # A pinned version is served whatever its base: the gate says if it fits.
            base = self.base if ref.number is None else None
            return self.source.resolve(ref.repo, ref=label, base=base)
        except NotFound:
            return None

    def fetch(self, name: str, ref: Ref, target: Target) -> Served:
        """The folder of ``target``, downloaded if missing, checked, held in use."""
        files = [self._file(f) for f in target.files]
        holding, fetched = self.cache.hold(target.content_id, files)
        try:
            self.gate.check(
                content_id=target.content_id,
                folder=holding.folder,
                trained_on=target.base_model,
                what=f"{target.repo}:{target.number}",
            )
        except BaseException:
            holding.release()
            raise
        if fetched:
            self.cache.evict()
        return Served(
            name=name,
            ref=ref,
            content_id=target.content_id,
            version=target.number,
            path=holding.folder,
            holding=holding,
            fetched=fetched,
        )

    def retire(self, served: Served) -> None:
        """``served`` no longer backs its name: keep it in use for the grace period (for
        requests in flight), then release it to eviction."""
        served.retired_at = time.monotonic()
        with self._lock:
            self._retired.append(served)
        self.release_expired()

    def forget(self, name: str) -> None:
        """``name`` was unloaded from vLLM."""
        with self._lock:
            served = self.served.pop(name, None)
        if served is not None:
            self.retire(served)

    def release_expired(self) -> None:
        now = time.monotonic()
        with self._lock:
            expired = [s for s in self._retired if now - (s.retired_at or now) >= self.grace_s]
            self._retired = [s for s in self._retired if all(s is not e for e in expired)]
        for s in expired:
            s.holding.release()
        if expired:
            self.cache.evict()

    def names_of(self, repo: Repo) -> list[Served]:
        with self._lock:
            return [s for s in self.served.values() if s.ref.repo == repo]

    def close(self) -> None:
        with self._lock:
            every = [*self.served.values(), *self._retired]
            self.served.clear()
            self._retired.clear()
        for s in every:
            s.holding.release()

    def _file(self, f: RemoteFile) -> CacheFile:
        return CacheFile(
            path=f.path, sha256=f.sha256, size=f.size, chunks=lambda: self.source.open_blob(f)
        )

"""vLLM's side of the plugin: a ``LoRAResolver`` over ``AdapterResolver``.

Imported only from ``register()`` inside vLLM. vLLM calls ``resolve_lora`` on its event
loop, one name at a time (it holds a lock per name), so the blocking work (HTTP, disk,
file locks) runs in a worker thread. The first call builds everything (settings, client,
cache, the served base) and starts the follower; nothing happens in processes that never
resolve a name (vLLM's engine core and workers).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from vllm.lora.request import LoRARequest
from vllm.lora.resolver import LoRAResolver

from registry.errors import LoraregError, Unavailable

if TYPE_CHECKING:
    from registry.integrations.vllm.resolver import AdapterResolver

# Under "vllm." so vLLM's own log handler prints it.
log = logging.getLogger("vllm.lorareg")


def _client_error(message: str) -> Exception:
    """What vLLM answers 400 with the message (a ValueError in older vLLMs)."""
    try:
        from vllm.exceptions import VLLMClientError

        return VLLMClientError(message)
    except ImportError:  # pragma: no cover - vLLM before its error hierarchy
        return ValueError(message)


def _http_error(message: str, status: HTTPStatus) -> Exception:
    try:
        from vllm.exceptions import GracefulHTTPError

        return GracefulHTTPError(message, status)
    except ImportError:  # pragma: no cover
        return RuntimeError(message)


def _info(message: str) -> None:
    log.info("lorareg: %s", message)


class LoraregResolver(LoRAResolver):
    """Resolves ``namespace/name[@label|:N]`` through lorareg (see ``resolver.py``)."""

    def __init__(self) -> None:
        self._core: AdapterResolver | None = None
        self._setup = threading.Lock()
        self.follower: Any = None

    async def resolve_lora(self, base_model_name: str, lora_name: str) -> LoRARequest | None:
        from registry.integrations.vllm.gate import Refused
        from registry.integrations.vllm.resolver import parse_name

        if parse_name(lora_name) is None:
            return None  # not a lorareg reference: vLLM asks its next resolver
        try:
            served = await asyncio.to_thread(self._resolve, base_model_name, lora_name)
        except Refused as exc:
            raise _client_error(str(exc)) from None
        except Unavailable as exc:
            raise _http_error(
                f"lorareg could not resolve {lora_name}: {exc.message}",
                HTTPStatus.SERVICE_UNAVAILABLE,
            ) from None
        except LoraregError as exc:
            raise _http_error(
                f"lorareg could not resolve {lora_name}: {exc.message}", HTTPStatus.BAD_GATEWAY
            ) from None
        if served is None:
            return None
        log.info(
            "lorareg: %s -> %s:%d (content %s, %s)",
            lora_name,
            served.ref.repo,
            served.version,
            served.content_id[:12],
            f"fetched {served.fetched} bytes" if served.fetched else "from the node cache",
        )
        # vLLM sets the adapter id itself; the path is the content-id folder (the path rule).
        return LoRARequest(lora_name=lora_name, lora_int_id=1, lora_path=str(served.path))

    def _resolve(self, model: str, name: str) -> Any:
        return self.core(model).resolve(name)

    def core(self, model: str) -> AdapterResolver:
        """The resolver, built on first use in this process (with its follower)."""
        with self._setup:
            if self._core is None:
                self._core = self._build(model)
            return self._core

    def _build(self, model: str) -> AdapterResolver:
        from registry.catalog.refs import BASE_NAME_RE
        from registry.client import connect
        from registry.config import load_settings, load_vllm_plugin_settings
        from registry.integrations.vllm.cache import NodeCache
        from registry.integrations.vllm.follower import NameFollower
        from registry.integrations.vllm.resolver import AdapterResolver
        from registry.sync.engines import VllmEngine
        from registry.sync.source import source_for

        settings = load_settings()
        plugin = load_vllm_plugin_settings()
        client = connect(settings)
        source = source_for(client)
        base = plugin.base or (model if BASE_NAME_RE.match(model) else None)
        core = AdapterResolver(
            source,
            client,
            NodeCache(plugin.cache_dir, max_bytes=plugin.cache_bytes),
            served_model=model,
            base=base,
            stage=plugin.stage,
            grace_s=plugin.grace_s,
        )
        if plugin.follow:
            engine = VllmEngine(plugin.engine_url)
            self.follower = NameFollower(core, source, engine, log=_info)
            self.follower.start()
        log.info(
            "lorareg: resolving %s names for base %s from %s into %s",
            plugin.stage,
            base or "(any)",
            settings.url or "the embedded catalog",
            plugin.cache_dir,
        )
        return core

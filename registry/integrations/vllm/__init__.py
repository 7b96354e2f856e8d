"""lorareg's vLLM plugin: ``model="acme/client-1234"`` loads that client's adapter.

vLLM discovers it through the ``vllm.general_plugins`` entry point (``pip install
'lorareg[vllm]'``) and calls ``register`` in each of its processes (API server, engine
core, workers): it only adds a resolver object to vLLM's registry, importing nothing of
lorareg's beyond this package; everything else is built on the first name resolved,
which happens only in the API server. vLLM consults resolvers when it runs with
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``.

- ``resolver``: names to content-addressed folders (no vLLM import; tested alone);
- ``cache``: the node cache, per content id, with LRU eviction of folders not in use;
- ``gate``: the registry's compatibility checks against the served base;
- ``follower``: promotions switch names vLLM already loaded;
- ``plugin``: the ``LoRAResolver`` vLLM calls.
"""

from __future__ import annotations

RESOLVER_NAME = "lorareg"


def register() -> None:
    """Register lorareg's resolver with vLLM; calling it again changes nothing."""
    from vllm.lora.resolver import LoRAResolverRegistry

    if RESOLVER_NAME in LoRAResolverRegistry.get_supported_resolvers():
        return
    from registry.integrations.vllm.plugin import LoraregResolver

    LoRAResolverRegistry.register_resolver(RESOLVER_NAME, LoraregResolver())

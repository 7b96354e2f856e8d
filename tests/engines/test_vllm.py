"""lorareg in front of a real vLLM: the plugin resolves references, promotions switch
running engines (plugin follower and ``lorareg sync --engine-url``), requests in flight
finish on the version they started with, a version on another base is refused with the
check's reason, and the node cache evicts what no name uses. vLLM's token ids are
compared with transformers + PEFT greedy decoding on the same files (the oracle)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.sync.engines import VllmEngine
from tests.engines.conftest import (
    BASE,
    Peft,
    Registry,
    Vllm,
    VllmRefused,
    lorareg_cli,
    prompt_of,
    request_body,
    wait_until,
)

pytestmark = pytest.mark.slow
LONG = 160  # longer than one 128-token KV block: the prefix cache reuses a whole block


@pytest.fixture(scope="module")
def bases(registry: Registry, served_base: Path, base_library: dict[str, Path]) -> Registry:
    registry.client.add_base(BASE, str(served_base))
    registry.client.add_base("wide-llama", str(base_library["wide"]))
    return registry


def push_pair(reg: Registry, repo: str, library: dict[str, Path]) -> tuple[Any, Any]:
    """``repo`` v1 and v2 (same shapes, other weights), v1 in production."""
    reg.client.push(library["v1"], repo, base=BASE)
    reg.client.push(library["v2"], repo, base=BASE)
    reg.client.promote(f"{repo}:1", to="production")
    return reg.client.show(f"{repo}:1"), reg.client.show(f"{repo}:2")


def test_plugin_resolves_stage_alias_and_version_with_peft_token_ids(
    vllm: Vllm, bases: Registry, peft: Peft, adapter_pair: Any
) -> None:
    adapter_library = adapter_pair(11)
    v1, v2 = push_pair(bases, "acme/voice", adapter_library)
    bases.client.set_alias("acme/voice", "canary", 2)
    prompt = prompt_of(12, seed=1)
    want_v1 = peft.greedy(adapter_library["v1"], prompt, 12)
    want_v2 = peft.greedy(adapter_library["v2"], prompt, 12)
    assert want_v1 != want_v2 != peft.greedy(None, prompt, 12)  # the oracle can tell them apart

    assert vllm.complete("acme/voice", prompt, 12) == want_v1  # the configured stage
    assert vllm.complete("acme/voice@canary", prompt, 12) == want_v2
    assert vllm.complete("acme/voice:1", prompt, 12) == want_v1
    loaded = vllm.loaded()
    # The path rule: each name loads its version's content-id folder.
    assert loaded["acme/voice"] == loaded["acme/voice:1"] == str(vllm.cache_dir / v1.content_id)
    assert loaded["acme/voice@canary"] == str(vllm.cache_dir / v2.content_id)
    # Not a lorareg name, or nothing behind it: vLLM's own 404.
    with pytest.raises(VllmRefused) as info:
        vllm.complete("acme/nobody", prompt, 1)
    assert info.value.status == 404


def test_promotion_switches_a_running_engine_long_prompts_included(
    vllm: Vllm, bases: Registry, peft: Peft, adapter_pair: Any
) -> None:
    adapter_library = adapter_pair(21)
    _, v2 = push_pair(bases, "acme/long", adapter_library)
    prompt = prompt_of(LONG, seed=2)
    assert vllm.complete("acme/long", prompt, 8) == peft.greedy(adapter_library["v1"], prompt, 8)

    bases.client.promote("acme/long:2", to="production")
    new_path = str(vllm.cache_dir / v2.content_id)
    wait_until(lambda: vllm.loaded().get("acme/long") == new_path, timeout=60, what="the switch")
    # The same 160-token prompt: its first block was cached under v1's (name, path) key,
    # which the new path no longer matches, so nothing computed with v1 is reused.
    assert vllm.complete("acme/long", prompt, 8) == peft.greedy(adapter_library["v2"], prompt, 8)


def test_sync_engine_url_switches_names_loaded_from_the_synced_folder(
    vllm: Vllm, bases: Registry, peft: Peft, adapter_pair: Any, tmp_path: Path
) -> None:
    adapter_library = adapter_pair(31)
    push_pair(bases, "acme/synced", adapter_library)
    node = tmp_path / "node"
    argv = ["sync", "--to", str(node), "--base", BASE, "--engine-url", vllm.url]
    done = lorareg_cli(*argv, url=bases.url)
    assert done.returncode == 0, done.stderr
    # As vLLM's FilesystemResolver loads it: the link DIR/acme/synced, a path that stays
    # the same when the link flips (the path rule is broken until sync switches it).
    link = node / "acme" / "synced"
    with VllmEngine(vllm.url) as engine:
        engine.load("acme/synced", str(link))
    prompt = prompt_of(LONG, seed=3)
    assert vllm.complete("acme/synced", prompt, 8) == peft.greedy(adapter_library["v1"], prompt, 8)

    bases.client.promote("acme/synced:2", to="production")
    done = lorareg_cli(*argv, url=bases.url)
    assert done.returncode == 0, done.stderr
    version_folder = os.path.realpath(link)
    assert "v2-" in version_folder
    assert f"{vllm.url}: acme/synced now loads" in done.stderr
    assert vllm.loaded()["acme/synced"] == version_folder
    assert vllm.complete("acme/synced", prompt, 8) == peft.greedy(adapter_library["v2"], prompt, 8)

    # Nothing moved: a second run switches nothing.
    done = lorareg_cli(*argv, url=bases.url)
    assert done.returncode == 0 and "now loads" not in done.stderr, done.stderr


def stream_tokens(url: str, body: dict[str, Any]) -> Iterator[list[int]]:
    with httpx.stream(
        "POST", f"{url}/v1/completions", json={**body, "stream": True}, timeout=300
    ) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                choice = json.loads(line[6:])["choices"][0]
                yield list(choice.get("token_ids") or [])


def running(url: str) -> float:
    """Requests vLLM is generating for now (its own Prometheus gauge)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:num_requests_running")
    )


def test_requests_in_flight_finish_on_the_version_they_started_with(
    vllm: Vllm, peft: Peft, adapter_pair: Any, tmp_path: Path
) -> None:
    adapter_library = adapter_pair(51)
    paths = {}
    for key in ("v1", "v2"):
        paths[key] = str(tmp_path / key)
        os.symlink(adapter_library[key], paths[key])
    with VllmEngine(vllm.url) as engine:
        engine.load("flight", paths["v1"])
    prompt, n = prompt_of(8, seed=4), 200

    stream = stream_tokens(vllm.url, request_body("flight", prompt, n))
    got = next(stream)
    with VllmEngine(vllm.url) as engine:
        engine.switch("flight", paths["v2"])  # what sync and the plugin do on a promotion
    assert running(vllm.url) >= 1, "the request finished before the switch: nothing in flight"
    for delta in stream:
        got += delta
    assert got == peft.greedy(adapter_library["v1"], prompt, n)
    after = vllm.complete("flight", prompt, 16)
    assert after == peft.greedy(adapter_library["v2"], prompt, 16)


def test_a_version_trained_on_another_base_is_refused_with_the_checks_reason(
    vllm: Vllm, bases: Registry, wide_adapter: Path
) -> None:
    bases.client.push(wide_adapter, "acme/wide", base="wide-llama")
    with pytest.raises(VllmRefused) as info:
        vllm.complete("acme/wide:1", prompt_of(4, seed=5), 2)
    assert info.value.status == 400
    assert "lorareg refuses acme/wide:1 on this engine's base" in info.value.message
    assert "different structure" in info.value.message
    assert "acme/wide:1" not in vllm.loaded()


def test_the_node_cache_evicts_folders_no_name_uses(
    vllm: Vllm, bases: Registry, peft: Peft, adapter_pair: Any
) -> None:
    adapter_library = adapter_pair(41)
    # The session's cache budget is 1 byte and its grace 0 s: every folder no name
    # uses goes at once, and every folder a name uses stays, whatever the budget.
    v1, v2 = push_pair(bases, "acme/evict", adapter_library)
    prompt = prompt_of(6, seed=6)
    assert vllm.complete("acme/evict", prompt, 4) == peft.greedy(adapter_library["v1"], prompt, 4)
    assert (vllm.cache_dir / v1.content_id).is_dir()

    bases.client.promote("acme/evict:2", to="production")
    new_path = str(vllm.cache_dir / v2.content_id)
    wait_until(lambda: vllm.loaded().get("acme/evict") == new_path, timeout=60, what="the switch")
    wait_until(
        lambda: not (vllm.cache_dir / v1.content_id).exists(), timeout=30, what="v1's eviction"
    )
    in_use = {Path(p) for name, p in vllm.loaded().items() if str(vllm.cache_dir) in p}
    assert in_use and all(p.is_dir() for p in in_use)
    assert vllm.complete("acme/evict", prompt, 4) == peft.greedy(adapter_library["v2"], prompt, 4)

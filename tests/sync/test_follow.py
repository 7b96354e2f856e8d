"""Following the change feed against a live server: readers never see a mixed or partial
adapter, changes land within a second, and sync survives the registry and itself
restarting. One backend pair (SQLite + local store): this tests sync, not the catalog."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load as load_safetensors

from registry.catalog.refs import Repo
from registry.client.local import LocalClient
from registry.client.remote import RemoteClient
from registry.errors import Conflict
from registry.runtime import Runtime
from registry.sync import Follower, SyncOptions, folder_status
from registry.sync.layout import NodeLayout
from registry.sync.source import LocalSource
from registry.sync.state import load_state
from tests.sync.conftest import (
    BASE,
    LOCAL_STORE,
    RestartableServer,
    following,
    marker,
    sha256,
    synced_number,
    wait_for,
)

pytestmark = LOCAL_STORE
REPO = "acme/voice"


@dataclass(frozen=True)
class Known:
    number: int
    r: int
    weights_sha: str
    tensors: dict[str, torch.Tensor]


@pytest.fixture
def server(runtime: Runtime) -> Iterator[RestartableServer]:
    srv = RestartableServer(runtime).start()
    yield srv
    if srv.thread is not None and srv.thread.is_alive():
        srv.stop()


@pytest.fixture
def remote(server: RestartableServer) -> Iterator[Callable[[], RemoteClient]]:
    """Make RemoteClients for the server (one per thread); all closed at the end."""
    made: list[RemoteClient] = []

    def make() -> RemoteClient:
        made.append(RemoteClient(server.url, actor="tester"))
        return made[-1]

    yield make
    for c in made:
        c.close()


@pytest.fixture
def versions(runtime: Runtime, adapter_library: dict[str, Path]) -> dict[str, Known]:
    """acme/voice v1, v2 (same shapes, other weights) and v3 (rank 8), by content id."""
    local = LocalClient(runtime)
    out = {}
    for key in ("v1", "v2", "r8"):
        v = local.push(adapter_library[key], REPO, base=BASE).version
        raw = (adapter_library[key] / "adapter_model.safetensors").read_bytes()
        out[v.content_id] = Known(v.number, v.r, sha256(raw), load_safetensors(raw))
    local.promote(f"{REPO}:1", to="production")
    return out


def check_folder(folder: str, known: dict[str, Known]) -> str:
    """Read one resolved version folder as an engine would; fail on any mix or partial file."""
    with open(os.path.join(folder, ".lorareg.json")) as fh:
        m = json.load(fh)
    expected = known[m["content_id"]]
    with open(os.path.join(folder, "adapter_config.json"), "rb") as fh:
        cfg_raw = fh.read()
    with open(os.path.join(folder, "adapter_model.safetensors"), "rb") as fh:
        weights_raw = fh.read()
    assert sha256(cfg_raw) == m["files"]["adapter_config.json"]
    assert sha256(weights_raw) == m["files"]["adapter_model.safetensors"] == expected.weights_sha
    cfg = json.loads(cfg_raw)
    assert cfg["r"] == expected.r and cfg["base_model_name_or_path"] == BASE
    tensors = load_safetensors(weights_raw)
    assert tensors.keys() == expected.tensors.keys()
    assert all(tensors[k].equal(v) for k, v in expected.tensors.items())
    return str(m["content_id"])


def peft_load(folder: str, known: dict[str, Known], content_id: str) -> None:
    """Load the folder with PEFT onto a fresh base, as vLLM does with the resolved path."""
    from peft import PeftModel, get_peft_model_state_dict

    from tests.factories import make_llama

    model = PeftModel.from_pretrained(make_llama(), folder)
    state = get_peft_model_state_dict(model)
    expected = known[content_id].tensors
    assert state.keys() == expected.keys()
    assert all(state[k].equal(v) for k, v in expected.items())


def test_readers_never_see_a_mixed_or_partial_adapter(
    server: RestartableServer,
    remote: Callable[[], RemoteClient],
    versions: dict[str, Known],
    tmp_path: Path,
) -> None:
    dest = tmp_path / "node"
    by_number = {k.number: cid for cid, k in versions.items()}
    weight_shas = {k.weights_sha for k in versions.values()}
    stop = threading.Event()
    errors: list[str] = []
    seen: dict[str, set[str]] = {"raw": set(), "peft": set()}
    reads = {"raw": 0, "peft": 0, "by-path": 0}

    def reader(kind: str) -> None:
        while not stop.is_set():
            try:
                # Resolve the link once, as vLLM's resolver does, then read from there.
                folder = os.path.realpath(dest / REPO)
                cid = check_folder(folder, versions)
                if kind == "peft":
                    peft_load(folder, versions, cid)
                else:
                    # Through the link itself, each file alone is whole and known.
                    with open(dest / REPO / "adapter_model.safetensors", "rb") as fh:
                        assert sha256(fh.read()) in weight_shas
                    reads["by-path"] += 1
                seen[kind].add(cid)
                reads[kind] += 1
            except Exception as exc:  # every failure is a finding
                errors.append(f"{kind}: {type(exc).__name__}: {exc}")

    with following(remote(), dest):
        assert synced_number(dest, REPO) == 1
        threads = [threading.Thread(target=reader, args=(k,)) for k in ("raw", "peft")]
        for t in threads:
            t.start()
        admin = remote()
        rng = random.Random(7)
        current = 1
        for i in range(50):
            target = rng.choice([n for n in by_number if n != current])
            admin.promote(f"{REPO}:{target}", to="production", reason=f"move {i}")
            current = target
            time.sleep(rng.uniform(0, 0.08))
        wait_for(lambda: synced_number(dest, REPO) == current, timeout=1.0, what="last move")
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert errors == []
    assert reads["raw"] > 50 and reads["peft"] > 5
    # The readers did see versions change under them.
    assert len(seen["raw"]) == 3 and len(seen["peft"]) >= 2


def test_promotion_rollback_and_demotion_land_within_a_second(
    server: RestartableServer,
    remote: Callable[[], RemoteClient],
    versions: dict[str, Known],
    tmp_path: Path,
) -> None:
    dest = tmp_path / "node"
    admin = remote()
    with following(remote(), dest, prune=True) as run:
        for number in (2, 1, 3, 1):
            admin.promote(f"{REPO}:{number}", to="production")

            def synced(n: int = number) -> bool:
                return synced_number(dest, REPO) == n

            took = wait_for(synced, timeout=1.0, what=f"v{number}")
            assert took < 1.0
        admin.promote(f"{REPO}:1", to="archived", reason="pulled")
        wait_for(lambda: not os.path.lexists(dest / REPO), timeout=1.0, what="removal")
        # Readers of the old link still have its folder for the grace period.
        assert len(list(NodeLayout(dest).version_folders())) == 3
    changes = [line for line in run.lines if line.startswith(f"{REPO}:")]
    assert [c.split(" (")[0] for c in changes] == [
        f"{REPO}: added v1",
        f"{REPO}: v1 -> v2",
        f"{REPO}: v2 -> v1",
        f"{REPO}: v1 -> v3",
        f"{REPO}: v3 -> v1",
        f"{REPO}: removed v1",
    ]


def test_survives_the_registry_restarting(
    server: RestartableServer,
    remote: Callable[[], RemoteClient],
    runtime: Runtime,
    versions: dict[str, Known],
    tmp_path: Path,
) -> None:
    dest = tmp_path / "node"
    admin = LocalClient(runtime)
    with following(remote(), dest) as run:
        admin.promote(f"{REPO}:2", to="production")
        wait_for(lambda: synced_number(dest, REPO) == 2, timeout=1.0, what="v2")
        server.stop()  # cuts the open long poll
        wait_for(lambda: any("sync paused" in x for x in run.lines), timeout=5, what="outage")
        admin.promote(f"{REPO}:3", to="production", reason="while the server is down")
        time.sleep(0.5)
        assert synced_number(dest, REPO) == 2  # nothing to learn it from yet
        server.start()
        wait_for(lambda: synced_number(dest, REPO) == 3, timeout=5, what="catch-up")
        admin.promote(f"{REPO}:1", to="production")
        wait_for(lambda: synced_number(dest, REPO) == 1, timeout=1.0, what="v1 after restart")
    paused = [x for x in run.lines if x.startswith("sync paused")]
    assert len(paused) == 1, run.lines  # one line per outage, not one per retry
    assert any(x.startswith("sync resumed after event") for x in run.lines)
    assert load_state(NodeLayout(dest)).last_event_id == max(e.id for e in admin.events(0))  # type: ignore[union-attr]


def test_survives_its_own_restart_and_resumes_from_disk(
    server: RestartableServer,
    remote: Callable[[], RemoteClient],
    runtime: Runtime,
    versions: dict[str, Known],
    tmp_path: Path,
) -> None:
    dest = tmp_path / "node"
    admin = LocalClient(runtime)
    with following(remote(), dest):
        admin.promote(f"{REPO}:2", to="production")
        wait_for(lambda: synced_number(dest, REPO) == 2, timeout=1.0, what="v2")
        # One folder, one writer.
        with pytest.raises(Conflict, match="another lorareg sync"), following(remote(), dest):
            pass
        assert folder_status(dest)["following"] is True
    cursor = load_state(NodeLayout(dest)).last_event_id  # type: ignore[union-attr]
    assert folder_status(dest)["following"] is False
    admin.promote(f"{REPO}:1", to="production", reason="while sync is down")
    with following(remote(), dest) as again:
        assert synced_number(dest, REPO) == 1
        admin.promote(f"{REPO}:3", to="production")
        wait_for(lambda: synced_number(dest, REPO) == 3, timeout=1.0, what="v3")
    # v1 came back from the node's own cache (its folder was still there).
    assert any("v2 -> v1" in x and "still on disk" in x for x in again.lines), again.lines
    assert load_state(NodeLayout(dest)).last_event_id > cursor  # type: ignore[union-attr]


def test_a_feed_restored_from_backup_is_read_again(
    server: RestartableServer,
    remote: Callable[[], RemoteClient],
    versions: dict[str, Known],
    tmp_path: Path,
) -> None:
    dest = tmp_path / "node"
    with following(remote(), dest):
        pass
    layout = NodeLayout(dest)
    state = load_state(layout)
    assert state is not None
    state.last_event_id = 10**6  # a cursor the registry never reached
    (layout.state_file).write_text(state.model_dump_json())
    with following(remote(), dest) as run:
        assert any("no longer has event 1000000" in x for x in run.lines)
        remote().promote(f"{REPO}:2", to="production")
        wait_for(lambda: synced_number(dest, REPO) == 2, timeout=1.0, what="v2")


def test_embedded_follow(runtime: Runtime, versions: dict[str, Known], tmp_path: Path) -> None:
    dest = tmp_path / "node"
    local = LocalClient(runtime)
    with following(local, dest, poll_wait_s=0.5):
        local.promote(f"{REPO}:3", to="production")
        wait_for(lambda: synced_number(dest, REPO) == 3, timeout=1.0, what="v3")
    assert marker(dest, REPO)["content_id"] == local.show(f"{REPO}:3").content_id  # type: ignore[index]


def test_follow_an_alias(runtime: Runtime, versions: dict[str, Known], tmp_path: Path) -> None:
    dest = tmp_path / "canary"
    local = LocalClient(runtime)
    local.set_alias(REPO, "canary-b", 2)
    with following(local, dest, ref="canary-b", prune=True, poll_wait_s=0.5) as run:
        assert synced_number(dest, REPO) == 2
        local.set_alias(REPO, "canary-b", 3)
        wait_for(lambda: synced_number(dest, REPO) == 3, timeout=1.0, what="alias moved")
        local.promote(f"{REPO}:2", to="production")  # another label: nothing moves here
        local.delete_alias(REPO, "canary-b")
        wait_for(lambda: not os.path.lexists(dest / REPO), timeout=1.0, what="alias deleted")
    changes = [line.split(" (")[0] for line in run.lines if line.startswith(REPO)]
    assert changes == [f"{REPO}: added v2", f"{REPO}: v2 -> v3", f"{REPO}: removed v3"]


class StaleOnce(LocalSource):
    """A registry whose resolve answers the previous answer once, as a server's resolve
    cache can for a moment after the feed shows a change."""

    def __init__(self, client: LocalClient) -> None:
        super().__init__(client)
        self.armed = False
        self.previous_answer: Any = None

    def resolve(self, repo: Repo, *, ref: str, base: str | None) -> Any:
        fresh = super().resolve(repo, ref=ref, base=base)
        answer = fresh
        if self.armed and answer != self.previous_answer:
            answer, self.armed = self.previous_answer, False
        self.previous_answer = fresh
        return answer


def test_a_stale_resolve_is_corrected(
    runtime: Runtime, versions: dict[str, Known], tmp_path: Path
) -> None:
    local = LocalClient(runtime)
    source = StaleOnce(local)
    dest = tmp_path / "node"
    lines: list[str] = []
    follower = Follower(
        NodeLayout(dest), source, SyncOptions(base=BASE), log=lines.append, poll_wait_s=5
    )
    thread = threading.Thread(target=follower.run, kwargs={"follow": True})
    thread.start()
    try:
        wait_for(lambda: synced_number(dest, REPO) == 1, timeout=10, what="first sync")
        time.sleep(0.7)  # past the start-up second look
        source.armed = True
        local.promote(f"{REPO}:2", to="production")
        wait_for(lambda: not source.armed, timeout=1.0, what="the stale answer")
        assert synced_number(dest, REPO) == 1
        # The second look, half a second later, gets it right.
        wait_for(lambda: synced_number(dest, REPO) == 2, timeout=1.0, what="v2")
    finally:
        follower.stop.set()
        thread.join(timeout=10)


def test_follow_reads_the_stream_and_resumes_each_time_it_ends(
    server: RestartableServer,
    remote: Callable[[], RemoteClient],
    runtime: Runtime,
    versions: dict[str, Known],
    tmp_path: Path,
) -> None:
    """Over HTTP the feed is a stream of Server-Sent Events; the server ends streams after
    their lifetime (here 1.2 s) and sync resumes from its cursor, missing nothing."""
    server.server.config.app.state.feed.stream_max_s = 1.2
    dest = tmp_path / "node"
    admin = LocalClient(runtime)
    with following(remote(), dest, poll_wait_s=10.0) as run:
        source = run.follower.source
        for number in (2, 3, 1):
            admin.promote(f"{REPO}:{number}", to="production")

            def landed(n: int = number) -> bool:
                return synced_number(dest, REPO) == n

            wait_for(landed, timeout=1.0, what=f"v{number}")
            assert source.streaming is True  # type: ignore[attr-defined]
            time.sleep(1.3)  # the stream in use ends meanwhile
        assert not any("sync paused" in x for x in run.lines), run.lines  # a normal end
    assert load_state(NodeLayout(dest)).last_event_id == max(e.id for e in admin.events(0))  # type: ignore[union-attr]


def test_follow_long_polls_a_server_without_streams(
    runtime: Runtime, versions: dict[str, Known], tmp_path: Path
) -> None:
    """A server from before streams answers the stream request with the plain list: sync
    notes it and long-polls from then on."""
    from registry.server import create_app
    from tests.fixtures.catalog import LiveServer

    app = create_app(runtime, background=False)

    async def without_streams(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k != b"accept"]
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    dest = tmp_path / "node"
    admin = LocalClient(runtime)
    with (
        LiveServer(without_streams) as srv,
        closing(RemoteClient(srv.url)) as client,
        following(client, dest) as run,
    ):
        admin.promote(f"{REPO}:2", to="production")
        wait_for(lambda: synced_number(dest, REPO) == 2, timeout=2.0, what="v2")
        source: Any = run.follower.source
        wait_for(lambda: source.streaming is False, timeout=15, what="the switch to polls")
        admin.promote(f"{REPO}:3", to="production")
        wait_for(lambda: synced_number(dest, REPO) == 3, timeout=2.0, what="v3")

"""Sync materialises running A/B experiments: a link per variant next to the stage link,
and the definition in the manifest, so a router assigns and loads with no network call.

Assignment from the manifest is computed here from the README's rule (sha256 of
``salt:subject``, first 8 bytes big-endian mod 10000, the range holding the bucket), not
with lorareg's own code, and compared with the server's ``assign``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.access import create_token
from registry.client.local import LocalClient
from registry.client.remote import RemoteClient
from registry.runtime import Runtime
from registry.sync import Follower, NodeLayout, SyncOptions, source_for
from tests.sync.conftest import (
    BASE,
    LOCAL_STORE,
    RestartableServer,
    following,
    synced_number,
    wait_for,
)

REPO = "acme/voice"


def sync_once(client: Any, dest: Path, **options: Any) -> list[str]:
    lines: list[str] = []
    options.setdefault("base", BASE)
    Follower(NodeLayout(dest), source_for(client), SyncOptions(**options), log=lines.append).run(
        follow=False
    )
    return lines


def manifest(dest: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((dest / ".lorareg" / "manifest.json").read_text())
    return doc


def offline_variant(experiment: dict[str, Any], subject: str) -> str:
    """What a router in any language does with the manifest (the README's rule)."""
    digest = hashlib.sha256(f"{experiment['salt']}:{subject}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % experiment["buckets"]
    return next(v for start, end, v in experiment["ranges"] if start <= bucket < end)


def check_assignments(dest: Path, oracle: LocalClient, name: str, subjects: int) -> set[str]:
    """Every subject gets the server's variant, and that variant's folder is its version."""
    exp = manifest(dest)["experiments"][f"{REPO}@{name}"]
    seen = set()
    for i in range(subjects):
        subject = f"client-{i}"
        variant = offline_variant(exp, subject)
        expected = oracle.assign(REPO, name, subject)
        assert variant == expected.variant, subject
        entry = exp["variants"][variant]
        assert entry["version"] == expected.version
        with open(os.path.join(entry["path"], ".lorareg.json")) as fh:
            assert json.load(fh)["version"] == expected.version  # loadable with no call
        seen.add(variant)
    return seen


@pytest.fixture
def voice(client: Any, runtime: Runtime, adapter_library: dict[str, Path]) -> Any:
    """acme/voice v1 (production), v2, v3 on tiny-llama; experiment tone-test 80/10/10."""
    for key in ("v1", "v2", "r8"):
        client.push(adapter_library[key], REPO, base=BASE)
    client.promote(f"{REPO}:1", to="production")
    client.experiment_create(
        REPO,
        "tone-test",
        variants=[("control", "@production"), ("warm", "2"), ("formal", "3")],
        split="80,10,10",
        metric="conversion",
    )
    return client


@LOCAL_STORE
def test_variants_appear_assign_offline_follow_ramps_and_go_at_conclusion(
    voice: Any, runtime: Runtime, tmp_path: Path
) -> None:
    c, dest, oracle = voice, tmp_path / "node", LocalClient(runtime)
    lines = sync_once(c, dest)
    assert any(line.startswith(f"{REPO}@tone-test: ") for line in lines), lines
    exp_dir = dest / "acme" / "voice@tone-test"
    assert sorted(p.name for p in exp_dir.iterdir()) == ["control", "formal", "warm"]
    assert {
        v: synced_number(dest, f"acme/voice@tone-test/{v}") for v in ("control", "warm", "formal")
    } == {
        "control": 1,
        "warm": 2,
        "formal": 3,
    }
    # The control is the stage's own folder: one copy on disk, not two.
    assert os.path.realpath(exp_dir / "control") == os.path.realpath(dest / "acme" / "voice")
    cfg = json.loads((exp_dir / "warm" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == BASE  # exported like a stage folder
    exp = manifest(dest)["experiments"][f"{REPO}@tone-test"]
    assert exp["ranges"] == [[0, 8000, "control"], [8000, 9000, "warm"], [9000, 10000, "formal"]]
    assert exp["variants"]["control"]["control"] is True
    assert exp["variants"]["warm"]["link"] == str(
        dest.resolve() / "acme" / "voice@tone-test" / "warm"
    )
    assert check_assignments(dest, oracle, "tone-test", 400) == {"control", "warm", "formal"}
    # Unchanged: a second pass changes and logs nothing (and downloads nothing).
    assert [line for line in sync_once(c, dest) if not line.startswith("synced ")] == []

    c.experiment_ramp(REPO, "tone-test", split="50,25,25")
    lines = sync_once(c, dest)
    assert any("tone-test: split changed" in line for line in lines), lines
    assert manifest(dest)["experiments"][f"{REPO}@tone-test"]["period"] == 1
    check_assignments(dest, oracle, "tone-test", 400)

    c.experiment_conclude(REPO, "tone-test", winner="warm", reason="lift")
    lines = sync_once(c, dest)
    assert any("tone-test: experiment over" in line for line in lines), lines
    assert not exp_dir.exists()
    assert manifest(dest)["experiments"] == {}
    assert synced_number(dest, REPO) == 2  # the winner is production now
    # The loser's folder is retired like a replaced version (kept for readers' grace).
    state = json.loads((dest / ".lorareg" / "state.json").read_text())
    assert any(r["folder"].endswith(f"/v3-{marker_content(runtime, 3)}") for r in state["retired"])


def marker_content(runtime: Runtime, number: int) -> str:
    return str(LocalClient(runtime).show(f"{REPO}:{number}").content_id)[:12]


@LOCAL_STORE
def test_namespace_and_base_filters_and_a_scoped_token(
    runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    local = LocalClient(runtime)
    for repo in (REPO, "other/secret"):
        for key in ("v1", "v2"):
            local.push(adapter_library[key], repo, base=BASE)
        local.experiment_create(
            repo, "ab", variants=[("control", "1"), ("b", "2")], split="50,50", metric="ctr"
        )
    local.push(adapter_library["v1"], "acme/elsewhere", base="other-base")
    local.push(adapter_library["v2"], "acme/elsewhere", base="other-base")
    local.experiment_create(
        "acme/elsewhere", "ab", variants=[("control", "1"), ("b", "2")], split="50,50", metric="m"
    )
    srv = RestartableServer(runtime, require_auth=True).start()
    try:
        secret, _ = create_token(
            runtime.db, name="node", role="reader", actor="test", namespaces=["acme"]
        )
        node = RemoteClient(srv.url, token=secret)
        try:
            listed = node.running_experiments(base=BASE)
            assert [(e.namespace, e.adapter) for e in listed] == [("acme", "voice")]
            # Asking for the other namespace by name shows nothing either.
            assert node.running_experiments(namespace="other") == []
            dest = tmp_path / "node"
            sync_once(node, dest)
            assert list(manifest(dest)["experiments"]) == [f"{REPO}@ab"]
            assert (dest / "acme" / "voice@ab" / "b").is_dir()
            assert not (dest / "other").exists() and not (dest / "acme" / "elsewhere@ab").exists()
            # Paging: one experiment per page still lists them all, in id order.
            with httpx.Client(base_url=srv.url, timeout=30) as http:
                admin, _ = create_token(runtime.db, name="a", role="admin", actor="test")
                auth = {"Authorization": f"Bearer {admin}"}
                first = http.get("/api/v1/experiments", params={"limit": 1}, headers=auth).json()
                rest = http.get(
                    "/api/v1/experiments", params={"after": first[0]["id"]}, headers=auth
                ).json()
                assert len(first) == 1 and len(rest) == 2
                bad = http.get("/api/v1/experiments", params={"limit": 0}, headers=auth)
                assert bad.status_code == 422 and "error" in bad.json()
        finally:
            node.close()
    finally:
        srv.stop()


@LOCAL_STORE
def test_follow_reacts_to_experiment_events(
    runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    local = LocalClient(runtime)
    for key in ("v1", "v2"):
        local.push(adapter_library[key], REPO, base=BASE)
    local.promote(f"{REPO}:1", to="production")
    srv = RestartableServer(runtime).start()
    node = RemoteClient(srv.url)
    dest = tmp_path / "node"
    try:
        with following(node, dest) as run:
            local.experiment_create(
                REPO, "ab", variants=[("control", "1"), ("b", "2")], split="50,50", metric="m"
            )
            # The manifest names the experiment only once its links are in place.
            wait_for(
                lambda: f"{REPO}@ab" in manifest(dest)["experiments"],
                timeout=20,
                what="the experiment in the manifest",
            )
            assert synced_number(dest, "acme/voice@ab/b") == 2
            local.experiment_ramp(REPO, "ab", split="90,10")
            wait_for(
                lambda: manifest(dest)["experiments"][f"{REPO}@ab"]["period"] == 1,
                timeout=20,
                what="the ramp",
            )
            local.experiment_conclude(REPO, "ab", winner="b")
            wait_for(lambda: not (dest / "acme" / "voice@ab").exists(), timeout=20, what="removal")
            assert manifest(dest)["experiments"] == {}  # the manifest went first
            wait_for(lambda: synced_number(dest, REPO) == 2, timeout=20, what="the winner")
        assert any("ab: experiment over" in line for line in run.lines), run.lines
    finally:
        node.close()
        srv.stop()

"""A repeated one-shot sync is incremental: after a complete pass the node keeps the feed
cursor, and the next pass re-resolves only the adapters the events since name (plus what
the state says is unfinished). The result must equal a full pass: two nodes with the same
history, one passing incrementally and one forced to re-resolve everything, end with the
same folders, links, markers and manifests. Both databases, both clients."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from registry.sync import follow
from registry.sync.source import ClientSource
from tests.sync.conftest import BASE, LOCAL_STORE
from tests.sync.test_once import sync_once

pytestmark = LOCAL_STORE
TIMES = {"updated_at", "last_used", "synced_at", "since", "caught_up_at", "last_event_at"}


def summary(lines: list[str]) -> str:
    return next(line for line in lines if line.startswith("synced "))


def force_full_pass(dest: Path) -> None:
    """Make the next pass re-resolve everything (as if its options had changed)."""
    path = dest / ".lorareg" / "state.json"
    state = json.loads(path.read_text())
    state["pass_options"] = None
    path.write_text(json.dumps(state))


def tree(dest: Path) -> dict[str, Any]:
    """Every file (its bytes) and link (its target) under ``dest`` but the state files."""
    out: dict[str, Any] = {}
    skip = {"state.json", "manifest.json", "lock"}
    for dirpath, dirnames, filenames in os.walk(dest):
        here = Path(dirpath)
        for name in [*dirnames, *filenames]:
            p = here / name
            rel = p.relative_to(dest).as_posix()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_file() and not (here.name == ".lorareg" and name in skip):
                out[rel] = p.read_bytes()
    return out


def timeless(doc: Any, root: Path) -> Any:
    """``doc`` without timestamps, with the node's own folder written ROOT."""
    if isinstance(doc, dict):
        return {k: timeless(v, root) for k, v in doc.items() if k not in TIMES}
    if isinstance(doc, list):
        return sorted((timeless(v, root) for v in doc), key=json.dumps)
    if isinstance(doc, str):
        return doc.replace(str(root.resolve()), "ROOT")
    return doc


def meta(dest: Path, name: str) -> Any:
    return timeless(json.loads((dest / ".lorareg" / name).read_text()), dest)


def same(a: Path, b: Path) -> None:
    assert tree(a) == tree(b)
    assert meta(a, "manifest.json") == meta(b, "manifest.json")
    assert meta(a, "state.json") == meta(b, "state.json")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The adapters sync resolves, in order."""
    calls: list[str] = []
    resolve = ClientSource.resolve

    def counting(self: ClientSource, repo: Any, *, ref: str, base: str | None) -> Any:
        calls.append(str(repo))
        return resolve(self, repo, ref=ref, base=base)

    monkeypatch.setattr(ClientSource, "resolve", counting)
    return calls


def test_incremental_pass_equals_a_full_pass(
    client: Any, adapter_library: dict[str, Path], tmp_path: Path, counted: list[str]
) -> None:
    c = client
    for i in range(4):
        c.push(adapter_library["v1"], f"acme/a{i}", base=BASE)
        c.push(adapter_library["v2"], f"acme/a{i}", base=BASE)
        c.promote(f"acme/a{i}:1", to="production")
        c.set_alias(f"acme/a{i}", "canary", 1)
    c.push(adapter_library["r8"], "acme/gone", base=BASE)
    c.promote("acme/gone:1", to="production")
    c.set_alias("acme/gone", "canary", 1)
    c.push(adapter_library["v1"], "beta/other", base=BASE)
    c.promote("beta/other:1", to="production")
    nodes = {
        ref: (tmp_path / f"{ref}-inc", tmp_path / f"{ref}-full") for ref in ("production", "canary")
    }
    for ref, (inc, full) in nodes.items():
        for dest in (inc, full):
            assert "no event cursor yet" in summary(sync_once(c, dest, ref=ref, namespace="acme"))

    # A promotion, a new adapter, an erased adapter, an alias move; another tenant's change.
    c.promote("acme/a0:2", to="production")
    c.push(adapter_library["r8"], "acme/new", base=BASE)
    c.promote("acme/new:1", to="production")
    c.set_alias("acme/new", "canary", 1)
    c.delete("acme/gone", reason="client offboarded", force=True)
    c.set_alias("acme/a1", "canary", 2)
    c.promote("beta/other:1", to="staging")

    for ref, (inc, full) in nodes.items():
        state = json.loads((inc / ".lorareg" / "state.json").read_text())
        counted.clear()
        lines = sync_once(c, inc, ref=ref, namespace="acme")
        assert "re-resolved" in summary(lines) and "all re-resolved" not in summary(lines)
        # What the feed named (not beta: another namespace), and the adapters the newest
        # events of the last pass named (the server's resolve cache may have trailed them).
        named = {"acme/a0", "acme/a1", "acme/new", "acme/gone"}
        assert set(counted) == named | set(state["pending"]), counted
        force_full_pass(full)
        assert "options changed" in summary(sync_once(c, full, ref=ref, namespace="acme"))
        same(inc, full)
        assert not os.path.lexists(inc / "acme" / "gone")
        assert os.path.islink(inc / "acme" / "new")
    moved = json.loads((nodes["canary"][0] / "acme" / "a1" / ".lorareg.json").read_text())
    assert moved["version"] == 2
    promoted = json.loads((nodes["production"][0] / "acme" / "a0" / ".lorareg.json").read_text())
    assert promoted["version"] == 2

    # Nothing happened since: the next pass asks for nothing but the last pass's newest.
    inc = nodes["production"][0]
    sync_once(c, inc, ref="production", namespace="acme")
    counted.clear()
    lines = sync_once(c, inc, ref="production", namespace="acme")
    assert [line for line in lines if not line.startswith("synced ")] == []
    assert counted == [] and "0 named by 0 event(s)" in summary(lines)


def test_full_pass_when_the_feed_cannot_tell(
    client: Any,
    adapter_library: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    counted: list[str],
) -> None:
    c, dest = client, tmp_path / "node"
    for i in range(3):
        c.push(adapter_library["v1"], f"acme/a{i}", base=BASE)
        c.promote(f"acme/a{i}:1", to="production")
    sync_once(c, dest)

    # Other options than the last pass (a disk budget).
    why = summary(sync_once(c, dest, max_bytes=10**9))
    assert "all re-resolved: options changed" in why
    assert "all re-resolved" not in summary(sync_once(c, dest, max_bytes=10**9))
    assert "all re-resolved: options changed" in summary(sync_once(c, dest))

    # The folder changed behind sync's back: a link removed.
    (dest / "acme" / "a1").unlink()
    assert "does not match its state" in summary(sync_once(c, dest))
    assert os.path.islink(dest / "acme" / "a1")

    # More events since the last pass than the bound.
    monkeypatch.setattr(follow, "MIN_EVENTS", 0)
    for _ in range(2):
        for i in range(3):
            c.set_alias(f"acme/a{i}", "canary", 1)
    assert "all re-resolved: more than 3 events" in summary(sync_once(c, dest))

    # A feed that no longer holds the node's cursor (restored or replaced).
    path = dest / ".lorareg" / "state.json"
    state = json.loads(path.read_text())
    state["last_event_id"] += 1000
    path.write_text(json.dumps(state))
    lines = sync_once(c, dest)
    assert "all re-resolved: the feed no longer has event" in summary(lines)
    assert json.loads(path.read_text())["last_event_id"] == state["last_event_id"] - 1000


def test_failed_adapter_is_retried_by_the_next_pass(
    client: Any,
    adapter_library: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from registry.sync import node as node_module

    c, dest = client, tmp_path / "node"
    for i in range(2):
        c.push(adapter_library["v1"], f"acme/a{i}", base=BASE)
        c.promote(f"acme/a{i}:1", to="production")
    sync_once(c, dest)
    c.push(adapter_library["v2"], "acme/a0", base=BASE)
    c.promote("acme/a0:2", to="production")

    from registry.errors import ChecksumMismatch

    build = node_module.build_version

    def broken(layout: Any, blobs: Any, source: Any, target: Any, **kw: Any) -> Any:
        raise ChecksumMismatch("damaged blob")

    monkeypatch.setattr(node_module, "build_version", broken)
    assert "1 failed" in summary(sync_once(c, dest))
    # A second pass with no event since: a0 is retried because the state says it failed.
    assert "1 failed" in summary(sync_once(c, dest))
    state = json.loads((dest / ".lorareg" / "state.json").read_text())
    assert state["pending"] == ["acme/a0"]
    monkeypatch.setattr(node_module, "build_version", build)
    # No event since, yet a0 is brought in line: the state said it was unfinished.
    lines = sync_once(c, dest)
    assert "all re-resolved" not in summary(lines)
    assert any("acme/a0: v1 -> v2" in line for line in lines), lines

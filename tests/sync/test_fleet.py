"""Many per-client adapters on one node: the disk budget (LRU among adapters not pinned,
uses recorded under ``.lorareg/used/``), the manifest engines and routers read, and
first and incremental syncs through the parallel path over HTTP. Both databases."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from registry.client.local import LocalClient
from registry.sync import Follower, NodeLayout, SyncOptions, source_for
from tests.sync.conftest import BASE, LOCAL_STORE

WEIGHTS = "adapter_model.safetensors"


def client_adapters(template: Path, root: Path, n: int, *, shift: float = 0.0) -> list[Path]:
    """``n`` PEFT adapters shaped like ``template``, each with its own weights."""
    tensors = load_file(str(template / WEIGHTS))
    out = []
    for i in range(n):
        folder = root / f"c{i}-{shift}"
        folder.mkdir(parents=True)
        for name in ("adapter_config.json", "README.md"):
            if (template / name).exists():
                (folder / name).write_bytes((template / name).read_bytes())
        changed = {k: (v + (i + 1) * 1e-3 + shift).contiguous() for k, v in tensors.items()}
        save_file(changed, str(folder / WEIGHTS))
        out.append(folder)
    return out


def sync(client: Any, dest: Path, **options: Any) -> list[str]:
    lines: list[str] = []
    opts = SyncOptions(base=BASE, **options)
    Follower(NodeLayout(dest), source_for(client), opts, log=lines.append).run(follow=False)
    return lines


def blob_bytes(dest: Path) -> int:
    root = dest / ".lorareg" / "blobs"
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def manifest(dest: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((dest / ".lorareg" / "manifest.json").read_text())
    return doc


def present(dest: Path) -> set[str]:
    return {k for k, a in manifest(dest)["adapters"].items() if a["present"]}


def used(dest: Path, repo: str, when: float) -> None:
    """What a router does when it serves ``repo``: touch its use mark."""
    mark = dest / ".lorareg" / "used" / repo
    mark.parent.mkdir(parents=True, exist_ok=True)
    mark.touch()
    os.utime(mark, (when, when))


@LOCAL_STORE
def test_budget_keeps_pinned_and_recently_used(
    runtime: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    c = LocalClient(runtime)
    folders = client_adapters(adapter_library["v1"], tmp_path / "src", 6)
    for i, folder in enumerate(folders):
        c.push(folder, f"acme/c{i}", base=BASE)
        c.promote(f"acme/c{i}:1", to="production")
    weights = (folders[0] / WEIGHTS).stat().st_size
    # What three adapters take on disk (shared config and README included), plus half of one.
    probe = tmp_path / "probe"
    sync(c, probe)
    budget = blob_bytes(probe) - 3 * weights + weights // 2

    dest = tmp_path / "node"
    lines = sync(c, dest, max_bytes=budget)
    assert present(dest) == {"acme/c0", "acme/c1", "acme/c2"}, lines
    assert blob_bytes(dest) <= budget
    doc = manifest(dest)
    assert doc["max_bytes"] == budget and doc["disk_bytes"] == blob_bytes(dest)
    assert set(doc["adapters"]) == {f"acme/c{i}" for i in range(6)}
    for key, entry in doc["adapters"].items():
        version = c.show(f"{key}:1")
        assert entry["version"] == 1 and entry["content_id"] == version.content_id
        if not entry["present"]:
            assert entry["path"] is None and "budget" in entry["left_out"]
            assert not (dest / key).exists()
            continue
        # The path is the version folder, named by content: an engine loads this one.
        path = Path(entry["path"])
        assert path.name == f"v1-{version.content_id[:12]}" and path.is_dir()
        assert os.path.realpath(entry["link"]) == str(path)
        assert (path / WEIGHTS).read_bytes() == (folders[int(key[-1])] / WEIGHTS).read_bytes()
    assert any("acme/c3: v1 not on disk" in line for line in lines), lines

    # A pin wins a place: the least recently used unpinned adapter makes room.
    sync(c, dest, max_bytes=budget, pins=("acme/c5",))
    assert present(dest) == {"acme/c1", "acme/c2", "acme/c5"}
    assert blob_bytes(dest) <= budget
    assert not (dest / "acme" / "c0").exists()

    # Uses recorded by a router: c3 (left out) is wanted back; c1 was used more recently
    # than c2, so c2 is the one evicted.
    now = time.time()  # later than every earlier pass
    used(dest, "acme/c1", now)
    used(dest, "acme/c3", now)
    lines = sync(c, dest, max_bytes=budget, pins=("acme/c5",))
    assert present(dest) == {"acme/c1", "acme/c3", "acme/c5"}, lines
    assert any(line.startswith("acme/c2: evicted v1 (evicted for acme/c3") for line in lines)
    assert blob_bytes(dest) <= budget
    last = manifest(dest)["adapters"]["acme/c3"]["last_used"]
    assert last.startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now)))
    # Without a budget everything comes back.
    sync(c, dest)
    assert present(dest) == {f"acme/c{i}" for i in range(6)}


@LOCAL_STORE
@pytest.mark.parametrize("client_kind", ["remote"], indirect=True)
def test_first_and_incremental_sync_over_http(
    client: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    n = 20
    folders = client_adapters(adapter_library["v1"], tmp_path / "src", n)
    for i, folder in enumerate(folders):
        client.push(folder, f"acme/c{i:02d}", base=BASE)
        client.promote(f"acme/c{i:02d}:1", to="production")
    client.push(folders[0], "beta/other", base=BASE)
    client.promote("beta/other:1", to="production")
    dest = tmp_path / "node"
    lines = sync(client, dest, namespace="acme")
    doc = manifest(dest)
    assert set(doc["adapters"]) == {f"acme/c{i:02d}" for i in range(n)}
    assert sum(line.startswith("acme/c") and " added v1 " in line for line in lines) == n
    for i in range(n):
        weights = dest / "acme" / f"c{i:02d}" / WEIGHTS
        assert weights.read_bytes() == (folders[i] / WEIGHTS).read_bytes()
    before = {k: a["path"] for k, a in doc["adapters"].items()}

    # Four clients get a new version: only they change, each under a new path.
    news = client_adapters(adapter_library["v1"], tmp_path / "new", 4, shift=0.5)
    for i, folder in enumerate(news):
        client.push(folder, f"acme/c{i:02d}", base=BASE)
        client.promote(f"acme/c{i:02d}:2", to="production")
    lines = sync(client, dest, namespace="acme")
    changes = [line for line in lines if " -> v2 " in line]
    assert len(changes) == 4 and all("fetched" in line for line in changes), lines
    after = {k: a["path"] for k, a in manifest(dest)["adapters"].items()}
    moved = {k for k in after if after[k] != before[k]}
    assert moved == {f"acme/c{i:02d}" for i in range(4)}
    for i in range(4):
        loaded = load_file(str(Path(after[f"acme/c{i:02d}"]) / WEIGHTS))
        expected = load_file(str(news[i] / WEIGHTS))
        assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def _env(settings: Any) -> dict[str, str]:
    return {
        "LORAREG_HOME": str(settings.home),
        "LORAREG_DATABASE_URL": settings.effective_database_url,
        "LORAREG_STORAGE_URL": settings.effective_storage_url,
        "LORAREG_AUTHOR": "cli-user",
    }


@LOCAL_STORE
def test_cli_budget_pins_and_refusals(
    settings: Any, runtime: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from cli.main import cli

    c = LocalClient(runtime)
    for i, folder in enumerate(client_adapters(adapter_library["v1"], tmp_path / "src", 3)):
        c.push(folder, f"acme/c{i}", base=BASE)
        c.promote(f"acme/c{i}:1", to="production")
    env: dict[str, str | None] = {**_env(settings), "LORAREG_URL": None}

    def lorareg(*args: str) -> Any:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    dest = str(tmp_path / "node")
    common = ("sync", "--to", dest, "--base", BASE, "--namespace", "acme", "--all")
    r = lorareg(*common, "--max-bytes", "1K", "--pin", "acme/c1")
    assert r.exit_code == 0, r.output
    doc = manifest(Path(dest))
    # A pin does not override the budget: an adapter that alone passes it is left out.
    assert present(Path(dest)) == set() and doc["max_bytes"] == 1000
    assert doc["adapters"]["acme/c1"]["pinned"] is True
    assert "acme/c1: v1 not on disk: needs" in r.stderr
    r = lorareg("sync", "--status", dest, "--json")
    assert json.loads(r.stdout)["left_out"] == ["acme/c0", "acme/c1", "acme/c2"]
    r = lorareg(*common, "--max-bytes", "10M", "--pin", "acme/*")
    assert r.exit_code == 0, r.output
    assert present(Path(dest)) == {"acme/c0", "acme/c1", "acme/c2"}
    for bad, message in (
        (("--max-bytes", "lots"), "is not a size"),
        (("--pin", "acme"), "give an adapter as namespace/name or namespace/*"),
        (("--pin", "Acme/x"), "give an adapter as namespace/name"),
    ):
        r = lorareg(*common, *bad)
        assert r.exit_code == 1 and message in r.stderr, r.output

"""Concurrent pushes to one adapter get distinct numbers, and none fails spuriously."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from registry.client.local import LocalClient
from registry.runtime import Runtime


def test_parallel_pushes_get_distinct_numbers(
    runtime: Runtime, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    folders = []
    for i in range(8):
        d = tmp_path / f"a{i}"
        shutil.copytree(adapter_library["v1"], d)
        (d / "README.md").write_text(f"variant {i}\n")  # distinct content, shared weights
        folders.append(d)
    results: list[int] = []
    failures: list[BaseException] = []
    barrier = threading.Barrier(len(folders))

    def push(folder: Path) -> None:
        client = LocalClient(runtime)
        barrier.wait()
        try:
            results.append(client.push(folder, "acme/busy").version.number)
        except BaseException as exc:  # collected, asserted below
            failures.append(exc)

    threads = [threading.Thread(target=push, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert sorted(results) == list(range(1, 9))
    versions = LocalClient(runtime).versions("acme/busy")
    assert sorted(v.number for v in versions) == list(range(1, 9))
    # Every parent is an earlier version: lineage follows commit order.
    assert all(v.parent is None or v.parent < v.number for v in versions)

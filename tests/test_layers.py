"""Data flows one way: the import contracts of pyproject.toml hold, and no two packages of
``registry`` import each other (new packages included, before anyone lists them)."""

from __future__ import annotations

import itertools
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True) == 0


def package_cycles(graph: grimp.ImportGraph, packages: list[str]) -> list[str]:
    """Each pair of packages that import each other, directly or through others."""
    cycles = []
    for a, b in itertools.combinations(packages, 2):
        there = graph.find_shortest_chain(importer=a, imported=b, as_packages=True)
        back = graph.find_shortest_chain(importer=b, imported=a, as_packages=True)
        if there and back:
            cycles.append(f"{' -> '.join(there)} and {' -> '.join(back)}")
    return cycles


def test_no_two_packages_import_each_other() -> None:
    graph = grimp.build_graph("registry", "cli", cache_dir=None)
    packages = sorted(
        f"registry.{p.name}" for p in (ROOT / "registry").iterdir() if (p / "__init__.py").exists()
    )
    assert len(packages) > 5
    assert package_cycles(graph, packages) == []


def test_the_check_sees_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: two packages that import each other through a third are reported."""
    imports = {"low": "middle", "middle": "high", "high": "low"}
    for name, other in imports.items():
        (tmp_path / "demo" / name).mkdir(parents=True)
        (tmp_path / "demo" / name / "__init__.py").write_text(f"import demo.{other}\n")
    (tmp_path / "demo" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("demo", cache_dir=None)
    found = package_cycles(graph, ["demo.high", "demo.low"])
    assert found == ["demo.high -> demo.low and demo.low -> demo.middle -> demo.high"]

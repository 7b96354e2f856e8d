"""The before/after table of issue 15's "Done when", for the tree this script runs in.

    python scripts/layer_stats.py [--seconds N]

Prints, as a Markdown table: lines of Python per edge module group (the routers, the
clients, the dashboard, the CLI), duplicated blocks (pairs of places from `duplicates`
over registry/ and cli/ together), the number of `Any` in registry/, and the routes of
the OpenAPI document whose success response has a schema with named properties.
Run it from the repository root with that tree's code first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EDGES = ("registry/api/routers", "registry/client", "registry/web", "cli")


def tree_files(*folders: str) -> list[Path]:
    """The files git tracks below ``folders`` plus the untracked ones it does not ignore."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *folders],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [ROOT / line for line in out.splitlines() if (ROOT / line).is_file()]


def python_lines(folder: str) -> int:
    return sum(
        len(p.read_text(encoding="utf-8").splitlines())
        for p in tree_files(folder)
        if p.suffix == ".py"
    )


def duplicate_pairs(seconds: int) -> int:
    """Pairs from `duplicates` over registry/ and cli/ as one tree (pairs across them count)."""
    with tempfile.TemporaryDirectory(prefix="layer-stats-") as tmp:
        for p in tree_files("registry", "cli"):
            dest = Path(tmp) / p.relative_to(ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest)
        lines = subprocess.run(
            ["duplicates", "--repo", tmp, "--seconds", str(seconds)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
    first = lines[0]
    if any(line.startswith("incomplete:") for line in lines):
        raise SystemExit("duplicates ran out of time; pass a larger --seconds")
    if first.startswith("no duplicates"):
        return 0
    match = re.match(r"(\d+) pairs? of places", first)
    if match is None:
        raise SystemExit(f"cannot read duplicates' answer: {first!r}")
    return int(match.group(1))


def any_count() -> int:
    word = re.compile(r"\bAny\b")
    return sum(
        len(word.findall(p.read_text(encoding="utf-8")))
        for p in tree_files("registry")
        if p.suffix == ".py"
    )


def _named(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> bool:
    """Whether ``schema`` (through $ref, arrays and unions) has named properties."""
    if depth > 8:
        return False
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _named(components.get(name, {}), components, depth + 1)
    if schema.get("properties"):
        return True
    if "items" in schema:
        return _named(schema["items"], components, depth + 1)
    return any(
        _named(s, components, depth + 1) for s in schema.get("anyOf", []) + schema.get("oneOf", [])
    )


def routes_with_models() -> tuple[int, int]:
    """(routes whose 2xx answer has a schema with named properties, all routes)."""
    from registry.config import load_settings
    from registry.runtime import open_runtime
    from registry.server import create_app

    with tempfile.TemporaryDirectory(prefix="layer-stats-home-") as home:
        rt = open_runtime(load_settings(home=Path(home)), migrate=True)
        try:
            doc = create_app(rt, background=False).openapi()
        finally:
            rt.close()
    components = doc.get("components", {}).get("schemas", {})
    typed = total = 0
    for item in doc["paths"].values():
        for method, op in item.items():
            if method not in ("get", "put", "post", "patch", "delete", "head"):
                continue
            total += 1
            schemas = [
                media.get("schema", {})
                for status, resp in op.get("responses", {}).items()
                if status.startswith("2")
                for media in resp.get("content", {}).values()
            ]
            typed += any(_named(s, components) for s in schemas)
    return typed, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120, help="time allowed to duplicates")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    rev = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    typed, total = routes_with_models()
    rows = [(f"lines in {edge}/ (.py)", str(python_lines(edge))) for edge in EDGES]
    rows += [
        (
            "duplicated blocks (pairs, registry/ + cli/)",
            str(duplicate_pairs(args.seconds)),
        ),
        ("`Any` in registry/", str(any_count())),
        ("routes with a response model", f"{typed} of {total}"),
    ]
    print(f"| measure ({rev}) | value |")
    print("| --- | ---: |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()

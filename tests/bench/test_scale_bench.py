"""The scale benchmark runs from a fresh clone with the README's setup: nothing from
``tests/`` and no pytest (the dev extra is not part of that setup)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Any import of pytest or of the test package fails in the child, as on a clone without them.
NO_TEST_TOOLS = """
import runpy, sys
for name in ("pytest", "_pytest", "tests"):
    sys.modules[name] = None
sys.argv = ["bench_scale.py", "--help"]
runpy.run_path("bench/scale/bench_scale.py", run_name="__main__")
"""


def test_scale_benchmark_needs_neither_pytest_nor_the_tests() -> None:
    r = subprocess.run(
        [sys.executable, "-c", NO_TEST_TOOLS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--sizes" in r.stdout and "--requests" in r.stdout

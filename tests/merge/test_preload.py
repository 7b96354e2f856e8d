"""The CLI starts torch's import first thing in embedded mode (registry.merge.preload): the
module it imports for that must itself be light, and asking twice imports once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_preload_is_light_and_imports_torch_once() -> None:
    code = (
        "import sys, threading\n"
        "from registry.merge.preload import import_torch_in_background\n"
        "heavy = {'torch', 'sqlalchemy', 'pydantic', 'numpy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "import_torch_in_background(); import_torch_in_background()\n"
        "mine = [t for t in threading.enumerate() if t.name == 'import-torch']\n"
        "assert len(mine) == 1, mine\n"
        "mine[0].join()\n"
        "assert 'torch' in sys.modules\n"
        "import_torch_in_background()\n"
        "assert not [t for t in threading.enumerate() if t.name == 'import-torch']\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

"""The README's first command installs lorareg without PyTorch: the server, the clients and
the CLI must import and serve without it (only merges need it). A fresh clone's
`lorareg serve` once crashed on an import the listings pulled in."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = """
import sys

class NoTorch:  # an import of torch fails, as where it is not installed
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        return None

sys.meta_path.insert(0, NoTorch())
from registry.config import load_settings
from registry.runtime import open_runtime
from registry.server import create_app
import registry.client.local, registry.client.remote, cli.main
from fastapi.testclient import TestClient
rt = open_runtime(load_settings(home=sys.argv[1]), migrate=True)
with TestClient(create_app(rt, background=False), base_url="http://127.0.0.1") as http:
    for path in ("/healthz", "/api/v1/jobs", "/api/v1/workers", "/ui/", "/openapi.json"):
        r = http.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
print("served without torch")
"""


def test_the_server_and_clients_work_without_torch(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path / "home")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "served without torch" in r.stdout

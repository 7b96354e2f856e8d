"""Inputs that used to be accepted and then did nothing useful are refused, in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from registry.runtime import Runtime
from tests.fixtures.catalog import catalog_state

# Refusals happen before any blob moves: both databases and both clients, one store.
pytestmark = pytest.mark.parametrize("storage_backend", ["local"])


def one_line(r: Result) -> str:
    assert r.exit_code == 1, r.output
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    assert "Traceback" not in r.output
    return r.stderr


def test_sync_with_an_unknown_base_is_an_error(
    lorareg: Any, adapter_library: dict[str, Path], tmp_path: Path
) -> None:
    assert lorareg("push", str(adapter_library["v1"]), "acme/voice").exit_code == 0
    assert lorareg("promote", "acme/voice:1", "--to", "production").exit_code == 0
    err = one_line(lorareg("sync", "--to", str(tmp_path / "node"), "--base", "nope"))
    assert "unknown base model 'nope'" in err and "lorareg base list" in err
    assert not (tmp_path / "node").exists()
    # The adapters' own base needs no registration.
    r = lorareg("sync", "--to", str(tmp_path / "node"), "--base", "tiny-llama")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "node" / "acme" / "voice" / "adapter_config.json").exists()


def test_base_add_of_an_adapter_folder_is_refused(
    lorareg: Any, runtime: Runtime, adapter_library: dict[str, Path], client_kind: str
) -> None:
    before = catalog_state(runtime)
    err = one_line(lorareg("base", "add", "tiny-llama", str(adapter_library["v1"])))
    assert "holds a PEFT adapter (adapter_config.json), not base model weights" in err
    assert "lorareg push" in err
    assert catalog_state(runtime) == before


def test_remote_base_add_of_a_missing_folder_says_it_is_read_on_the_server(
    lorareg: Any, client_kind: str, tmp_path: Path
) -> None:
    err = one_line(lorareg("base", "add", "tiny-llama", str(tmp_path / "not-here")))
    if client_kind == "remote":
        assert "no such folder on the server http://127.0.0.1:" in err
        assert "from its own disk, not from this machine" in err
    else:
        assert "no such folder" in err and "server" not in err

"""`lorareg show` names every PEFT option that changes what the adapter does (issue 13,
case 10): alpha_pattern, lora_bias and init_lora_weights were missing from its line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def test_show_lists_every_option_in_use(
    lorareg: Any,  # noqa: F811
    adapter_library: dict[str, Path],
    tmp_path: Path,
) -> None:
    folder = tmp_path / "adapter"
    shutil.copytree(adapter_library["v1"], folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    config.update(
        alpha_pattern={"v_proj": 16},
        lora_bias=True,
        init_lora_weights="gaussian",
        bias="lora_only",
        use_rslora=True,
    )
    (folder / "adapter_config.json").write_text(json.dumps(config))
    assert lorareg("push", str(folder), "acme/options").exit_code == 0

    r = lorareg("show", "acme/options:1")

    [line] = [x for x in r.stdout.splitlines() if x.startswith("options:")]
    assert line.split(None, 1)[1] == (
        "use_rslora, alpha_pattern, lora_bias, bias=lora_only, init_lora_weights=gaussian"
    )
    r = lorareg("show", "acme/options:1", "--json")
    assert json.loads(r.stdout)["config"]["alpha_pattern"] == {"v_proj": 16}
    assert lorareg("push", str(adapter_library["v1"]), "acme/plain").exit_code == 0
    assert "options:     -" in lorareg("show", "acme/plain:1").stdout.splitlines()

"""vLLM as the oracle of the vLLM verdict (issue 13): every adapter of the corpus goes
through vLLM's own LoRA worker path (``oracles/vllm_probe.py``: the real model class,
``PEFTHelper.validate_legal`` with the ``--max-lora-rank`` lorareg advises, and
``LoRAModel.from_local_checkpoint``), and lorareg's ``--engine vllm`` verdict must agree:
pass where vLLM loads it, fail with the same reason where vLLM refuses.

It needs a vLLM environment: ``tests/compat/oracles/make_vllm_env.sh`` builds
``.venv-vllm`` (or point ``LORAREG_VLLM_PYTHON`` at one). Without it the module is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from registry.compat import Severity
from registry.compat.engine_support import vllm_support
from tests.compat.corpus import Library, base_for

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("oracles") / "vllm_probe.py"
VLLM_PYTHON = os.environ.get("LORAREG_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")

pytestmark = pytest.mark.skipif(
    not Path(VLLM_PYTHON).is_file(),
    reason="no vLLM environment: tests/compat/oracles/make_vllm_env.sh builds .venv-vllm",
)

# lorareg's engine.* code -> words of vLLM's own refusal for the same reason.
REASONS = {
    "engine.architecture": "does not support LoRA",
    "engine.target_modules": "expected target modules",
    "engine.dora": "DoRA",
    "engine.modules_to_save": "modules_to_save",
    "engine.bias": "bias is not supported",
    "engine.lora_bias": "lora_bias",
    "engine.rank": "greater than max_lora_rank",
    "engine.init": "init_lora_weights",
    "engine.layer_replication": "layer_replication",
}
ADAPTERS = Library(Path("/nonexistent")).names()


@pytest.fixture(scope="module")
def vllm_answers(library: Library) -> dict[str, Any]:
    requests = []
    for name in ADAPTERS:
        report = library.check(name, base_for(name), engines=["vllm"])
        settings = report.engines["vllm"].settings
        requests.append(
            {
                "name": name,
                "adapter": str(library.adapter(name)),
                "base": str(library.base_dir(base_for(name))),
                # What lorareg tells the user to start vLLM with (the largest when none fits).
                "max_lora_rank": settings.get("--max-lora-rank", 16 if settings else 512),
            }
        )
    done = subprocess.run(
        [VLLM_PYTHON, str(PROBE)],
        input=json.dumps(requests),
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return dict(json.loads(done.stdout))


def test_the_profile_was_read_from_the_installed_vllm(vllm_answers: dict[str, Any]) -> None:
    assert vllm_answers["vllm_version"] == vllm_support().version, (
        "vLLM changed: re-read the per-architecture lists and the PEFTHelper rules, then"
        " update registry/compat/vllm_lora.json's version"
    )


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_vllm_verdict_agrees_with_vllm(
    library: Library, vllm_answers: dict[str, Any], adapter: str
) -> None:
    report = library.check(adapter, base_for(adapter), engines=["vllm"])
    verdict = report.engines["vllm"]
    answer = vllm_answers[adapter]
    refusals = {f.code for f in verdict.findings if f.severity == Severity.FAIL}
    core = {f.code for f in report.findings if f.severity == Severity.FAIL and not f.engine}

    if core:
        # Broken whatever the engine (NaN, wrong shapes or names): vLLM's loader does not
        # look at the base's weights, so it cannot judge these; every verdict fails.
        assert verdict.verdict == Severity.FAIL
        return
    assert answer["loaded"] == (not refusals), (
        f"{adapter}: vLLM {'loaded it' if answer['loaded'] else answer['error']!r};"
        f" lorareg: {verdict.summary}"
    )
    for code in refusals:
        assert REASONS[code] in answer["error"], (code, answer["error"])

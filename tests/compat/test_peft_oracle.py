"""PEFT as the oracle of the PEFT verdict (issue 13): for every adapter of the corpus,
``PeftModel.from_pretrained`` + a forward pass serves the adapter exactly when lorareg's
PEFT verdict says it can.

"Serves" is judged by PEFT's own functions, not lorareg's reading of the files: the load and
the forward raise nothing, the logits are finite, every tensor of the file is one PEFT
loaded (none ignored), and no module PEFT built from it is only partly loaded (a module
the config names but the file lacks stays at PEFT's no-op init, which changes nothing)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from registry.compat import Severity
from tests.compat.corpus import Library, base_for

IDS = torch.tensor([[1, 5, 9, 33, 70, 100, 0, 64]])
_FACTOR = re.compile(r"^(?P<m>.+)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(\.weight)?$")


def peft_serves(base_dir: Path, adapter: Path) -> tuple[bool, str]:
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils import get_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    non_finite: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PEFT warns about what the checks below judge
            model = AutoModelForCausalLM.from_pretrained(base_dir).eval()
            peft_model = PeftModel.from_pretrained(model, adapter).eval()
            for name, module in peft_model.named_modules():
                # isinstance on the mixin would hide the nn.Module it also is.
                if isinstance(module, BaseTunerLayer):
                    # Attention can hide a NaN query from the logits; the layer cannot.
                    torch.nn.Module.register_forward_hook(
                        module,  # type: ignore[arg-type]  # every tuner layer is an nn.Module
                        lambda _m, _i, out, name=name: (
                            non_finite.append(name) if not torch.isfinite(out).all() else None
                        ),
                    )
            with torch.no_grad():
                logits = peft_model(IDS).logits
            loaded = set(get_peft_model_state_dict(peft_model))
    except Exception as exc:  # the oracle's "no": PEFT refused it
        return False, f"{type(exc).__name__}: {str(exc)[:120]}"
    if non_finite or not torch.isfinite(logits).all():
        return False, f"non-finite outputs from {non_finite[:1]}"
    with safe_open(adapter / "adapter_model.safetensors", "pt") as f:
        saved = set(f.keys())
    ignored = sorted(saved - loaded)
    if ignored:
        return False, f"PEFT ignored {ignored[:2]}"
    partial = sorted(
        {m["m"] for k in loaded - saved if (m := _FACTOR.match(k))}
        & {m["m"] for k in saved if (m := _FACTOR.match(k))}
    )
    if partial:
        return False, f"partly loaded {partial[:2]}"
    return True, "served"


def test_the_oracle_can_say_both(library: Library) -> None:
    assert peft_serves(library.base_dir("llama"), library.adapter("llama")) == (True, "served")
    served, why = peft_serves(library.base_dir("llama"), library.adapter("big"))
    assert not served and "size mismatch" in why


@pytest.mark.parametrize("adapter", Library(Path("/nonexistent")).names())
def test_peft_verdict_agrees_with_peft(library: Library, adapter: str) -> None:
    base = base_for(adapter)
    report = library.check(adapter, base, engines=["peft"])
    ours = report.engines["peft"].verdict in (Severity.PASS, Severity.WARN)

    served, why = peft_serves(library.base_dir(base), library.adapter(adapter))

    assert ours == served, f"{adapter} on {base}: PEFT says {why}; lorareg says " + "; ".join(
        f.line() for f in report.problems()
    )

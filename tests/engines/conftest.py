"""One real ``vllm serve`` (vLLM's CPU build in ``.venv-vllm``) for the whole session, with
lorareg's plugin installed, in front of a real lorareg server on S3 (moto).

- The plugin reaches vLLM the way ``pip install lorareg[vllm]`` would: through the
  ``vllm.general_plugins`` entry point. A throwaway distribution folder holding only that
  entry point, and this checkout, go first on vLLM's ``PYTHONPATH``: nothing is written
  into ``.venv-vllm``, so it works the same on a fresh clone and never goes stale.
- The base is a tiny random LLaMA (the adapters' base, with room for long prompts) with a
  word-level tokenizer built offline; vLLM serves it in float32, prefix caching on.
- Token ids are compared with transformers + PEFT greedy decoding on the same files.

Without ``.venv-vllm`` (``tests/compat/oracles/make_vllm_env.sh`` builds it) every test
here is skipped, with that reason.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.s3 import free_port

ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = os.environ.get("LORAREG_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")
LAUNCHER = Path(__file__).with_name("vllm_launcher.py")
BASE = "tiny-llama"
# vLLM's CPU attention kernels refuse head_dim 8 (the suite's usual tiny LLaMA): 64 here.
SHAPE: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
START_TIMEOUT_S = 900  # about 45 s on an idle 2-core machine; minutes on a busy one


def _serve_ready() -> str | None:
    if not Path(VLLM_PYTHON).is_file():
        return "no vLLM environment: tests/compat/oracles/make_vllm_env.sh builds .venv-vllm"
    probe = subprocess.run(
        [
            VLLM_PYTHON,
            "-c",
            "import compressed_tensors, prometheus_fastapi_instrumentator,"
            " model_hosting_container_standards.sagemaker",
        ],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    if probe.returncode != 0:
        return ".venv-vllm lacks what `vllm serve` needs: run tests/compat/oracles/make_vllm_env.sh"
    return None


@pytest.fixture(scope="session")
def vllm_ready() -> None:
    reason = _serve_ready()
    if reason:
        pytest.skip(reason)


def save_served_base(folder: Path) -> Path:
    """A tiny random LLaMA (``SHAPE``: heads of 64, 512 positions), and a word-level
    tokenizer ("w3".."w127") built here, as ``vllm serve`` needs one."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tests.factories import make_llama, save_base

    save_base(make_llama(**SHAPE), folder)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i for i in range(3, 128)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # type: ignore[assignment]
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    ).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def served_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_served_base(tmp_path_factory.mktemp("served") / "tiny-llama")


def plugin_dist(folder: Path) -> Path:
    """A distribution folder whose only content is lorareg's vLLM entry point."""
    info = folder / "lorareg_vllm_plugin-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lorareg-vllm-plugin\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[vllm.general_plugins]\nlorareg = registry.integrations.vllm:register\n"
    )
    return folder


@dataclass
class Registry:
    url: str
    runtime: Any
    client: Any


@pytest.fixture(scope="session")
def registry(
    s3_server: str, s3_client: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    """A lorareg server for the session: SQLite catalog, blobs in an S3 bucket (moto), so
    vLLM downloads through presigned URLs as in production."""
    from registry.client.local import LocalClient
    from registry.config import load_settings
    from registry.db.database import Database
    from registry.db.migrate import upgrade
    from registry.runtime import open_runtime
    from registry.server import create_app
    from tests.fixtures.catalog import LiveServer

    home = tmp_path_factory.mktemp("registry")
    bucket = f"lorareg-engines-{os.getpid()}"
    s3_client.create_bucket(Bucket=bucket)
    url = f"sqlite:///{home / 'catalog.db'}"
    db = Database(url)
    upgrade(db)
    db.dispose()
    settings = load_settings(
        home=home,
        database_url=url,
        storage_url=f"s3://{bucket}/blobs",
        s3_endpoint_url=s3_server,
        author="tester",
        base_roots=[tmp_path_factory.getbasetemp()],
    )
    rt = open_runtime(settings)
    with LiveServer(create_app(rt)) as server:
        yield Registry(server.url, rt, LocalClient(rt))
    rt.close()


@dataclass
class Vllm:
    url: str
    cache_dir: Path
    log: Path

    def complete(self, model: str, prompt: list[int], n: int) -> list[int]:
        """vLLM's greedy token ids for ``prompt`` (ids) under ``model``; raises on an error."""
        resp = httpx.post(
            f"{self.url}/v1/completions",
            json=request_body(model, prompt, n),
            timeout=120,
        )
        if resp.status_code != 200:
            raise VllmRefused(resp.status_code, resp.json()["error"]["message"])
        return list(resp.json()["choices"][0]["token_ids"])

    def loaded(self) -> dict[str, str]:
        cards = httpx.get(f"{self.url}/v1/models", timeout=30).json()["data"]
        return {c["id"]: c["root"] for c in cards if c.get("parent")}


def request_body(model: str, prompt: list[int], n: int, **kw: Any) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": prompt,
        "max_tokens": n,
        "temperature": 0,
        "ignore_eos": True,
        "return_token_ids": True,
        **kw,
    }


class VllmRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@pytest.fixture(scope="session")
def vllm(
    vllm_ready: None,
    registry: Registry,
    served_base: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Vllm]:
    """``vllm serve`` with LoRA, runtime updates and lorareg's plugin, for the session."""
    work = tmp_path_factory.mktemp("vllm")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cache_dir = work / "cache"
    dist = plugin_dist(work / "plugin")
    path = [str(dist), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path),
        "VLLM_HOST_IP": "127.0.0.1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
        "LORAREG_URL": registry.url,
        "LORAREG_HOME": str(work / "home"),
        "LORAREG_VLLM_BASE": BASE,
        "LORAREG_VLLM_CACHE_DIR": str(cache_dir),
        "LORAREG_VLLM_ENGINE_URL": url,
        # The eviction test: replaced folders are released at once, and evicted at once
        # (folders that names use stay whatever the budget).
        "LORAREG_VLLM_GRACE_S": "0",
        "LORAREG_VLLM_CACHE_BYTES": "1",
    }
    env.pop("LORAREG_TOKEN", None)
    log = work / "vllm.log"
    args = [
        VLLM_PYTHON, str(LAUNCHER), "serve", str(served_base),
        "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
        "--max-model-len", "512", "--enable-prefix-caching",
        "--enable-lora", "--max-lora-rank", "16", "--max-loras", "4", "--max-cpu-loras", "8",
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_serving(proc, url, log)
        yield Vllm(url=url, cache_dir=cache_dir, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # Kept where CI keeps artifacts: a failure's cause is in vLLM's own log.
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        shutil.copyfile(log, artifacts / "vllm-engines.log")


def _wait_until_serving(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"vllm serve exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    pytest.fail(f"vllm serve did not start in {START_TIMEOUT_S} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# -- the oracle: transformers + PEFT ----------------------------------------------------


class Peft:
    """Greedy decoding with transformers + PEFT on the served base's own files."""

    def __init__(self, base: Path) -> None:
        from transformers import LlamaForCausalLM

        self.base_dir = base
        self.model = LlamaForCausalLM.from_pretrained(base, dtype="float32").eval()

    def greedy(self, adapter: Path | None, prompt: list[int], n: int) -> list[int]:
        import torch
        from peft import PeftModel
        from transformers import GenerationConfig

        model: Any = self.model
        if adapter is not None:
            model = PeftModel.from_pretrained(self.model, str(adapter)).eval()
        try:
            # No end-of-sequence token: vLLM is asked with ignore_eos, which neither stops
            # nor suppresses it.
            config = GenerationConfig(
                max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0
            )
            with torch.no_grad():
                ids = model.generate(input_ids=torch.tensor([prompt]), generation_config=config)
            out: list[int] = ids[0, len(prompt) :].tolist()
            return out
        finally:
            if adapter is not None:
                model.unload()  # the base model back without LoRA layers


@pytest.fixture(scope="session")
def peft(served_base: Path) -> Peft:
    return Peft(served_base)


def prompt_of(length: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randrange(3, 128) for _ in range(length)]


def wait_until(cond: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def lorareg_cli(*args: str, url: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LORAREG_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("LORAREG_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def adapter_pair(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``adapter_pair(seed)``: v1 and v2 of an adapter whose content no other test pushes
    (equal content is one content id, one cache folder, whatever the repository). Every
    linear module, scaled up (alpha/r = 32): greedy tokens differ between v1, v2 and the
    base, so a wrong version cannot pass for the right one."""
    from tests.factories import make_adapter, make_llama

    root = tmp_path_factory.mktemp("pairs")
    base = make_llama(**SHAPE)  # seed 0: the served base's weights

    def pair(seed: int) -> dict[str, Path]:
        kw: dict[str, Any] = {"base": base, "lora_alpha": 128, "target_modules": MODULES}
        return {
            "v1": make_adapter(root / f"{seed}-v1", seed=seed, **kw),
            "v2": make_adapter(root / f"{seed}-v2", seed=seed + 1, **kw),
        }

    return pair

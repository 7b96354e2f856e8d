#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine, then run the whole suite.
# Usage: scripts/test.sh [pytest args...]   (CI runs it through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# torch first, pinned: this CPU build lies on disk; a loose range would pull a CUDA build.
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[dev]'

# Headless Chromium for the dashboard tests (Debian's package; Playwright's download
# does not work offline).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# PostgreSQL at 127.0.0.1:5432 (trust auth): start the local cluster if it is down.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi

# vLLM's CPU build beside .venv, for the vLLM oracle and engine tests (skipped when it
# cannot be built). Idempotent: an existing one only gets what `vllm serve` needs.
bash tests/compat/oracles/make_vllm_env.sh \
  || echo "warning: .venv-vllm not ready; tests/compat/test_vllm_oracle.py and tests/engines are skipped" >&2

.venv/bin/ruff check registry cli tests bench migrations
.venv/bin/mypy
exec .venv/bin/pytest -n 2 -p no:cacheprovider "$@"

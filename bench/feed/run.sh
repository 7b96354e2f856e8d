#!/usr/bin/env bash
# The feed benchmark needs ~2 file descriptors per follower in each of two processes.
set -euo pipefail
ulimit -n "$(ulimit -Hn)"
here="$(cd "$(dirname "$0")" && pwd)"
exec "${PYTHON:-$here/../../.venv/bin/python}" "$here/bench_feed.py" "$@"

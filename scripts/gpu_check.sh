#!/usr/bin/env bash
# GPU check (docs/scale.md): relevance, masking and bf16 collection on CUDA against the CPU,
# on tiny random models; no network needed, well under five minutes. Exit 0: every check passed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
exec "$PY" scripts/gpu_check.py "$@"

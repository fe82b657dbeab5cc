#!/usr/bin/env bash
# All GPU checks of the book in one run: see tools/gpu_check.py (options: --help).
#   bash tools/gpu_check.sh [--no-bench] [--chapters ...] [--tests ...]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m tools.gpu_check "$@"

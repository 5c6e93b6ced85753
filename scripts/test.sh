#!/usr/bin/env bash
# Runs the test suite; arguments go to pytest, e.g. scripts/test.sh tests/test_metrics.py -x
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
cd "$root"
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# The README's test command: install wesv with its dev extras into the active environment, then run pytest.
# Usage (in a venv with torch installed): bash tools/run_tests.sh [pytest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e '.[dev]'
exec python -m pytest "$@"

#!/usr/bin/env bash
# Set up .venv (installs only when pyproject.toml changed) and run the whole test suite.
# Usage: bash tools/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/venv.sh
setup_venv test
exec .venv/bin/python -m pytest -q "$@"

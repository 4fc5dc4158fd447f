#!/usr/bin/env bash
# Set up .venv (installs only when pyproject.toml changed) and run the whole test suite.
# Usage: bash tools/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.parley-test-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # 2.13.0 is the CPU build that lies on the development and CI machines' disk.
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e '.[test]'
    echo "$want" > "$stamp"
fi
exec .venv/bin/python -m pytest -q "$@"

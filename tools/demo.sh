#!/usr/bin/env bash
# The one-command demo: set up .venv, export the bundled demo model (cached), serve the demo NPCs on
# loopback and hold a conversation with each of them through the real ZeroMQ client.
# Usage: bash tools/demo.sh [--chat NPC]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.parley-demo-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] && [ "$(cat .venv/.parley-test-installed 2>/dev/null)" != "$want" ]; then
    echo "setting up .venv (first run only) ..."
    .venv/bin/python -m pip install -q --upgrade pip
    # 2.13.0 is the CPU build that lies on the development machines' disk; export needs torch, serving does not.
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e '.[export]'
    echo "$want" > "$stamp"
fi
exec .venv/bin/python -m tools.demo.run "$@"

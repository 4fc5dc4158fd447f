#!/usr/bin/env bash
# The one-command demo: set up .venv, export the bundled demo model (cached), serve the demo NPCs on
# loopback and hold a conversation with each of them through the real ZeroMQ client.
# Usage: bash tools/demo.sh [--chat NPC]
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/venv.sh
setup_venv export  # export needs torch; serving does not
exec .venv/bin/python -m tools.demo.run "$@"

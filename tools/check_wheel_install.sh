#!/usr/bin/env bash
# Prove that the package installs: build the wheel from this checkout, install it (not editable) with its
# declared dependencies into a fresh virtual environment outside the checkout, and run the installed
# `parley` from a folder outside the checkout, so nothing of the source tree can be imported: help, lint,
# keys, inspect, what export/bench/demo say without the export extra, a `parley serve` that `parley say`
# and `parley chat` talk to; then, given a checkpoint, the export extra installed on top and a
# `parley export` of it. tests/packaging/ runs it in the suite (so CI does).
# Usage: bash tools/check_wheel_install.sh [MODEL_FOLDER [CHECKPOINT]]
#   MODEL_FOLDER: a model folder made by `parley export` to serve (default: the demo model, exported
#   with .venv into .cache/demo-model on first use)
#   CHECKPOINT: a (small) Hugging Face gpt-oss checkpoint for `parley export` with the export extra
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. tools/venv.sh
setup_venv test  # builds the wheel (setuptools) and, without MODEL_FOLDER, exports the demo model

work=$(mktemp -d "${TMPDIR:-/tmp}/parley-wheel.XXXXXX")
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
step() { echo "[wheel] $*"; }
fail() { echo "[wheel] FAILED: $*" >&2; exit 1; }
# expect RC PATTERN CMD...: run CMD in the installed environment, check its exit code and that its
# output (stdout and stderr) contains PATTERN
expect() {
    local want_rc="$1" pattern="$2" rc=0
    shift 2
    "$@" >"$work/out" 2>&1 || rc=$?
    if [ "$rc" != "$want_rc" ] || ! grep -qF -- "$pattern" "$work/out"; then
        cat "$work/out" >&2
        fail "'$*' exited $rc (expected $want_rc) or did not say '$pattern'"
    fi
    step "ok: $* -> $rc"
}

if [ $# -ge 1 ]; then
    model=$(cd "$1" && pwd)
else
    model=$(.venv/bin/python -c 'from tools.demo.run import export_once; print(export_once())' | tail -n 1)
fi
[ -f "$model/manifest.json" ] || fail "$model is not a model folder (no manifest.json)"

step "building the wheel from the checkout's files (in $work/src, leaving the tree clean)"
mkdir "$work/src" "$work/dist"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then  # tracked files and new ones git does not ignore
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
        | xargs -0 cp --parents -t "$work/src"
else  # an unpacked source archive
    tar --exclude=./.venv --exclude=./.cache --exclude=./build --exclude=./dist -cf - . | tar -xf - -C "$work/src"
fi
.venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$work/src" >/dev/null 2>&1 \
    || .venv/bin/python -m pip wheel --no-deps --no-build-isolation -w "$work/dist" "$work/src"
wheel=$(ls "$work"/dist/parley_npc-*.whl)

step "installing $(basename "$wheel") and its dependencies into a fresh venv"
# nothing from outside the fresh venv: a PYTHONPATH (or user site) holding a checkout would make pip
# take the package as installed already, and the checks below import it from there
unset PYTHONPATH
export PYTHONNOUSERSITE=1
base_python=$(.venv/bin/python -c 'import sys; print(sys._base_executable)')
"$base_python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel" >"$work/pip.log" 2>&1 \
    || { grep -v "^WARNING: Location" "$work/pip.log" >&2; fail "pip could not install $wheel"; }

# From here on: outside the checkout, with only the fresh venv's packages.
mkdir "$work/run"
cd "$work/run"
export PATH="$work/venv/bin:$PATH"
cp -r "$ROOT/npc_profiles" profiles

expect 0 "$work/venv/" python -c 'import runtime, export; print(runtime.__file__, export.__file__)'
expect 0 "no torch" python -c 'import importlib.util as u; assert u.find_spec("torch") is None; print("no torch")'
expect 0 "inspect" parley --help
for command in serve say chat test studio lint keys export inspect bench demo; do
    grep -qE "^    $command " "$work/out" || fail "parley --help does not list $command"
done
expect 0 "3 NPC profile(s) OK" parley lint profiles
rc=0  # the demo NPCs' behaviour tests: they pass on the demo model, not on a random test model
parley test profiles --model "$model" --runs 1 >"$work/out" 2>&1 || rc=$?
{ [ "$rc" = 0 ] || [ "$rc" = 1 ]; } && grep -q "case(s) passed" "$work/out" \
    || { cat "$work/out" >&2; fail "parley test did not run the profiles' cases (exit $rc)"; }
step "ok: parley test profiles -> $rc"
expect 1 "pass --profiles FOLDER" parley serve --model "$model"     # no npc_profiles/ here: it says what to pass
expect 0 "wrote keys/server.key_secret" parley keys keys
[ -f keys/server.key ] && [ -f keys/client.key_secret ] || fail "parley keys wrote no key files"
expect 0 "Parley model folder" parley inspect "$model"
expect 0 "usage: parley export" parley export --help
expect 1 "pip install 'parley-npc[export]'" parley export "$model" exported   # the runtime install has no torch
expect 0 "usage: parley bench" parley bench --help
expect 1 "pip install 'parley-npc[export]'" parley bench
expect 1 "source checkout" parley demo

step "parley serve on $model, then parley say"
mkfifo serve.out
parley serve --model "$model" --profiles profiles --bind tcp://127.0.0.1:0 --blob-key "$work/blob.key" \
    >serve.out 2>serve.err &
server_pid=$!
exec 3<serve.out
ready=""
read -r -t 120 ready <&3 || true
case "$ready" in
    *"ready on tcp://"*) ;;
    *) cat serve.err >&2; fail "parley serve did not start: '$ready'" ;;
esac
endpoint=$(echo "$ready" | grep -oE 'tcp://[0-9.]+:[0-9]+')
expect 0 "[first token" parley say brenna "Good morning!" --endpoint "$endpoint" --timeout 60
printf 'Hello there.\nAnd goodbye.\n' >chat.in
expect 0 "Talking to brenna" parley chat brenna --endpoint "$endpoint" --timeout 60 <chat.in
[ "$(grep -c 'first token' "$work/out" || true)" -ge 2 ] || { cat "$work/out" >&2; fail "parley chat did not answer both lines"; }
kill -INT "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=""
[ "$rc" = 0 ] || { cat serve.err >&2; fail "parley serve exited $rc after SIGINT"; }
step "ok: parley serve stopped cleanly"
exec 3<&-

step "parley studio: the page and its script come from the installed package"
parley studio --model "$model" --profiles profiles --port 0 >studio.out 2>studio.err &
studio_pid=$!
for _ in $(seq 1 600); do grep -q "Parley Studio on" studio.out 2>/dev/null && break; sleep 0.1; done
page=$(grep -oE 'http://127\.0\.0\.1:[0-9]+/' studio.out || true)
[ -n "$page" ] || { kill "$studio_pid" 2>/dev/null; cat studio.err >&2; fail "parley studio did not start"; }
expect 0 "Parley Studio" python -c "import sys, urllib.request as u; print(u.urlopen(sys.argv[1]).read().decode())" "$page"
expect 0 "refreshNpcs" python -c "import sys, urllib.request as u; print(u.urlopen(sys.argv[1]).read().decode())" "${page}studio.js"
kill -TERM "$studio_pid"
wait "$studio_pid" || fail "parley studio did not stop cleanly on SIGTERM"

if [ $# -ge 2 ]; then
    checkpoint=$(cd "$2" && pwd)
    step "installing the export extra on top (torch pinned to the CPU build this project tests with)"
    "$work/venv/bin/python" -m pip install -q "$wheel[export]" "torch==2.13.0" >"$work/pip.log" 2>&1 \
        || { grep -v "^WARNING: Location" "$work/pip.log" >&2; fail "pip could not install the export extra"; }
    expect 0 "verification PASSED" parley export "$checkpoint" exported
    expect 0 "Parley model folder" parley inspect exported
fi

echo "wheel install check passed: $(basename "$wheel") in a fresh venv, run outside the checkout"

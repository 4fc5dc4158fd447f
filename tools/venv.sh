# Sourced by tools/test.sh and tools/demo.sh: make .venv and install the project with the given extra,
# only when pyproject.toml changed since the last install. Usage: setup_venv EXTRA
setup_venv() {
    local extra="$1" py="${PYTHON:-python3}"
    [ -x .venv/bin/python ] || "$py" -m venv .venv
    local want stamp=".venv/.parley-installed-$extra"
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    # the test extra includes the export extra
    if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] || [ "$(cat .venv/.parley-installed-test 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    echo "setting up .venv with '.[$extra]' (first run, or pyproject.toml changed) ..."
    .venv/bin/python -m pip install -q --upgrade pip
    # 2.13.0 is the CPU build that lies on the development and CI machines' disk.
    .venv/bin/python -m pip install -q "torch==2.13.0"
    .venv/bin/python -m pip install -q -e ".[$extra]"
    echo "$want" > "$stamp"
}

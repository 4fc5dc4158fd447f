"""The C client, built with the system compiler (-Wall -Wextra -Werror), against a live `parley serve`."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from runtime.protocol import REPLY_WHITESPACE

SOURCE = Path(__file__).resolve().parents[2] / "tools" / "clients" / "c"

HAVE_LIBS = Path("/usr/include/zmq.h").is_file() and Path("/usr/include/msgpack.h").is_file()
# CI installs the libraries (.ci/run); elsewhere a missing -dev package skips these tests and says so.
pytestmark = pytest.mark.skipif(shutil.which("cc") is None or (not HAVE_LIBS and not os.environ.get("CI")),
                                reason="needs a C compiler and libzmq3-dev + libmsgpack-dev")


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    build = tmp_path_factory.mktemp("c-build")
    result = subprocess.run(["make", "-C", str(SOURCE), f"BUILD={build}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr  # any warning is an error here
    return build


def check(binaries, endpoint, *args, timeout_ms=20000, token=None):
    env = {**os.environ, "PARLEY_TIMEOUT_MS": str(timeout_ms), **({"PARLEY_SESSION_TOKEN": token} if token else {})}
    result = subprocess.run([str(binaries / "parley_check"), endpoint, *args], capture_output=True, text=True,
                            timeout=120, env=env)
    # parley_check escapes control bytes, so "\n" is the only line break (str.splitlines would also split on
    # \x1c-\x1e, \x85 and U+2028 that a random model may emit).
    return result.returncode, result.stdout.rstrip("\n").split("\n")


def unescape(text: str) -> str:
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def test_streamed_reply_equals_the_done_text(binaries, live):
    rc, lines = check(binaries, live.endpoint, "say", "brenna", "How much for a sword?")
    assert rc == 0, lines
    deltas = "".join(unescape(line[len("DELTA "):]) for line in lines if line.startswith("DELTA "))
    done = next(unescape(line[len("DONE "):]) for line in lines if line.startswith("DONE "))
    assert deltas.strip(REPLY_WHITESPACE) == done and done


def test_cancel_ends_the_reply_with_cancelled(binaries, live):
    rc, lines = check(binaries, live.endpoint, "cancel", "talker", "hello")
    assert rc == 2 and lines[-1].startswith("ERROR cancelled"), lines


def test_unknown_npc_yields_its_error_code(binaries, live):
    rc, lines = check(binaries, live.endpoint, "say", "ghost", "hello")
    assert rc == 2 and lines == ["ERROR unknown_npc unknown NPC 'ghost'; known: aldric, brenna, marta, talker"]


def test_health_and_session_export_reset_import(binaries, live):
    assert check(binaries, live.endpoint, "health") == (0, ["HEALTH ok"])
    rc, lines = check(binaries, live.endpoint, "session", "marta")
    assert rc == 0 and lines[-3].startswith("EXPORTED ") and lines[-2:] == ["RESET", "IMPORTED"]


def test_a_session_answers_only_the_client_holding_its_token(binaries, live):
    rc, lines = check(binaries, live.endpoint, "session", "aldric")
    token = next(line[len("TOKEN "):] for line in lines if line.startswith("TOKEN "))
    assert rc == 0 and len(token) == 32
    rc, lines = check(binaries, live.endpoint, "say", "aldric", "I am the same player, honest.")
    assert rc == 2 and lines[-1].startswith("ERROR forbidden"), lines  # another process, its own token
    rc, lines = check(binaries, live.endpoint, "say", "aldric", "Back from my save.", token=token)
    assert rc == 0 and lines[-1].startswith("STATS"), lines  # the saved token, given back


def test_a_missing_server_is_a_timeout_not_a_hang(binaries):
    rc, lines = check(binaries, "tcp://127.0.0.1:1", "say", "brenna", "hi", timeout_ms=300)
    assert rc == 3 and lines[0].startswith("ERROR timeout")
    rc, lines = check(binaries, "tcp://127.0.0.1:1", "health", timeout_ms=300)
    assert rc == 3 and lines[0].startswith("ERROR timeout")


def test_example_conversation_runs_in_a_frame_loop(binaries, live):
    result = subprocess.run([str(binaries / "conversation"), live.endpoint, "aldric", "Good day.", "Open the gate."],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("deadline met") == 2

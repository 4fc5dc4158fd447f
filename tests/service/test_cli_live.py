"""`parley serve`, `parley say` and `parley chat` as separate processes, the way a developer runs them."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.live_server import free_port, profiles_copy


@pytest.fixture
def served(tiny_model, tmp_path):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "serve", "--model", str(tiny_model),
                             "--profiles", str(profiles_copy(tmp_path)), "--bind", endpoint, "--max-cache-mb", "8"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # blocks until ready (or the process dies)
    assert "ready on" in line, proc.stderr.read() if proc.poll() is not None else line
    yield proc, endpoint
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def parley(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "runtime.cli", *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_say_streams_a_reply_and_prints_the_stats_line(served):
    _, endpoint = served
    result = parley("say", "brenna", "How much for a sword?", "--endpoint", endpoint, "--session", "t")
    assert result.returncode == 0, result.stderr
    assert "[first token" in result.stdout and "deadline met" in result.stdout


def test_say_to_an_unknown_npc_fails_with_its_code(served):
    _, endpoint = served
    result = parley("say", "ghost", "hello", "--endpoint", endpoint)
    assert result.returncode == 1 and "unknown_npc" in result.stderr


def test_chat_holds_a_conversation_until_an_empty_line(served):
    _, endpoint = served
    result = parley("chat", "marta", "--endpoint", endpoint, stdin="A room please.\nAnd a meal?\n\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("[first token") == 2


def test_sigterm_stops_the_server_cleanly(served):
    proc, _ = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    log = proc.stderr.read()
    assert "server stopped" in log
    assert "up to 8.0 MiB of their own KV caches" in log  # --max-cache-mb, in the start-up memory plan


def test_serve_refuses_a_missing_model_folder(tmp_path):
    result = parley("serve", "--model", tmp_path / "nope", "--profiles", Path(__file__).resolve().parents[2] / "npc_profiles",
                    "--bind", f"tcp://127.0.0.1:{free_port()}")
    assert result.returncode == 1 and "not a Parley model folder" in result.stderr


def test_a_bad_endpoint_or_key_file_is_one_line_not_a_traceback(tmp_path):
    junk = tmp_path / "server.key"
    junk.write_text("not a certificate\n")
    for args, flag in ((("--endpoint", "bogus://x"), "--endpoint bogus://x"),  # ipc:// on Windows fails alike
                       (("--server-key", junk), f"--server-key {junk}"),
                       (("--server-key", tmp_path / "missing.key"), "--server-key")):
        result = parley("say", "brenna", "hello", *args)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr and f"parley say: error: {flag}" in result.stderr
    result = parley("test", Path(__file__).resolve().parents[2] / "npc_profiles", "--endpoint", "bogus://x")
    assert result.returncode == 1 and "parley test: error: --endpoint bogus://x" in result.stderr


def test_output_the_console_cannot_encode_is_escaped_not_a_crash(tmp_path):
    # Windows encodes a redirected stdout in its ANSI code page (cp1252 here), strictly
    (tmp_path / "guard.toml").write_text('name = "東京 Guard"\npersona = "Guards."\nfallback_lines = ["Halt."]\n'
                                         '[budget]\ndeadline_ms = "fast 東"\n', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "runtime.cli", "lint", str(tmp_path)], capture_output=True,
                            timeout=120, env={**os.environ, "PYTHONIOENCODING": "cp1252"})
    assert result.returncode == 1 and b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")
    assert b"guard.toml:5: budget.deadline_ms" in result.stdout and b"\\u6771" in result.stdout


def test_counts_under_one_are_refused_before_anything_loads(tmp_path):
    for flag, value in (("--threads", "0"), ("--gpu-mem-mb", "-5"), ("--max-batch", "0"), ("--max-cache-mb", "-1")):
        result = parley("serve", "--model", tmp_path / "missing", flag, value)
        assert result.returncode == 2 and f"argument {flag}: {value}: must be" in result.stderr, result.stderr


def test_an_unknown_option_is_named_by_its_subcommand():
    result = parley("serve", "--model", "m", "--bogus")
    assert result.returncode == 2 and "parley serve: error: unrecognized arguments: --bogus" in result.stderr
    assert "usage: parley serve" in result.stderr

"""`parley serve` started by a game as its child process (docs/shipping.md): any free port, the endpoint read
from the ready line, the log in a file, and the server gone when the game closes its standard input, quits or
crashes."""
from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runtime.client import ParleyClient, ParleyError
from tests.helpers.live_server import profiles_copy

F_SETPIPE_SZ = 1031  # Linux's fcntl: a pipe's capacity
READY = re.compile(r"^parley serve: ready on (tcp://127\.0\.0\.1:(\d+)) ")


def serve_command(model: Path, profiles: Path, log_file: Path) -> list[str]:
    return [sys.executable, "-m", "runtime.cli", "serve", "--model", str(model), "--profiles", str(profiles),
            "--bind", "tcp://127.0.0.1:*", "--exit-with-stdin", "--log-file", str(log_file), "--max-cache-mb", "8"]


def read_endpoint(proc: subprocess.Popen, timeout_s: float = 120.0) -> str:
    # a server that never gets ready fails the test, not hangs the suite
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    assert ready, f"no ready line within {timeout_s:g} s"
    line = proc.stdout.readline()
    match = READY.match(line)
    assert match, line + (proc.stderr.read() if proc.poll() is not None else "")
    assert int(match.group(2)) > 0
    return match.group(1)


def wait_gone(pid: int, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def game_child(tiny_model, tmp_path):
    """A server started the way a game starts it: stdin a pipe the game holds, output read for the ready line."""
    log_file = tmp_path / "parley.log"
    proc = subprocess.Popen(serve_command(tiny_model, profiles_copy(tmp_path), log_file), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc, log_file
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_closing_stdin_stops_a_serving_server_and_ends_its_reply(game_child):
    proc, log_file = game_child
    endpoint = read_endpoint(proc)
    with ParleyClient(endpoint, timeout_s=20.0, retries=0) as client:
        assert client.say("brenna", "How much for a sword?", deadline_ms=20000)["type"] == "done"
        frames = client.reply("talker", "Tell me a long story.", stream_unit="token", deadline_ms=60000)
        assert next(frames)["type"] == "delta"
        proc.stdin.close()  # the game quits
        with pytest.raises(ParleyError) as ended:
            list(frames)
        assert ended.value.code == "shutting_down"
    assert proc.wait(30) == 0
    log = log_file.read_text(encoding="utf-8")
    assert "standard input closed" in log and "server stopped" in log
    assert "server stopped" not in proc.stderr.read()  # the log went to the file


def test_a_crashed_game_takes_its_server_with_it(tiny_model, tmp_path):
    # the game: a process that starts the server with a pipe on its stdin, says the server's pid, then dies
    # by SIGKILL (nothing of its own runs: the operating system closes the pipe)
    game = textwrap.dedent(f"""
        import subprocess, sys, time
        server = subprocess.Popen({serve_command(tiny_model, profiles_copy(tmp_path), tmp_path / "p.log")!r},
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        print(server.pid, server.stdout.readline().decode().strip(), flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", game], stdout=subprocess.PIPE, text=True)
    try:
        pid, ready = proc.stdout.readline().split(" ", 1)
        assert READY.match(ready), ready
        endpoint = READY.match(ready).group(1)
        with ParleyClient(endpoint, timeout_s=20.0, retries=0) as client:
            assert client.health()["status"] == "ok"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert wait_gone(int(pid)), "the server outlived the game that started it"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "server stopped" in (tmp_path / "p.log").read_text(encoding="utf-8")


def test_stdin_closed_while_the_model_loads_exits_without_serving(tiny_model, tmp_path):
    log_file = tmp_path / "parley.log"
    result = subprocess.run(serve_command(tiny_model, profiles_copy(tmp_path), log_file), stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ready on" not in result.stdout
    assert "standard input closed" in log_file.read_text(encoding="utf-8")


def test_an_unwritable_log_file_is_refused_before_the_model_loads(tiny_model, tmp_path):
    missing = tmp_path / "a-file" / "parley.log"  # its folder cannot be made: a file has that name
    (tmp_path / "a-file").write_text("")
    result = subprocess.run([sys.executable, "-m", "runtime.cli", "serve", "--model", str(tiny_model),
                             "--profiles", str(profiles_copy(tmp_path)), "--log-file", str(missing)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"--log-file {missing}" in result.stderr


def test_a_server_that_cannot_start_exits_1_with_one_line_while_the_pipe_is_open(tmp_path):
    # a reader thread blocked in sys.stdin's buffer made interpreter shutdown abort (exit -6), an outside probe
    # found: every exit but the pipe's own closing
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "serve", "--model", str(tmp_path / "missing"),
                             "--profiles", str(profiles_copy(tmp_path)), "--exit-with-stdin"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.wait(60) == 1
        errors = [line for line in proc.stderr.read().splitlines() if "error" in line.lower()]
        assert len(errors) == 1 and errors[0].startswith("parley serve: error:"), errors
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_a_serving_server_with_0_while_the_pipe_is_open(game_child, stop):
    proc, log_file = game_child
    read_endpoint(proc)
    proc.send_signal(stop)
    assert proc.wait(30) == 0
    assert "server stopped" in log_file.read_text(encoding="utf-8")


def test_a_signal_while_the_model_loads_ends_the_process_at_once_with_0(tiny_model, tmp_path):
    """Before it serves, the main thread is often inside a C call (loading a big model takes minutes), where a
    Python signal handler cannot run. Here it is held opening its blob key, a FIFO nobody has written yet."""
    key = tmp_path / "blob.key"
    os.mkfifo(key)
    proc = subprocess.Popen([*serve_command(tiny_model, profiles_copy(tmp_path), tmp_path / "p.log"),
                             "--blob-key", str(key)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writer = None
    try:
        deadline = time.monotonic() + 60
        while writer is None and time.monotonic() < deadline:  # opens once the server is blocked reading it
            try:
                writer = os.open(key, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                time.sleep(0.1)
        assert writer is not None, "the server never opened its blob key"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert "ready on" not in proc.stdout.read()
        assert "stopped by signal" in (tmp_path / "p.log").read_text(encoding="utf-8")
    finally:
        if writer is not None:
            os.close(writer)
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()


def test_a_game_that_never_reads_the_servers_stderr_does_not_stall_it(tiny_model, tmp_path):
    """Without --log-file the log goes to stderr; a game that never reads that pipe fills it, and the server
    blocked at its next log line and answered nobody (an outside probe: after about 300 replies)."""
    profiles = profiles_copy(tmp_path)
    (profiles / "broken.toml").write_text("name = \n")  # every reload logs its problem
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "serve", "--model", str(tiny_model),
                             "--profiles", str(profiles), "--bind", "tcp://127.0.0.1:*", "--exit-with-stdin",
                             "--rate-limit", "0"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        fcntl.fcntl(proc.stderr.fileno(), F_SETPIPE_SZ, 4096)  # a small pipe fills in a few dozen lines
        endpoint = read_endpoint(proc)
        with ParleyClient(endpoint, timeout_s=5.0, retries=0) as client:
            for _ in range(300):  # about 60 KiB of log lines against a 4 KiB pipe nobody reads
                assert client.reload_profiles()["errors"]
            assert client.say("brenna", "Hello.", deadline_ms=20000)["type"] == "done"
        proc.stdin.close()  # the game quits, still not reading
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_server_that_does_not_stop_when_the_pipe_closes_is_ended_after_the_grace_period(tmp_path):
    """The lifeline's last resort, for a server stuck where stopping cannot reach it (a driver call): here a
    stop that does nothing, and a process that would otherwise sleep for a minute."""
    program = textwrap.dedent("""
        import os, sys, time
        from runtime.lifeline import Lifeline
        read_end, write_end = os.pipe()
        lifeline = Lifeline(grace_s=1.0)
        lifeline.start(read_end)
        lifeline.serving(lambda: None)
        print("serving", flush=True)
        os.close(write_end)
        time.sleep(60)
        sys.exit(3)
    """)
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout == "serving\n" and proc.returncode == 0, proc.stderr


def test_a_pipe_closed_while_an_error_ends_the_command_keeps_the_error_code_and_last_line():
    """A game that reads the start-up error closes the pipe at once: the lifeline ended the process with 0
    and its own log line, racing the command's exit 1 and burying the error line under its own."""
    program = textwrap.dedent("""
        import os, sys, time
        from runtime.lifeline import Lifeline, ending
        read_end, write_end = os.pipe()
        Lifeline().start(read_end)
        ending(1)
        print("parley serve: error: the model folder has no manifest.json", file=sys.stderr, flush=True)
        os.close(write_end)  # the game, having read that line
        time.sleep(60)  # the command's own exit, slowed: the lifeline must not win with 0
    """)
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("parley serve: error:"), proc.stderr


def test_many_broken_profiles_neither_block_the_start_nor_bury_the_error_line(tiny_model, tmp_path):
    """Profile problems were printed straight to stderr: with the pipe unread the server never got ready. And
    the error line must be the last one, after the log's queued lines (a game reports that line)."""
    profiles = profiles_copy(tmp_path)
    for i in range(60):
        (profiles / f"broken{i}.toml").write_text("name = \n")
    serve = [sys.executable, "-m", "runtime.cli", "serve", "--profiles", str(profiles), "--bind",
             "tcp://127.0.0.1:*", "--exit-with-stdin"]  # no --log-file: the log goes to stderr
    proc = subprocess.Popen([*serve, "--model", str(tiny_model)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        fcntl.fcntl(proc.stderr.fileno(), F_SETPIPE_SZ, 4096)
        read_endpoint(proc)  # ready, its stderr never read
    finally:
        proc.stdin.close()
        proc.wait(30)
    for _ in range(3):  # the error line last, every time
        failed = subprocess.run([*serve[:-1], "--model", str(tmp_path / "missing")], capture_output=True, text=True,
                                timeout=120)
        assert failed.returncode == 1, failed.stderr
        assert failed.stderr.splitlines()[-1].startswith("parley serve: error:"), failed.stderr[-2000:]

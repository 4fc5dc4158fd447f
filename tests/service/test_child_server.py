"""runtime/child_server.py: `parley serve` started as a Python game's child (docs/shipping.md)."""
from __future__ import annotations

import pytest

from runtime.child_server import ServerStartFailed, start_server
from runtime.client import ParleyClient
from tests.helpers.live_server import profiles_copy


def test_a_python_game_starts_talks_to_and_stops_its_server(tiny_model, tmp_path):
    log_file = tmp_path / "logs" / "parley.log"
    with start_server(tiny_model, profiles_copy(tmp_path), log_file=log_file, isolated=True) as server:
        assert server.endpoint.startswith("tcp://127.0.0.1:") and server.running()
        with ParleyClient(server.endpoint, timeout_s=20.0, retries=0) as client:
            assert client.say("brenna", "How much for a sword?", deadline_ms=20000)["type"] == "done"
        assert server.stop() == 0 and not server.running()
    assert "server stopped" in log_file.read_text(encoding="utf-8")


def test_a_server_that_cannot_start_gives_its_own_reason_and_exit_code(tmp_path):
    with pytest.raises(ServerStartFailed, match=r"ended before it was ready \(exit code 1\): parley serve: error: "
                                                r".*no manifest.json"):
        start_server(tmp_path / "missing", profiles_copy(tmp_path))


def test_without_a_log_file_its_log_is_read_and_kept(tiny_model, tmp_path):
    with start_server(tiny_model, profiles_copy(tmp_path)) as server:
        code = server.stop()
    assert code == 0, server.output
    assert any("INFO runtime.cli_service: memory:" in line for line in server.output), server.output
    assert any("server stopped" in line for line in server.output)

"""Live servers on loopback (tcp on a free port, or ipc in a tmp dir), always stopped."""
from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from runtime.client import ParleyClient
from runtime.engine import Engine, EngineOptions
from runtime.profile_registry import ProfileRegistry
from runtime.server import Server, ServerOptions

PROFILES = Path(__file__).resolve().parents[2] / "npc_profiles"

# A test NPC that answers greedily and at length: with reasoning_effort 0 tokens the engine opens the
# final channel at once, so a reply streams many deltas (used by the cancel tests).
TALKER = """
name = "Talker"
persona = "Talks at length."
fallback_lines = ["..."]
[budget]
deadline_ms = 60000
max_reasoning_tokens = 0
max_final_tokens = 600
expected_final_tokens = 32
[sampling]
temperature = 0.0
"""


class LiveServer:
    def __init__(self, model: Path, profiles: Path, engine_options: EngineOptions | None = None, **opts):
        self.profiles = profiles
        self.registry = ProfileRegistry(profiles)
        self.registry.reload()
        self.engine = Engine(model, self.registry.npcs, engine_options or EngineOptions())
        self.server = Server(self.engine, self.registry, ServerOptions(**{"bind": "tcp://127.0.0.1:0",
                                                                          "profile_poll_s": 0.2, **opts}))
        self.endpoint = self.server.endpoint
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def client(self, **kw) -> ParleyClient:
        return ParleyClient(self.endpoint, **{"timeout_s": 20.0, "retries": 0, **kw})

    def stop(self) -> None:
        self.server.stop(wait=True)
        self.thread.join(10)


def profiles_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES, folder)
    (folder / "talker.toml").write_text(TALKER)
    return folder


@pytest.fixture(scope="module")
def live(tiny_model, tmp_path_factory):
    server = LiveServer(tiny_model, profiles_copy(tmp_path_factory.mktemp("live")))
    yield server
    server.stop()


@pytest.fixture
def make_server(tiny_model, tmp_path):
    started = []

    def make(**opts) -> LiveServer:
        server = LiveServer(tiny_model, profiles_copy(tmp_path / f"s{len(started)}"), **opts)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()

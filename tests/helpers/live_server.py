"""Live servers for tests: in this process on loopback (LiveServer), or the profiles and a free port
for a `parley serve` child process. The fixtures that start and always stop them are in tests/conftest.py."""
from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a server in a child process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def profiles_copy(tmp_path: Path) -> Path:
    """The shipped NPC profiles plus the Talker, in a folder of the test's own (so it may edit them)."""
    folder = tmp_path / "profiles"
    shutil.copytree(PROFILES, folder)
    (folder / "talker.toml").write_text(TALKER)
    return folder


class LiveServer:
    """Engine + Server serving on a free loopback port from a thread of this process."""

    def __init__(self, model: Path, profiles: Path, engine_options: EngineOptions | None = None, **opts):
        self.profiles = profiles
        self.registry = ProfileRegistry(profiles)
        self.registry.reload()
        self.engine = Engine(model, self.registry.npcs, engine_options or EngineOptions())
        self.server = Server(self.engine, self.registry, ServerOptions(**{"bind": "tcp://127.0.0.1:0",
                                                                          "profile_poll_s": 0.2, **opts}))
        self.endpoint = self.server.endpoint
        # what the idle worker does first: tests that hold the engine's lock must not find it mid warm-up
        self.engine.warm_prefixes()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def client(self, **kw) -> ParleyClient:
        return ParleyClient(self.endpoint, **{"timeout_s": 20.0, "retries": 0, **kw})

    def stop(self) -> None:
        self.server.stop(wait=True)
        self.thread.join(10)

"""Shared fixtures: tiny random gpt-oss checkpoints built with transformers, their exported model, and live
servers on it. Helpers that are not fixtures live in tests/helpers/; test modules never import each other."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.checkpoints import TinySpec, make_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The default tiny model: 4 layers, window 5, 2 kv heads, 4 experts top-2."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt-default"), TinySpec())


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint, tmp_path_factory):
    """The default tiny checkpoint exported with contrib ops (what ships by default)."""
    from export.exporter import ExportOptions, export_model

    out = tmp_path_factory.mktemp("tiny-model") / "model"
    export_model(tiny_checkpoint, out, ExportOptions(max_context=4096))
    return out


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory):
    """The shipped demo checkpoint (tools/demo/checkpoint) exported as a model folder."""
    from tools.demo.evaluate import export_demo

    checkpoint = Path(__file__).resolve().parents[1] / "tools" / "demo" / "checkpoint"
    return export_demo(checkpoint, tmp_path_factory.mktemp("demo") / "model")


@pytest.fixture
def allow_listed_keys(tmp_path):
    """CurveZMQ keys from `parley keys` and an allow-list folder holding two clients' public keys:
    (keys folder, allow-list folder, the second client's secret-key file)."""
    import subprocess
    import sys

    import zmq.auth

    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    subprocess.run([sys.executable, "-m", "runtime.cli", "keys", str(keys)], check=True, capture_output=True)
    allowed.mkdir()
    (allowed / "client.key").write_bytes((keys / "client.key").read_bytes())
    _, other_secret = zmq.auth.create_certificates(str(allowed), "other")
    return keys, allowed, Path(other_secret)


@pytest.fixture(scope="module")
def base_and_adapter(tmp_path_factory):
    """(base checkpoint, PEFT LoRA adapter folder, PEFT's merged model): see make_lora_adapter."""
    from tests.helpers.checkpoints import make_lora_adapter

    return make_lora_adapter(tmp_path_factory.mktemp("lora"))


# Live servers on loopback, always stopped. (tests/helpers/live_server.py is imported in the fixtures,
# not above, so the export and profile tests collect without loading the server.)
@pytest.fixture(scope="module")
def live(tiny_model, tmp_path_factory):
    """One server per test module, on the shipped profiles plus the Talker."""
    from tests.helpers.live_server import LiveServer, profiles_copy

    server = LiveServer(tiny_model, profiles_copy(tmp_path_factory.mktemp("live")))
    yield server
    server.stop()


@pytest.fixture
def make_server(tiny_model, tmp_path):
    """make(**server_options) starts a server of the test's own; every one started is stopped after it."""
    from tests.helpers.live_server import LiveServer, profiles_copy

    started = []

    def make(**opts):
        server = LiveServer(tiny_model, profiles_copy(tmp_path / f"s{len(started)}"), **opts)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()

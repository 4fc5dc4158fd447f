"""Shared fixtures: tiny random gpt-oss checkpoints built with transformers, and their exported model."""
from __future__ import annotations

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

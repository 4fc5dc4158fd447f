"""Shared fixtures: tiny random gpt-oss checkpoints built with transformers, and a harmony tokenizer."""
from __future__ import annotations

import pytest

from tests.helpers.checkpoints import TinySpec, make_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The default tiny model: 4 layers, window 5, 2 kv heads, 4 experts top-2."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt-default"), TinySpec())

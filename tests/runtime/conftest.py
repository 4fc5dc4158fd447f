from __future__ import annotations

import pytest

from export.exporter import ExportOptions, export_model


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint, tmp_path_factory):
    """The default tiny checkpoint exported with contrib ops (what ships by default)."""
    out = tmp_path_factory.mktemp("tiny-model") / "model"
    export_model(tiny_checkpoint, out, ExportOptions(max_context=1024))
    return out

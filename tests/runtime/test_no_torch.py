"""The runtime ships without torch: it must import, list commands and run a model with torch unavailable."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from export.exporter import ExportOptions, export_model

BLOCK_HEAVY = "import sys\nfor name in ('torch', 'onnx', 'transformers', 'safetensors'):\n    sys.modules[name] = None\n"


@pytest.fixture(scope="module")
def model_folder(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("no-torch") / "model"
    export_model(tiny_checkpoint, out, ExportOptions(max_context=32))
    return out


def test_runtime_runs_a_model_with_torch_blocked(model_folder):
    code = BLOCK_HEAVY + textwrap.dedent(f"""
        import numpy as np
        import runtime.cli, runtime.manifest
        from runtime.session import ModelSession, SessionOptions
        s = ModelSession({str(model_folder)!r}, SessionOptions(provider="auto"))
        logits = s.run(np.array([[1, 2, 3]]), s.new_cache(length=8))
        assert logits.shape == (1, s.config.vocab_size), logits.shape
        assert "torch" not in [m for m in sys.modules if sys.modules[m] is not None]
        print("ok", s.session.get_providers()[0])
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def test_parley_help_works_without_torch_and_export_says_what_to_install(tmp_path):
    code = BLOCK_HEAVY + "import runtime.cli\nraise SystemExit(runtime.cli.main(sys.argv[1:]))\n"
    help_ = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=60)
    assert help_.returncode == 0 and "export" in help_.stdout
    export = subprocess.run([sys.executable, "-c", code, "export", str(tmp_path), str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=60)
    assert export.returncode == 1 and "pip install 'parley-npc[export]'" in export.stderr


def test_parley_inspect_reads_a_checkpoint_in_either_layout_without_torch(tiny_checkpoint, tmp_path):
    """An outside review: `parley inspect CHECKPOINT` (README's first step for a fine-tune) ended in a torch
    ImportError on a runtime-only install, and refused OpenAI's original layout, which export reads."""
    from tests.export.test_original_layout import write_original

    original = write_original(tiny_checkpoint, tmp_path / "release", quantize=False)
    code = BLOCK_HEAVY + "import runtime.cli\nraise SystemExit(runtime.cli.main(sys.argv[1:]))\n"
    shown = {}
    for name, folder in (("hf", tiny_checkpoint), ("original", original)):
        result = subprocess.run([sys.executable, "-c", code, "inspect", str(folder), "--json"], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        shown[name] = json.loads(result.stdout)
    assert shown["hf"]["kind"] == "Hugging Face checkpoint"
    assert shown["original"]["kind"] == "checkpoint in OpenAI's original layout"
    assert shown["hf"]["parameters"] == shown["original"]["parameters"] and shown["hf"]["exports"]

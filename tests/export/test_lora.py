"""A PEFT LoRA adapter merged at export equals PEFT's own merge_and_unload (transformers + peft as the oracle)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from export.errors import CheckpointError
from export.exporter import ExportOptions, export_model
from runtime.session import ModelSession, SessionOptions
from tests.helpers.checkpoints import load_hf


def test_merged_export_equals_peft_merge(base_and_adapter, tmp_path):
    base, adapter, merged = base_and_adapter
    export_model(base, tmp_path / "model", ExportOptions(lora=adapter, max_context=32))
    session = ModelSession(tmp_path / "model", SessionOptions(provider="cpu"))
    ids = np.random.default_rng(3).integers(0, session.config.vocab_size, size=(1, 12))
    with torch.no_grad():
        expected = merged(torch.from_numpy(ids)).logits[0, -1].numpy()
        without = load_hf(base)(torch.from_numpy(ids)).logits[0, -1].numpy()
    got = session.run(ids, session.new_cache(length=16))[0]
    assert np.abs(expected - without).max() > 1e-2  # the adapter really changes the model
    assert np.abs(got - expected).max() <= 1e-4
    assert session.manifest.source["lora"]["hash"].startswith("sha256:")


def test_dora_adapter_is_refused_with_the_reason(base_and_adapter, tmp_path):
    import json
    import shutil

    base, adapter, _ = base_and_adapter
    dora = tmp_path / "dora"
    shutil.copytree(adapter, dora)
    cfg = json.loads((dora / "adapter_config.json").read_text())
    cfg["use_dora"] = True
    (dora / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="use_dora.*DoRA"):
        export_model(base, tmp_path / "model", ExportOptions(lora=dora))
    assert not (tmp_path / "model").exists()

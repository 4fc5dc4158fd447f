"""A bfloat16 checkpoint's embedding (gpt-oss as released) stays bfloat16 in the graph: exact, half the
bytes of float32. Anything bfloat16 cannot hold exactly stays in the graph's dtype."""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto

from export.exporter import ExportOptions, export_model
from export.synthetic import make_released_layout_checkpoint
from export.tensor_source import SafetensorsTensors

SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
             num_local_experts=4, num_experts_per_tok=2, intermediate_size=64, vocab_size=512, sliding_window=8)


def embed_type(folder) -> int:
    graph = onnx.load(folder / "model.onnx", load_external_data=False).graph
    return next(t.data_type for t in graph.initializer if t.name == "embed.weight")


def test_a_bfloat16_embedding_is_kept_bit_for_bit_at_half_the_bytes(tmp_path):
    ckpt = make_released_layout_checkpoint(tmp_path / "ckpt", SMALL, seed=4)
    summary = export_model(ckpt, tmp_path / "out", ExportOptions(max_context=64, experts="float"))
    assert summary.verification.passed
    graph = onnx.load(tmp_path / "out" / "model.onnx", load_external_data=False).graph
    table = next(t for t in graph.initializer if t.name == "embed.weight")
    assert table.data_type == TensorProto.BFLOAT16
    where = {e.key: e.value for e in table.external_data}
    with (tmp_path / "out" / where["location"]).open("rb") as f:
        f.seek(int(where["offset"]))
        written = np.frombuffer(f.read(int(where["length"])), dtype=np.uint16)
    stored = SafetensorsTensors(sorted(ckpt.glob("*.safetensors"))).raw("model.embed_tokens.weight")
    assert stored.dtype == torch.bfloat16 and int(where["length"]) == 2 * stored.numel()
    assert np.array_equal(written, stored.view(torch.int16).numpy().view(np.uint16).reshape(-1))


def test_a_float32_embedding_that_bfloat16_would_round_stays_float(tiny_checkpoint, tmp_path):
    export_model(tiny_checkpoint, tmp_path / "out", ExportOptions(max_context=32))
    assert embed_type(tmp_path / "out") == TensorProto.FLOAT


def test_a_float16_graph_casts_the_bfloat16_rows_to_float16(tmp_path):
    ckpt = make_released_layout_checkpoint(tmp_path / "ckpt", SMALL, seed=5)
    summary = export_model(ckpt, tmp_path / "out", ExportOptions(max_context=64, dtype="float16"))
    assert summary.verification.passed and embed_type(tmp_path / "out") == TensorProto.BFLOAT16

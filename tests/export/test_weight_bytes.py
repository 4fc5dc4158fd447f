"""The weights-size estimate `parley inspect` shows for a checkpoint equals what exports really write."""
from __future__ import annotations

import onnx
import pytest

from export.exporter import ExportOptions, export_model
from export.synthetic import make_released_layout_checkpoint
from export.weight_bytes import ExportChoice, weights_bytes
from runtime.manifest import Manifest

SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
             num_local_experts=4, num_experts_per_tok=2, intermediate_size=64, vocab_size=512, sliding_window=8)


def written_weight_bytes(folder) -> int:
    """The bytes of every external initializer (the file adds page alignment between them)."""
    graph = onnx.load(folder / "model.onnx", load_external_data=False).graph
    return sum(int({e.key: e.value for e in t.external_data}["length"]) for t in graph.initializer
               if t.data_location == onnx.TensorProto.EXTERNAL)


@pytest.fixture(scope="module")
def bf16_checkpoint(tmp_path_factory):
    return make_released_layout_checkpoint(tmp_path_factory.mktemp("bf16") / "ckpt", SMALL, seed=6)


@pytest.mark.parametrize("choice", [ExportChoice("float32", "float", "float"), ExportChoice("float32", "int8", "int4"),
                                    ExportChoice("float32", "int4", "int8"), ExportChoice("float16", "int4", "int8"),
                                    ExportChoice("float16", "float", "float"), ExportChoice("float32", "mxfp4", "float"),
                                    ExportChoice("float16", "mxfp4", "int4"),
                                    ExportChoice("float16", "int4", "int4", block=64),
                                    ExportChoice("float32", "int8", "int8", block=16)], ids=ExportChoice.label)
def test_the_estimate_equals_the_exported_weights(bf16_checkpoint, tmp_path, choice):
    out = tmp_path / "out"
    export_model(bf16_checkpoint, out, ExportOptions(max_context=64, dtype=choice.dtype, experts=choice.experts,
                                                     dense=choice.dense, block_size=choice.block))
    cfg = Manifest.read(out).config
    assert weights_bytes(cfg, choice, 64) == written_weight_bytes(out)


def test_a_float32_embedding_counts_at_the_graphs_dtype(tiny_checkpoint, tmp_path):
    export_model(tiny_checkpoint, tmp_path / "out", ExportOptions(max_context=32, experts="float"))
    cfg = Manifest.read(tmp_path / "out").config
    assert weights_bytes(cfg, ExportChoice(embed_bfloat16=False), 32) == written_weight_bytes(tmp_path / "out")


def test_choices_whose_blocks_do_not_divide_the_model_are_not_offered():
    from export.synthetic import hf_config
    from export.weight_bytes import serving_estimates
    from runtime.model_config import ModelConfig

    offered = lambda hidden: {r["target"] for r in serving_estimates(  # noqa: E731
        ModelConfig.from_hf(hf_config({**SMALL, "hidden_size": hidden, "intermediate_size": hidden})), True)}
    assert "GPU, smallest" in offered(128)
    assert "GPU, smallest" not in offered(96) and "GPU" in offered(96)  # 96 is a multiple of 32, not of 64

"""`parley bench` end to end on a tiny checkpoint: real exports, real worker processes, a real server.

No timing is asserted (machines are noisy); the test proves the benchmark runs every part it reports,
that the systems it compares compute the same tokens, and that its outputs have the promised shape.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.checkpoints import TinySpec, make_checkpoint
from export.bench.floor import active_weight_bytes
from export.bench.worker import prompt_ids

ROOT = Path(__file__).resolve().parents[2]
SINGLE = ("ttft_ms_128", "ttft_ms_512", "warm_ttft_ms", "full_prompt_ttft_ms", "decode_tok_s", "peak_rss_mb")


def test_bench_measures_parley_and_transformers_on_one_checkpoint(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "ckpt", TinySpec())
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "bench", str(checkpoint), "--systems", "parley,transformers",
         "--repeats", "1", "--levels", "1,2", "--per-client", "1", "--work", str(tmp_path / "work"),
         "--json", str(out), "--png", str(tmp_path / "bench.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    # the systems were checked to give identical greedy tokens before anything was timed
    assert "systems give the same greedy continuation" in done.stderr
    results = json.loads(out.read_text())
    assert list(results) == ["parley", "transformers", "floor"]
    for key in SINGLE:
        for system in ("parley", "transformers"):
            value = results[system][key]
            assert math.isfinite(value) and value > 0, (system, key, value)
    for key in ("concurrent_tok_s_1", "concurrent_tok_s_2"):
        assert results["parley"][key] > 0
    assert results["parley"]["mean_batch_size"] >= 1.0
    assert 0 < results["parley"]["python_share_pct"] < 100
    assert results["floor"]["decode_tok_s"] > 0 and results["floor"]["memory_bandwidth_gb_s"] > 0
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = done.stdout
    assert "| decode tokens/s, batch 1, 128 new tokens |" in table and "| target |" in table


def test_every_system_gets_the_same_prompt_tokens_for_a_seed():
    a, b = prompt_ids(128, 7, 32000), prompt_ids(128, 7, 32000)
    assert (a == b).all() and a.min() >= 1000  # above the tokenizer's merges and special tokens
    assert not (prompt_ids(128, 8, 32000) == a).all()


def test_active_weights_count_top_k_experts_not_all_of_them():
    cfg = dict(hidden_size=512, num_attention_heads=8, num_key_value_heads=2, head_dim=64, intermediate_size=512,
               num_local_experts=16, num_experts_per_tok=4, num_hidden_layers=8, vocab_size=32000)
    four = active_weight_bytes(cfg)
    eight = active_weight_bytes({**cfg, "num_experts_per_tok": 8})
    expert_bytes = 4 * (512 * 1024 + 1024 + 512 * 512 + 512)
    assert eight - four == 8 * 4 * expert_bytes  # 8 layers x 4 more experts
    assert active_weight_bytes({**cfg, "num_local_experts": 64}) - four == 8 * 48 * 4 * 513  # only the router grows


def test_int8_experts_read_a_byte_per_matrix_weight_and_the_rest_stays_float():
    cfg = dict(hidden_size=512, num_attention_heads=8, num_key_value_heads=2, head_dim=64, intermediate_size=512,
               num_local_experts=16, num_experts_per_tok=4, num_hidden_layers=8, vocab_size=32000)
    matrices = 512 * 1024 + 512 * 512  # gate_up and down of one expert
    rows = 1024 + 512  # their biases, and one float scale per row for int8
    per_expert_float = 4 * (matrices + rows)
    per_expert_int8 = matrices + 2 * 4 * rows
    saved = active_weight_bytes(cfg) - active_weight_bytes(cfg, experts="int8")
    assert saved == 8 * 4 * (per_expert_float - per_expert_int8)  # 8 layers x top-4 experts


def test_bench_with_int8_experts_exports_them_and_says_so(tmp_path):
    checkpoint = make_checkpoint(tmp_path / "ckpt", TinySpec())
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "bench", str(checkpoint), "--experts", "int8", "--systems",
         "parley,transformers", "--repeats", "1", "--levels", "1", "--per-client", "1", "--work",
         str(tmp_path / "work"), "--json", str(out), "--png", str(tmp_path / "bench.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["parley"]["experts"] == "int8" and results["parley"]["decode_tok_s"] > 0
    assert "(parley quantized, not required to agree)" in done.stderr
    assert "parley runs int8 experts" in done.stdout
    cfg = json.loads((checkpoint / "config.json").read_text())
    assert math.isclose(results["floor"]["active_weight_mb"], active_weight_bytes(cfg, experts="int8") / 1e6)
    manifests = list((tmp_path / "work").glob("*/parley-int8-experts/manifest.json"))
    assert len(manifests) == 1 and json.loads(manifests[0].read_text())["export_options"]["experts"] == "int8"


def test_bench_with_4_bit_experts_8_bit_dense_weights_and_int8_activations_from_an_mxfp4_checkpoint(tmp_path):
    from export.synthetic import make_released_layout_checkpoint

    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                 num_local_experts=4, num_experts_per_tok=2, intermediate_size=64, vocab_size=512, sliding_window=8)
    checkpoint = make_released_layout_checkpoint(tmp_path / "ckpt", shape)
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "bench", str(checkpoint), "--experts", "int4", "--dense", "int8",
         "--int8-activations", "--systems", "parley", "--repeats", "1", "--levels", "1", "--per-client", "1", "--work",
         str(tmp_path / "work"), "--json", str(out), "--png", str(tmp_path / "bench.png")],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert (results["parley"]["experts"], results["parley"]["dense"]) == ("int4", "int8")
    assert results["parley"]["int8_activations"] is True
    assert "parley runs int4 experts, int8 dense weights" in done.stdout
    cfg = json.loads((checkpoint / "config.json").read_text())
    assert math.isclose(results["floor"]["active_weight_mb"],
                        active_weight_bytes(cfg, experts="int4", dense="int8") / 1e6)
    manifests = list((tmp_path / "work").glob("*/parley-int4-experts-int8-dense-int8-activations/manifest.json"))
    options = json.loads(manifests[0].read_text())["export_options"]
    assert len(manifests) == 1 and (options["experts"], options["dense"]) == ("int4", "int8")
    assert options["int8_activations"] is True


def test_measure_model_folder_reports_against_the_floor_and_the_ceilings(tiny_model, tmp_path):
    from export.weight_bytes import ExportChoice, active_bytes_per_token
    from runtime.manifest import Manifest

    out = tmp_path / "measure.json"
    done = subprocess.run([sys.executable, "-m", "tools.experiments.measure_model_folder", str(tiny_model), "--steps", "2",
                           "--repeats", "1", "--prompt", "8", "--concurrent", "1,2", "--tokens", "2", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    cfg = Manifest.read(tiny_model).config
    choice = ExportChoice("float32", "float", "float", embed_bfloat16=False)
    assert r["active_bytes_per_token"] == active_bytes_per_token(cfg, choice)
    assert math.isclose(r["floor_tok_s"], r["bandwidth_gb_s"] * 1e9 / r["active_bytes_per_token"])
    assert math.isclose(r["ceiling_tok_s_2"], 2 * r["bandwidth_gb_s"] * 1e9 / active_bytes_per_token(cfg, choice, 2))
    assert r["decode_tok_s"] > 0 and r["concurrent_tok_s_2"] > 0 and r["rss_after_load_mb"] > 0
    assert "of the floor" in done.stdout and "2-row ceiling" in done.stdout


def test_a_failed_concurrent_reply_fails_the_measurement_instead_of_slowing_it(make_server):
    """An outside review: a client thread's error was swallowed, its time counted without its tokens, and the
    bench printed a lower tokens/s as if nothing had happened."""
    from export.bench.concurrency import aggregate_tok_s

    server = make_server()  # its profiles have no "bench" NPC: every reply is refused unknown_npc
    with pytest.raises(RuntimeError, match="2 of 2 concurrent clients failed"):
        aggregate_tok_s(server.endpoint, clients=2, per_client=1, tag="t")

"""`parley export` / `parley inspect` as a user runs them: real processes, exit codes, summaries."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runtime.manifest import Manifest


def parley(*args, check=False):
    return subprocess.run([sys.executable, "-m", "runtime.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=check)


def test_export_prints_a_summary_and_writes_a_verified_folder(tiny_checkpoint, tmp_path):
    result = parley("export", tiny_checkpoint, tmp_path / "model", "--max-context", 64)
    assert result.returncode == 0, result.stderr
    assert "verification PASSED" in result.stdout and "active per token" in result.stdout
    assert "SKIPPED" not in result.stdout and "int8" not in result.stdout
    assert Manifest.read(tmp_path / "model").verification["status"] == "passed"


def test_python_dash_m_export_is_the_same_command(tiny_checkpoint, tmp_path):
    result = subprocess.run([sys.executable, "-m", "export", str(tiny_checkpoint), str(tmp_path / "m"),
                             "--ops", "standard", "--max-context", "32"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert Manifest.read(tmp_path / "m").op_set == "standard"


def test_export_failure_exits_1_with_the_reason(tmp_path):
    result = parley("export", tmp_path / "nowhere", tmp_path / "model")
    assert result.returncode == 1
    assert "parley export: error:" in result.stderr and "not a folder" in result.stderr
    assert not (tmp_path / "model").exists()


def test_usage_errors_exit_2():
    assert parley("export").returncode == 2
    assert parley().returncode == 2


@pytest.mark.parametrize("layers,experts,total,active", [(24, 32, 20_914_757_184, 3_608_307_264),
                                                          (36, 128, 116_829_156_672, 5_132_849_472)])
def test_inspect_counts_match_openais_published_gpt_oss_sizes(tmp_path, layers, experts, total, active):
    """gpt-oss-20b: 20.91B total, 3.61B active; 120b: 116.83B, 5.13B (OpenAI's model card)."""
    from transformers import GptOssConfig

    cfg = GptOssConfig(num_hidden_layers=layers, num_local_experts=experts).to_dict()
    cfg["layer_types"] = cfg["layer_types"][:layers]
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    result = parley("inspect", tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)["parameters"]
    assert counts["total"] == total and counts["active_per_token"] == active
    table = parley("inspect", tmp_path).stdout
    assert f"{total:,}" in table and "active per token" in table


def test_a_max_context_too_small_to_verify_is_a_clear_error_up_front(tiny_checkpoint, tmp_path):
    # the tiny checkpoint's window is 5: verification runs an 11-token prompt and 8 decode steps
    result = parley("export", tiny_checkpoint, tmp_path / "model", "--max-context", 16)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--max-context 16 is too small to verify" in result.stderr and "at least 20" in result.stderr
    assert not (tmp_path / "model").exists()
    assert parley("export", tiny_checkpoint, tmp_path / "model", "--max-context", 20).returncode == 0


def test_inspect_states_the_memory_to_serve_a_model_folder(tiny_model):
    result = parley("inspect", tiny_model)
    assert result.returncode == 0, result.stderr
    assert "memory to serve it" in result.stdout and "KiB per token" in result.stdout
    data = json.loads(parley("inspect", tiny_model, "--json").stdout)
    assert data["memory"]["total_bytes"] == (data["memory"]["weights_bytes"] + data["memory"]["batch_kv_bytes"]
                                             + data["memory"]["conversation_cache_cap"])


def test_inspect_a_checkpoint_shows_the_memory_each_export_choice_would_take(tmp_path):
    from export.synthetic import make_released_layout_checkpoint
    from export.weight_bytes import CHOICES

    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                 num_local_experts=4, num_experts_per_tok=2, intermediate_size=64, vocab_size=512, sliding_window=8)
    make_released_layout_checkpoint(tmp_path, shape)
    table = parley("inspect", tmp_path).stdout
    assert "memory to serve an export of it" in table and "--dtype float16 --dense int8" in table
    rows = json.loads(parley("inspect", tmp_path, "--json").stdout)["exports"]
    assert [r["flags"] for r in rows] == [flags for _, _, flags in CHOICES]
    assert all(r["total_bytes"] == r["weights_bytes"] + r["kv_cache_bytes"] for r in rows)
    by_target = {r["target"]: r for r in rows}
    # float16 halves the KV cache; 4-bit experts and 8-bit dense weights shrink the weights
    assert by_target["GPU"]["kv_cache_bytes"] * 2 == by_target["CPU"]["kv_cache_bytes"]
    assert by_target["GPU, smallest"]["weights_bytes"] < by_target["GPU"]["weights_bytes"] < \
        by_target["GPU, 8-bit dense"]["weights_bytes"] < by_target["GPU, exact dense"]["weights_bytes"] < \
        by_target["CPU, exact"]["weights_bytes"]
    assert not any("mxfp4" in r["flags"] for r in rows)  # the runtime refuses MXFP4 folders today

"""Window caches: the sliding layers keep only their window's keys and values (GroupQueryAttention's
sliding_window_cache), checked against transformers over many windows' worth of tokens, and the one thing
such a cache cannot do, go back before its window, done through the conversation's snapshot."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from runtime.session import ModelSession
from tests.helpers.checkpoints import load_hf


@pytest.fixture(scope="module")
def full_cache_model(tiny_checkpoint, tmp_path_factory):
    from export.exporter import ExportOptions, export_model

    out = tmp_path_factory.mktemp("tiny-full-cache") / "model"
    export_model(tiny_checkpoint, out, ExportOptions(max_context=256, window_cache=False))
    return out


def test_the_default_export_keeps_the_sliding_layers_window_only(tiny_model):
    s = ModelSession(tiny_model)
    cfg, window = s.config, s.manifest.kv_cache.window
    assert window == cfg.sliding_window == 5
    cache = s.new_cache(batch=2, length=64)
    sliding = [n for n in range(cfg.num_hidden_layers) if cfg.is_sliding(n)]
    assert sliding and len(sliding) < cfg.num_hidden_layers
    for n in range(cfg.num_hidden_layers):
        assert cache.past(n)[0].shape() == [2, cfg.num_key_value_heads, 5 if n in sliding else 64, cfg.head_dim]
    graph = onnx.load(str(tiny_model / "model.onnx"), load_external_data=False).graph
    flagged = [n for n, node in enumerate(x for x in graph.node if x.op_type == "GroupQueryAttention")
               if any(a.name == "sliding_window_cache" and a.i == 1 for a in node.attribute)]
    assert flagged == sliding


def run_ragged(session: ModelSession, ids: np.ndarray, chunks: list[int], decode: int) -> np.ndarray:
    """Row 0 prefilled in uneven chunks (several longer than the window), rows 1 and 2 with prompts of 9 and 3
    tokens; then `decode` steps of all three rows at once: each run's logits, in order (the GPU check runs the
    same schedule on CUDA)."""
    from tools.experiments.gpu_check import ragged_window_runs

    return ragged_window_runs(session, ids, chunks, (9, 3), decode)


def test_window_cache_logits_equal_transformers_and_the_full_length_cache(tiny_model, full_cache_model,
                                                                           tiny_checkpoint):
    ids = np.random.default_rng(7).integers(20, 390, (3, 80))
    chunks, decode = [7, 13, 1, 1, 9, 2], 30
    windowed = run_ragged(ModelSession(tiny_model), ids, chunks, decode)
    full = run_ragged(ModelSession(full_cache_model), ids, chunks, decode)
    assert max(float(np.abs(a - b).max()) for a, b in zip(windowed, full)) < 1e-4
    # transformers on each row's whole sequence at once: the logits after every token our runs ended on
    hf = load_hf(tiny_checkpoint)
    with torch.no_grad():
        rows = [hf(torch.tensor(ids[row:row + 1, :length + decode])).logits[0].numpy()
                for row, length in enumerate([sum(chunks), 9, 3])]
    ends = list(np.cumsum(chunks) - 1)
    expected = [rows[0][e] for e in ends] + [rows[1][8], rows[2][2]]
    for t in range(decode):
        expected += [rows[0][sum(chunks) + t], rows[1][9 + t], rows[2][3 + t]]
    assert len(expected) == len(windowed)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(windowed, expected))
    assert worst < 1e-3, worst
    assert sum(chunks) + decode > 10 * 5  # ten windows' worth of evictions on row 0


def test_a_window_cache_goes_back_before_its_window_only_through_a_snapshot(tiny_model):
    s = ModelSession(tiny_model)
    rng = np.random.default_rng(3)
    prompt, more, probe = rng.integers(20, 390, (1, 12)), rng.integers(20, 390, (1, 6)), np.array([[77]])
    cold = s.new_cache(length=64)
    s.run(prompt, cold)
    expected = s.run(probe, cold)

    cache, snapshot = s.new_cache(length=64), s.new_cache(length=1)
    s.run(prompt[:, :4], cache)
    assert cache.can_truncate(0, 2)  # nothing evicted yet: a length is enough
    s.run(prompt[:, 4:], cache)
    snapshot.copy_window_from(cache)
    assert snapshot.lengths[0] == 12
    s.run(more, cache)
    assert cache.can_truncate(0, 18) and not cache.can_truncate(0, 12)
    with pytest.raises(ValueError, match="hold only the last 5"):
        s.new_cache(length=64).copy_rows_from(cache, 12)

    cut = s.new_cache(length=64)  # the length alone: the sliding layers still hold positions 13..17
    cut.copy_rows_from(cache, 18)
    cut.lengths[0] = 12
    assert not np.allclose(s.run(probe, cut), expected, atol=1e-4)

    cache.copy_window_from(snapshot)  # the full-length layers hold the prompt already
    assert cache.lengths[0] == 12
    assert np.allclose(s.run(probe, cache), expected, atol=1e-5)


def test_snapshots_are_refused_between_caches_of_other_layouts(tiny_model, full_cache_model):
    windowed, full = ModelSession(tiny_model).new_cache(length=8), ModelSession(full_cache_model).new_cache(length=8)
    with pytest.raises(ValueError, match="different models"):
        windowed.copy_window_from(full)


def test_the_gpu_checks_full_cache_twin_is_the_full_cache_export(tiny_model, full_cache_model, tmp_path):
    """tools/experiments/full_cache_folder.py (what a GPU session measures the window cache against) makes what
    `parley export --full-sliding-cache` makes, from the windowed folder's graph and weights."""
    from tools.experiments.full_cache_folder import full_cache_folder

    derived = full_cache_folder(tiny_model, tmp_path / "derived")
    ids = np.random.default_rng(5).integers(20, 390, (3, 80))
    a = run_ragged(ModelSession(derived), ids, [7, 13, 1], 12)
    b = run_ragged(ModelSession(full_cache_model), ids, [7, 13, 1], 12)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert ModelSession(derived).new_cache(length=64).positions == [64] * 4


def test_a_restored_snapshot_survives_the_cache_growing_for_the_next_prompt(tiny_model):
    """Engine.prepare_cache: the prompt leaves the cache at the last prompt's end (its window snapshot), and
    needs a bigger cache than the conversation has: the restored window moves to the bigger one."""
    from runtime.conversations import Conversation, common_prefix
    from runtime.engine import Engine, EngineOptions
    from runtime.prefix_caches import PrefixKey

    eng = Engine(tiny_model, {}, EngineOptions(min_cache_length=16))
    s = eng.session
    ids = [int(i) for i in np.random.default_rng(4).integers(20, 390, 40)]
    conv = Conversation("brenna", "grow", cache=s.new_cache(length=16), tokens=ids[:12])
    s.run(np.array([ids[:12]]), conv.cache)
    eng.snapshot_window(conv)  # the last prompt's end
    s.run(np.array([ids[12:16]]), conv.cache)  # its reply: the window moved on
    conv.tokens = ids[:16]
    prompt = ids[:12] + ids[20:34]  # the next prompt leaves the cache where the last one ended
    reuse = eng.reusable(conv, common_prefix(conv.tokens, prompt))
    assert reuse == 12 and not conv.cache.can_truncate(0, reuse)
    assert eng.prepare_cache(conv, prompt, PrefixKey(()), 8, reuse) == 12  # no NPC prefix
    assert conv.cache.length == 64 and conv.cache.lengths[0] == 12  # grown: 26 + 8 rows do not fit 16
    got = s.run(np.array([prompt[12:]]), conv.cache)
    cold = s.new_cache(length=64)
    assert np.allclose(got, s.run(np.array([prompt]), cold), atol=1e-5)


def test_a_window_cache_that_has_not_evicted_yet_copies_any_first_tokens(tiny_model):
    s = ModelSession(tiny_model)
    ids = np.random.default_rng(6).integers(20, 390, (1, 9))
    src, dst, cold = s.new_cache(length=16), s.new_cache(length=16), s.new_cache(length=16)
    s.run(ids[:, :4], src)  # 4 tokens, inside the window of 5: nothing evicted
    dst.copy_rows_from(src, 2)
    assert np.allclose(s.run(ids[:, 2:9], dst), s.run(ids, cold), atol=1e-5)
    with pytest.raises(ValueError, match="hold only"):
        dst.copy_rows_from(cold, 3)  # 9 tokens ran there: its sliding layers moved past the third

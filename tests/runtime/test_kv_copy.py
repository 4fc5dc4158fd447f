"""KV rows copied by the device graph (runtime/kv_copy.py, what a GPU runs) equal the host copy, on real
exported models; the shipped copy graphs are the ones export/kv_copy_graph.py builds."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.kv_copy import GRAPHS
from runtime.session import ModelSession


def test_the_shipped_copy_graphs_are_what_the_builder_makes():
    from export.kv_copy_graph import DTYPES, kv_copy_bytes

    for dtype in DTYPES:
        assert (GRAPHS / f"kv_copy_{dtype}.onnx").read_bytes() == kv_copy_bytes(dtype), \
            f"run `python -m export.kv_copy_graph`: runtime/graphs/kv_copy_{dtype}.onnx is stale"


@pytest.fixture(scope="module")
def float16_model(tiny_checkpoint, tmp_path_factory):
    from export.exporter import ExportOptions, export_model

    out = tmp_path_factory.mktemp("tiny-f16") / "model"
    export_model(tiny_checkpoint, out, ExportOptions(max_context=256, dtype="float16"))
    return out


@pytest.fixture(scope="module")
def full_cache_model(tiny_checkpoint, tmp_path_factory):
    """Sliding layers spanning the whole context, as folders exported before window caches."""
    from export.exporter import ExportOptions, export_model

    out = tmp_path_factory.mktemp("tiny-full-cache") / "model"
    export_model(tiny_checkpoint, out, ExportOptions(max_context=256, window_cache=False))
    return out


def live_positions(cache, row: int, rows: int) -> list[np.ndarray]:
    return [cache._array(buf)[row, :, :rows].copy() for pair in cache._bufs[cache._current] for buf in pair]


@pytest.mark.parametrize("which", ["tiny_model", "float16_model", "full_cache_model"])
def test_device_path_copies_equal_host_copies(which, request):
    s = ModelSession(request.getfixturevalue(which))
    rng = np.random.default_rng(0)
    src = s.new_cache(batch=2, length=64)
    s.run(rng.integers(0, 200, (2, 23)), src)
    cases = [(48, 23, 1, 2), (64, 23, 0, 0), (24, 23, 1, 1)]
    if not s.manifest.kv_cache.window:  # only full-length sliding layers can be cut back to 17 of 23 tokens
        cases.append((64, 17, 0, 0))
    for dst_length, rows, src_row, dst_row in cases:
        host, device = s.new_cache(batch=3, length=dst_length), s.new_cache(batch=3, length=dst_length)
        host.copy_rows_from(src, rows, src_row=src_row, dst_row=dst_row, on_device=False)
        device.copy_rows_from(src, rows, src_row=src_row, dst_row=dst_row, on_device=True)
        for a, b in zip(live_positions(host, dst_row, rows), live_positions(device, dst_row, rows)):
            assert np.array_equal(a, b)
        assert device.lengths.tolist() == host.lengths.tolist()
        ids = rng.integers(0, 200, (1, 1))
        assert np.array_equal(s.step(ids, host, dst_row).logits(), s.step(ids, device, dst_row).logits())


def test_a_row_moves_within_one_cache_on_the_device_path(tiny_model):
    """What the decode batch does when a reply leaves: the last row fills the hole."""
    s = ModelSession(tiny_model)
    pool = s.new_cache(batch=3, length=64)
    s.run(np.random.default_rng(1).integers(0, 200, (3, 11)), pool)
    expected = live_positions(pool, 2, 11)
    pool.copy_rows_from(pool, 11, src_row=2, dst_row=0, on_device=True)
    for a, b in zip(live_positions(pool, 0, 11), expected):
        assert np.array_equal(a, b)


@pytest.fixture(scope="module")
def standard_model(tiny_checkpoint, tmp_path_factory):
    """Standard op set: the cache keeps two buffers and swaps them every step."""
    from export.exporter import ExportOptions, export_model

    out = tmp_path_factory.mktemp("tiny-standard") / "model"
    export_model(tiny_checkpoint, out, ExportOptions(max_context=128, op_set="standard"))
    return out


@pytest.mark.parametrize("which", ["tiny_model", "standard_model"])
def test_a_device_copy_leaves_the_other_rows_alone_and_may_copy_a_row_onto_itself(which, request):
    s = ModelSession(request.getfixturevalue(which))
    pool = s.new_cache(batch=3, length=64)
    s.run(np.random.default_rng(2).integers(0, 200, (3, 9)), pool)
    s.run(np.random.default_rng(3).integers(0, 200, (3, 1)), pool)  # a ping-pong cache swaps buffers here
    before = [live_positions(pool, row, 10) for row in range(3)]
    pool.copy_rows_from(pool, 10, src_row=1, dst_row=1, on_device=True)
    pool.copy_rows_from(pool, 10, src_row=2, dst_row=0, on_device=True)
    after = [live_positions(pool, row, 10) for row in range(3)]
    for row, source in ((0, 2), (1, 1), (2, 2)):
        for a, b in zip(after[row], before[source]):
            assert np.array_equal(a, b), (row, source)


def test_copies_outside_the_caches_are_refused_not_written(tiny_model, float16_model):
    s = ModelSession(tiny_model)
    a, b = s.new_cache(batch=2, length=32), s.new_cache(batch=2, length=32)
    for src_row, dst_row in ((2, 0), (0, 2), (-1, 0)):
        with pytest.raises(ValueError, match="outside"):
            b.copy_rows_from(a, 4, src_row=src_row, dst_row=dst_row, on_device=True)
    other = ModelSession(float16_model).new_cache(batch=2, length=32)
    with pytest.raises(ValueError, match="different models"):
        b.copy_rows_from(other, 4, on_device=True)

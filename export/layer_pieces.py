"""The contrib graph run one part at a time: the embedding, each layer, the head, each its own small ONNX
model built by the same functions that compose the whole graph (graph_contrib.embed_part, layer_part,
head_part), so that the pieces in a row compute what the graph computes.

Memory holds one layer. A piece is written, run on every position (the prompt in one run, then each
further token alone, through that layer's KV cache: the prefill and decode paths of the graph), and
deleted before the next is built. The tokens are teacher-forced: a fixed continuation, so no layer needs
the ones after it to choose the next token.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto

from export.graph_common import GraphWeights, cache_dims, windowed
from export.graph_contrib import embed_part, head_part, layer_part, rope_tables
from export.onnx_builder import GraphBuilder
from runtime import manifest as m


def piece_session(folder: Path, name: str, build: Callable[[GraphBuilder], None],
                  provider: str = "CPUExecutionProvider") -> ort.InferenceSession:
    folder.mkdir(parents=True, exist_ok=True)
    g = GraphBuilder(folder / f"{name}.onnx.data")
    build(g)
    g.finish(folder / f"{name}.onnx", graph_name=name)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(folder / f"{name}.onnx"), so, providers=[provider])


def embed_piece(w: GraphWeights) -> Callable[[GraphBuilder], None]:
    """Builds the embedding and first norm alone: input ids -> (layer 0's normed input, the residual stream)."""
    hidden = ["batch", "sequence", w.cfg.hidden_size]

    def build(g: GraphBuilder) -> None:
        normed, residual = embed_part(g, w, g.input(m.INPUT_IDS, TensorProto.INT64, ["batch", "sequence"]))
        g.output(normed, w.elem_type, hidden)
        g.output(residual, w.elem_type, hidden)
    return build


def layer_piece(w: GraphWeights, n: int, taps: dict[str, str] | None = None) -> Callable[[GraphBuilder], None]:
    """Builds layer n alone: (normed, residual, seqlens_k, total length, past key/value) -> (the next layer's
    normed input, the residual stream, present key/value, then whatever `taps` names)."""
    cfg, elem = w.cfg, w.elem_type
    hidden = ["batch", "sequence", cfg.hidden_size]

    def build(g: GraphBuilder) -> None:
        ins = g.input("normed_in", elem, hidden), g.input("residual_in", elem, hidden)
        seqlens_k = g.input(m.SEQLENS_K, TensorProto.INT32, ["batch"])
        total = g.input(m.TOTAL_SEQ_LEN, TensorProto.INT32, [])
        cache = cache_dims(cfg, n, w.window_cache)
        g.input(m.past_key(n), elem, cache)
        g.input(m.past_value(n), elem, cache)
        out_normed, out_residual = layer_part(g, w, n, *ins, seqlens_k, total, rope_tables(g, w), taps)
        if out_normed == out_residual:  # the last layer has no next norm
            out_normed = g.op("Identity", [out_residual])
        g.output(out_normed, elem, hidden)
        g.output(out_residual, elem, hidden)
        g.output(m.present_key(n), elem, cache)
        g.output(m.present_value(n), elem, cache)
        for name in (taps or {}).values():
            g.output(name, elem, None)
    return build


def piece_cache_length(w: GraphWeights, n: int, length: int) -> int:
    """Layer n's cache positions for a run over `length` tokens: a windowed layer holds its window only."""
    return w.cfg.sliding_window if windowed(w.cfg, n, w.window_cache) else length


def run_layer(session: ort.InferenceSession, n: int, normed: np.ndarray, residual: np.ndarray, prompt: int,
              cfg, dtype, cache_length: int) -> tuple[np.ndarray, np.ndarray, list[list[np.ndarray]]]:
    """Layer n over every position: the prompt at once, then one token at a time through the KV cache.
    Returns its normed and residual outputs, and each run's tapped outputs (after the first four).
    cache_length: the positions of the layer's cache (piece_cache_length)."""
    total = normed.shape[1]
    past = np.zeros((1, cfg.num_key_value_heads, cache_length, cfg.head_dim), dtype=dtype)
    past_k, past_v = past, past.copy()
    outs_normed, outs_residual, tapped = [], [], []
    for start, stop in [(0, prompt)] + [(i, i + 1) for i in range(prompt, total)]:
        feeds = {"normed_in": normed[:, start:stop], "residual_in": residual[:, start:stop],
                 m.SEQLENS_K: np.array([stop - 1], dtype=np.int32), m.TOTAL_SEQ_LEN: np.array(stop, dtype=np.int32),
                 m.past_key(n): past_k, m.past_value(n): past_v}
        out_normed, out_residual, past_k, past_v, *taps = session.run(None, feeds)
        outs_normed.append(out_normed)
        outs_residual.append(out_residual)
        tapped.append(taps)
    return np.concatenate(outs_normed, axis=1), np.concatenate(outs_residual, axis=1), tapped


def layered_logits(w: GraphWeights, ids: list[int], prompt: int, workdir: Path, cache_length: int | None = None,
                   on_layer: Callable[[int], None] | None = None, progress=None,
                   on_piece: Callable[[Path], None] | None = None) -> list[np.ndarray]:
    """The graph's logits at the prompt's last position and at every later one, a piece at a time, with a
    KV cache of cache_length positions (as long as the tokens by default). on_piece sees each piece's
    model file (its weights beside it) after the piece ran, before it is deleted."""

    def done(name: str) -> None:
        if on_piece is not None:
            on_piece(workdir / name / f"{name}.onnx")
        shutil.rmtree(workdir / name)

    cfg, dtype, elem = w.cfg, w.np_dtype, w.elem_type
    hidden = ["batch", "sequence", cfg.hidden_size]

    session = piece_session(workdir / "embed", "embed", embed_piece(w))
    normed, residual = session.run(None, {m.INPUT_IDS: np.array([ids], dtype=np.int64)})
    del session
    done("embed")
    for n in range(cfg.num_hidden_layers):
        session = piece_session(workdir / f"layer{n}", f"layer{n}", layer_piece(w, n))
        normed, residual, _ = run_layer(session, n, normed, residual, prompt, cfg, dtype,
                                        piece_cache_length(w, n, cache_length or len(ids)))
        del session
        done(f"layer{n}")
        if on_layer is not None:
            on_layer(n)
        if progress is not None:
            progress.update(1)

    def head(g: GraphBuilder) -> None:
        g.output(head_part(g, w, g.input("residual_in", elem, hidden)), TensorProto.FLOAT, ["batch", cfg.vocab_size])

    session = piece_session(workdir / "head", "head", head)
    logits = [session.run(None, {"residual_in": residual[:, i:i + 1]})[0][0] for i in range(prompt - 1, len(ids))]
    del session
    done("head")
    return logits

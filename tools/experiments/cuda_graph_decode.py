"""Decode steps replayed as one CUDA graph: the experiment before the runtime uses them (issue 13).

On an H100 a one-row decode step of the gpt-oss-20b-shaped folder runs at about 20% of the HBM floor:
it is launch-bound (docs/performance.md, "GPU decode against the HBM floor"). onnxruntime's CUDA provider
can capture a run as a CUDA graph and replay it (`enable_cuda_graph`), if every run of that graph binds the
same device addresses with the same shapes. A decode step can: the KV cache is preallocated and updated in
place (contrib graphs), and GroupQueryAttention reads each row's length from `seqlens_k` on the device. So
`StaticDecode` binds one set of buffers for a batch of `rows` and only rewrites their contents between
steps; prompts run outside any graph (`gpu_graph_id` -1), each batch size is its own graph (its id).

    python -m tools.experiments.cuda_graph_decode FOLDER [--rows 1,8] [--steps 64] [--out OUT.json]

runs greedy decoding both ways on the same prompts: `ModelSession.step` (today's path) and `StaticDecode`
in a second session of the folder with CUDA graphs on (on a GPU; on a CPU the same bindings without a
graph, which is what tests/runtime/test_static_decode.py checks), and prints whether the tokens are equal
and the tokens/s of each, medians of --repeats.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime import manifest as m
from runtime.session import ModelSession, SessionOptions

GRAPH_ID = "gpu_graph_id"  # onnxruntime's run option: which captured graph a run replays; -1: none


def graph_session(folder: Path, provider: str, cuda_graph: bool) -> ModelSession:
    """A ModelSession of the folder whose runs are not captured unless they ask for a graph id (its own
    steps, the prompts, ask for none), with CUDA graphs on when asked and on CUDA."""
    ms = ModelSession(folder, SessionOptions(provider=provider))
    if cuda_graph and ms.device == "cuda":
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.add_session_config_entry("session.use_device_allocator_for_initializers", "1")
        providers = ms.session.get_providers()
        options = [dict(ms.session.get_provider_options()[p]) for p in providers]
        options[0]["enable_cuda_graph"] = "1"
        ms.session = ort.InferenceSession(str(ms.folder / ms.manifest.graph_file), so, providers=providers,
                                          provider_options=options)
    ms.run_options.add_run_config_entry(GRAPH_ID, "-1")
    return ms


class StaticDecode:
    """One-token decode steps for all `cache.batch` rows of an in-place cache, through bindings made once."""

    def __init__(self, ms: ModelSession, cache, graph_id: int | None = None):
        if not cache.in_place:
            raise ValueError("a static decode needs an in-place (contrib op set) cache")
        self.ms, self.cache, self.rows = ms, cache, cache.batch
        device, dev_id = ms.device, ms.device_id
        outputs = {o.name: o for o in ms.session.get_outputs()}

        def value(shape, dtype):
            return ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, device, dev_id)

        def dtype_of(name):
            return {"tensor(float)": np.float32, "tensor(float16)": np.float16,
                    "tensor(int64)": np.int64}[outputs[name].type]

        self.input_ids = value([self.rows, 1], np.int64)
        self.seqlens = value([self.rows], np.int32)
        self.total = ort.OrtValue.ortvalue_from_numpy(np.zeros((), dtype=np.int32))  # a CPU input of GQA
        k = outputs[m.TOP_IDS].shape[1]
        self.top_ids = value([self.rows, k], np.int64)
        b = self.binding = ms.session.io_binding()
        b.bind_ortvalue_input(m.INPUT_IDS, self.input_ids)
        b.bind_ortvalue_input(m.SEQLENS_K, self.seqlens)
        b.bind_ortvalue_input(m.TOTAL_SEQ_LEN, self.total)
        b.bind_ortvalue_output(m.LOGITS, value([self.rows, ms.config.vocab_size], dtype_of(m.LOGITS)))
        b.bind_ortvalue_output(m.TOP_VALUES, value([self.rows, k], dtype_of(m.TOP_VALUES)))
        b.bind_ortvalue_output(m.TOP_IDS, self.top_ids)
        cache.bind_rows(b, device, dev_id, 0, self.rows)
        self.run_options = ort.RunOptions()
        self.run_options.add_run_config_entry(GRAPH_ID, str(graph_id if graph_id is not None else self.rows))

    def step(self, tokens: np.ndarray) -> np.ndarray:
        """Append one token to every row; the greedy next token of each row."""
        after = self.cache.lengths + 1
        if int(after.max()) > self.cache.length:
            raise ValueError(f"context full: {int(after.max())} tokens exceed the cache length {self.cache.length}")
        self.input_ids.update_inplace(np.ascontiguousarray(tokens, dtype=np.int64).reshape(self.rows, 1))
        self.seqlens.update_inplace((after - 1).astype(np.int32))
        self.total.update_inplace(np.array(after.max(), dtype=np.int32))
        self.ms.session.run_with_iobinding(self.binding, self.run_options)
        self.cache.lengths[:] = after
        return self.top_ids.numpy()[:, 0].copy()  # on the CPU numpy() is a view of the bound output


def prompts(vocab: int, rows: int, seed: int) -> list[np.ndarray]:
    """Ragged prompts of random ids (the model's own special tokens do not matter for timing or equality)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(10, vocab, size=12 + 5 * r, dtype=np.int64) for r in range(rows)]


def prefill(ms: ModelSession, cache, rows_prompts: list[np.ndarray]) -> np.ndarray:
    first = [ms.step(p.reshape(1, -1), cache, r).candidates()[1][0, 0] for r, p in enumerate(rows_prompts)]
    return np.array(first, dtype=np.int64)


def greedy_plain(ms: ModelSession, rows_prompts: list[np.ndarray], steps: int, length: int):
    cache = ms.new_cache(batch=len(rows_prompts), length=length)
    tokens = prefill(ms, cache, rows_prompts)
    out, start = [tokens], time.perf_counter()
    for _ in range(steps):
        tokens = ms.step(tokens.reshape(-1, 1), cache).candidates()[1][:, 0]
        out.append(tokens)
    return np.stack(out, axis=1), len(rows_prompts) * steps / (time.perf_counter() - start)


def greedy_static(ms: ModelSession, rows_prompts: list[np.ndarray], steps: int, length: int):
    cache = ms.new_cache(batch=len(rows_prompts), length=length)
    tokens = prefill(ms, cache, rows_prompts)
    decode = StaticDecode(ms, cache)
    out, start = [tokens], time.perf_counter()
    for _ in range(steps):
        tokens = decode.step(tokens)
        out.append(tokens)
    return np.stack(out, axis=1), len(rows_prompts) * steps / (time.perf_counter() - start)


def compare(folder: Path, provider: str, rows_list: list[int], steps: int, repeats: int) -> dict:
    plain = ModelSession(folder, SessionOptions(provider=provider))
    graphed = graph_session(folder, provider, cuda_graph=True)
    result = {"folder": str(folder), "device": plain.device,
              "cuda_graph": graphed.device == "cuda", "rows": {}}
    length = 64 + 5 * max(rows_list) + steps
    for rows in rows_list:
        entry: dict = {"plain_tok_s": [], "static_tok_s": [], "tokens_equal": []}
        for rep in range(repeats):
            rows_prompts = prompts(plain.config.vocab_size, rows, seed=rep)
            a, plain_rate = greedy_plain(plain, rows_prompts, steps, length)
            b, static_rate = greedy_static(graphed, rows_prompts, steps, length)
            entry["plain_tok_s"].append(round(plain_rate, 2))
            entry["static_tok_s"].append(round(static_rate, 2))
            entry["tokens_equal"].append(bool(np.array_equal(a, b)))
            if not np.array_equal(a, b):
                entry.setdefault("first_difference", [int(x) for x in np.argwhere(a != b)[0]])
        entry["speed_up"] = round(statistics.median(entry["static_tok_s"]) / statistics.median(entry["plain_tok_s"]), 3)
        result["rows"][rows] = entry
        print(f"{rows} rows: today's path {statistics.median(entry['plain_tok_s']):.1f} tok/s, static bindings"
              f"{' + CUDA graph' if result['cuda_graph'] else ''} {statistics.median(entry['static_tok_s']):.1f} "
              f"tok/s ({entry['speed_up']:.2f}x), tokens equal: {entry['tokens_equal']}", flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--provider", default="auto", choices=("auto", "cuda", "cpu"))
    ap.add_argument("--rows", default="1,8", help="batch sizes, comma-separated")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result = compare(args.folder, args.provider, [int(r) for r in args.rows.split(",")], args.steps, args.repeats)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0 if all(all(e["tokens_equal"]) for e in result["rows"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

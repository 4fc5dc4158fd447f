"""The decode batch's KV copies where they really run, on the GPU: a step of tools/experiments/gpu_check.py.

On the CPU a test holds the device copy path against numpy's copies (tests/runtime/test_kv_copy.py); on a
GPU the device path is the only one, so this holds it against the buffers read back to the host:
- copies between caches (a reply joining the pool: its conversation's rows copied in; leaving: copied
  back) and a row moved within one cache (the last row filling a hole), for several lengths and rows:
  the destination's live positions equal the source's, every other row is untouched, and the next step's
  logits on the copied row equal the source row's own next step;
- whole replies: continuous batching (replies joining every few steps, prompts prefilled in chunks
  between decode steps) against the same replies run one at a time, on the same GPU session, greedy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

QUESTIONS = [("brenna", "How much for a sword?"), ("marta", "Any rooms free tonight?"),
             ("aldric", "Can I leave town after dark?"), ("brenna", "Hi"), ("marta", "What's the latest rumour?"),
             ("aldric", "Who pays for wolf pelts?"), ("brenna", "Shield price?"), ("marta", "Goodbye!")]


def buffers(cache) -> list[np.ndarray]:
    """Every key and value buffer of the cache, read back to the host."""
    return [value.numpy() for pair in cache._bufs[cache._current] for value in pair]


def copies(folder: Path, provider: str) -> dict:
    from runtime.session import ModelSession, SessionOptions

    s = ModelSession(folder, SessionOptions(provider=provider))
    rng = np.random.default_rng(0)
    src = s.new_cache(batch=2, length=64)
    s.run(rng.integers(0, 200, (2, 23)), src)
    source = buffers(src)
    checked, worst = 0, 0.0
    for dst_length, rows, src_row, dst_row in [(48, 23, 1, 2), (64, 17, 0, 0), (24, 23, 1, 1)]:
        dst = s.new_cache(batch=3, length=dst_length)
        s.run(rng.integers(0, 200, (3, 5)), dst)  # rows hold something, so "untouched" means something
        before = buffers(dst)
        dst.copy_rows_from(src, rows, src_row=src_row, dst_row=dst_row)
        for got, old, want in zip(buffers(dst), before, source):
            assert np.array_equal(got[dst_row, :, :rows], want[src_row, :, :rows]), "copied positions differ"
            others = [r for r in range(3) if r != dst_row]
            # equal_nan: a window cache's rows past what it holds are unspecified, and memory onnxruntime's
            # arena hands out again can hold any bits there (NaN patterns too)
            assert np.array_equal(got[others], old[others], equal_nan=True), "a copy changed another row"
        token = rng.integers(0, 200, (1, 1))
        alone = s.new_cache(batch=1, length=64)
        alone.copy_rows_from(src, rows, src_row=src_row)
        a, b = s.step(token, dst, dst_row).logits(), s.step(token, alone).logits()
        worst = max(worst, float(np.abs(a - b).max()))
        checked += 1
    # a reply leaving: the last row fills the hole, within one cache
    pool = s.new_cache(batch=3, length=64)
    s.run(rng.integers(0, 200, (3, 11)), pool)
    before = buffers(pool)
    pool.copy_rows_from(pool, 11, src_row=2, dst_row=0)
    for got, old in zip(buffers(pool), before):
        assert np.array_equal(got[0, :, :11], old[2, :, :11]) and np.array_equal(got[1:], old[1:], equal_nan=True)
    return {"providers": s.session.get_providers()[:1], "copies_checked": checked + 1,
            "next_step_max_abs_logit_diff": worst}


def batched_replies(folder: Path, provider: str) -> dict:
    from runtime.decode_batch import DecodeBatch, run_to_end
    from runtime.engine import Engine, EngineOptions, FinalDelta, ReplyRequest
    from runtime.profiles import load_profiles
    from runtime.sampler import GREEDY
    from runtime.session import SessionOptions

    npcs = load_profiles(Path("npc_profiles")).npcs
    engine = Engine(folder, npcs, EngineOptions(session=SessionOptions(provider=provider)))

    def request(i: int) -> ReplyRequest:
        npc, text = QUESTIONS[i]
        return ReplyRequest(npc=npc, text=text, sampling=GREEDY, deadline_ms=60_000, request_id=f"r{i}")

    alone = {f"r{i}": list(engine.reply(request(i)))[-1] for i in range(len(QUESTIONS))}
    out = {}
    for max_batch, join_every, chunk in [(8, 0, 128), (4, 3, 7)]:
        batch = DecodeBatch(engine, max_batch=max_batch, prefill_chunk=chunk)
        events = run_to_end(batch, [request(i) for i in range(len(QUESTIONS))], join_every)
        same = sum(evs[-1].tokens == alone[rid].tokens for rid, evs in events.items())
        streamed = sum("".join(e.text for e in evs if isinstance(e, FinalDelta)) == alone[rid].text
                       for rid, evs in events.items())
        out[f"max_batch {max_batch}, join every {join_every or 'at once'}, prefill chunk {chunk}"] = {
            "tokens_identical": f"{same}/{len(QUESTIONS)}", "streamed_text_identical": f"{streamed}/{len(QUESTIONS)}",
            "rows_per_step": round(batch.rows_stepped / max(batch.steps_run, 1), 2)}
    out["examples"] = [alone[f"r{i}"].text for i in range(3)]
    return out


def run(folder: Path, provider: str) -> dict:
    return {"kv copies": copies(folder, provider), "batched vs alone": batched_replies(folder, provider)}

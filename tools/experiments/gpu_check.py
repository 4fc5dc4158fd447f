"""The CUDA path, checked on a lent NVIDIA GPU (../shared/docs/gpu.md); the figures go to docs/performance.md.

Here, on any machine with the export extra (torch):

    .venv/bin/python -m tools.experiments.gpu_check prepare .gpu/demo

rounds the demo model's experts to MXFP4 (export/mxfp4_checkpoint.py) and exports these folders of it:
fp4-f16 (`--dtype float16 --experts mxfp4`: no CPU kernel; wrong on CUDA with onnxruntime-gpu 1.31.1, and
served here only through SessionOptions(experimental_mxfp4=True)), twin-f32 and twin-f16
(`--experts float`: exactly the same values, served anywhere), int4-f16 (`--experts int4`) and int4d-f16
(`--dense int4` too), and fp4swap-f16 (fp4-f16 with its nibbles swapped).

On the GPU machine (onnxruntime-gpu, with its CUDA libraries on LD_LIBRARY_PATH; no torch needed but for
the bandwidth figure):

    python -m tools.experiments.gpu_check run --demo .gpu/demo [--full FOLDER] --out OUT

prints each step and keeps OUT/gpu.json up to date:
- the environment: providers, versions, nvidia-smi; the device-to-device copy bandwidth (torch, in a child
  process, so its memory is gone before onnxruntime's is counted);
- each demo folder on CUDA against its twin on the CPU: logits teacher-forced on the CPU's greedy
  continuation of an NPC prompt (max |diff|, argmax agreement), a window cache over several windows of
  evictions (chunked prefill, a ragged batch), free-running greedy NPC replies through the
  engine (identical replies, and the free-form score), and the graph's nodes per provider with the Memcpy
  nodes per run (onnxruntime's profile: a host<->device copy per token would be a bug);
- a full-size folder: load time, GPU memory (nvidia-smi), time to first token for a 128-token prompt,
  decode tokens/s with 1 and 8 rows against the HBM floor and the 8-row ceiling; again under onnxruntime's
  memory cap (--gpu-mem-mb); 1 and 8 concurrent replies through a real `parley serve` (--serve).
Every step catches its own failure, so one broken step still leaves the others' figures.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

FOLDERS = {  # name: (source, export flags)
    "fp4-f16": ("mxfp4", ["--dtype", "float16", "--experts", "mxfp4"]),
    "twin-f32": ("twin", ["--experts", "float"]),
    "twin-f16": ("twin", ["--dtype", "float16", "--experts", "float"]),
    "int4-f16": ("mxfp4", ["--dtype", "float16", "--experts", "int4"]),
    # Its own check fails by a hair (max |logit diff| 0.71 against 0.6 on the CPU provider); it is here to
    # compare CUDA with the CPU on the same folder, which needs no torch reference.
    "int4d-f16": ("mxfp4", ["--dtype", "float16", "--experts", "int4", "--dense", "int4", "--no-verify"]),
    # The embedding table block-quantized too since the fifth session (GatherBlockQuantized): int8 as well.
    "int8d-f16": ("mxfp4", ["--dtype", "float16", "--experts", "int4", "--dense", "int8", "--no-verify"]),
    # Blocks of 64 (`--block-size 64`, eighth session): half the scales, the smallest GPU export.
    "int4d64-f16": ("mxfp4", ["--dtype", "float16", "--experts", "int4", "--dense", "int4", "--block-size", "64",
                              "--no-verify"]),
}
# Each GPU folder against CPU runs of the folders that hold the same values.
PAIRS = [("fp4-f16", "twin-f16"), ("fp4-f16", "twin-f32"), ("fp4swap-f16", "twin-f16"), ("twin-f16", "twin-f16"),
         ("twin-f32", "twin-f32"), ("int4-f16", "int4-f16"), ("int4d-f16", "int4d-f16"), ("int8d-f16", "int8d-f16"),
         ("int4d64-f16", "int4d64-f16")]
PROMPT = ("<|start|>system<|message|>You are Brenna, the blacksmith of Ashford.<|end|>"
          "<|start|>user<|message|>How much for a sword, and where can I sleep tonight?<|end|>"
          "<|start|>assistant")
START = time.monotonic()
GPU = "cuda"  # --provider cpu rehearses the script on a machine without a GPU


def log(msg: str) -> None:
    print(f"[gpu_check {time.monotonic() - START:6.1f}s] {msg}", flush=True)


def chosen(names: list[str] | None) -> list[str]:
    """The folders a run covers: --folders, else every one (the nibble-swapped folder goes with fp4-f16)."""
    every = [*FOLDERS, "fp4swap-f16"]
    if not names:
        return every
    unknown = sorted(set(names) - set(every))
    if unknown:
        raise SystemExit(f"gpu_check: unknown folders {unknown}; choose from {every}")
    return names


def prepare(out: Path, names: list[str] | None = None) -> None:
    from export.mxfp4_checkpoint import round_to_mxfp4

    src = Path(__file__).resolve().parents[1] / "demo" / "checkpoint"
    q, twin = round_to_mxfp4(src, out / "src")
    sources = {"mxfp4": q, "twin": twin}
    names = chosen(names)
    for name, (source, flags) in FOLDERS.items():
        if name not in names:
            continue
        log(f"export {name}: {' '.join(flags)}")
        subprocess.run([sys.executable, "-m", "runtime.cli", "export", str(sources[source]), str(out / name),
                        "--force", *flags], check=True)
    subprocess.run(["rm", "-rf", str(out / "src")], check=True)
    if "fp4swap-f16" in names and "fp4-f16" in names:
        swapped_nibbles(out / "fp4-f16", out / "fp4swap-f16")


def swapped_nibbles(src: Path, out: Path) -> None:
    """An experiment, not an export: the fp4-f16 folder with each MXFP4 byte's two codes swapped (high nibble
    first), in case onnxruntime's CUDA kernel reads them the other way round."""
    import shutil

    import onnx

    shutil.copytree(src, out, dirs_exist_ok=True)
    graph = onnx.load(out / "model.onnx", load_external_data=False).graph
    data = bytearray((out / "model.onnx.data").read_bytes())
    for t in graph.initializer:
        if t.name.endswith(".fp4"):
            info = {e.key: e.value for e in t.external_data}
            start, length = int(info.get("offset", 0)), int(info["length"])
            codes = np.frombuffer(bytes(data[start:start + length]), dtype=np.uint8)
            data[start:start + length] = (((codes & 0x0F) << 4) | (codes >> 4)).astype(np.uint8).tobytes()
    (out / "model.onnx.data").write_bytes(bytes(data))


class Results:
    def __init__(self, out: Path):
        self.path, self.data = out / "gpu.json", {}
        out.mkdir(parents=True, exist_ok=True)

    def step(self, name: str, fn, *args) -> None:
        log(f"--- {name}")
        try:
            self.data[name] = fn(*args)
        except Exception as exc:  # noqa: BLE001 - one broken step must leave the others' figures
            traceback.print_exc()
            self.data[name] = {"error": f"{type(exc).__name__}: {exc}"}
        log(json.dumps(self.data[name], default=str)[:3000])
        self.path.write_text(json.dumps(self.data, indent=2, default=str))


def nvidia_smi_used_mb() -> float:
    """The GPU's memory in use, every process's: onnxruntime's arena and weights included."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:  # a rehearsal on a machine without a GPU
        return float("nan")
    return float(out.split()[0])


def environment() -> dict:
    import onnxruntime as ort

    from runtime.session import cuda_usable

    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,memory.used,driver_version",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    return {"onnxruntime": ort.__version__, "providers": ort.get_available_providers(),
            "cuda_usable": cuda_usable(0), "nvidia_smi": smi, "python": sys.version.split()[0],
            "numpy": np.__version__}


BANDWIDTH = """
import json, torch
n = 1 << 30  # bytes
x = torch.empty(n // 4, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
torch.cuda.synchronize()
start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
start.record()
for _ in range(20): y.copy_(x)
end.record(); torch.cuda.synchronize()
print(json.dumps({"d2d_gb_s": 2 * 20 * n / (start.elapsed_time(end) / 1000) / 1e9,
                  "device": torch.cuda.get_device_name(), "torch": torch.__version__}))
"""


def bandwidth() -> dict:
    done = subprocess.run([sys.executable, "-c", BANDWIDTH], capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def session(folder: Path, provider: str):
    from runtime.session import ModelSession, SessionOptions

    return ModelSession(folder, SessionOptions(provider=provider, experimental_mxfp4=True))


def prompt_ids(folder: Path) -> np.ndarray:
    from tokenizers import Tokenizer

    return np.array(Tokenizer.from_file(str(folder / "tokenizer.json")).encode(PROMPT).ids, dtype=np.int64)


def teacher_forced(ms, prompt: np.ndarray, continuation: list[int]) -> np.ndarray:
    """Logits after the prompt and after each continuation token, one step at a time through the KV cache."""
    cache = ms.new_cache(length=len(prompt) + len(continuation) + 8)
    rows = [ms.run(prompt.reshape(1, -1), cache)[0]]
    for token in continuation[:-1]:
        rows.append(ms.run(np.array([[token]], dtype=np.int64), cache)[0])
    return np.stack(rows).astype(np.float32)


def greedy(ms, prompt: np.ndarray, steps: int) -> list[int]:
    cache = ms.new_cache(length=len(prompt) + steps + 8)
    tokens = [int(ms.run(prompt.reshape(1, -1), cache)[0].argmax())]
    while len(tokens) < steps:
        tokens.append(int(ms.run(np.array([[tokens[-1]]], dtype=np.int64), cache)[0].argmax()))
    return tokens


def pairs(names: list[str]) -> list[tuple[str, str]]:
    return [(a, b) for a, b in PAIRS if a in names and b in names]


def logits_against_cpu(demo: Path, names: list[str]) -> dict:
    prompt = prompt_ids(demo / names[0])
    out = {}
    for gpu_name, cpu_name in pairs(names):
        try:
            out[f"{gpu_name} on {GPU} vs {cpu_name} on cpu"] = logits_pair(demo, gpu_name, cpu_name, prompt)
        except Exception as exc:  # noqa: BLE001 - the other pairs still say something
            out[f"{gpu_name} on {GPU} vs {cpu_name} on cpu"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def logits_pair(demo: Path, gpu_name: str, cpu_name: str, prompt: np.ndarray) -> dict:
    cpu = session(demo / cpu_name, "cpu")
    reference = greedy(cpu, prompt, 48)
    expected = teacher_forced(cpu, prompt, reference)
    del cpu
    gpu = session(demo / gpu_name, GPU)
    got = teacher_forced(gpu, prompt, reference)
    return {"providers": gpu.session.get_providers()[:1],
            "max_abs_logit_diff": float(np.abs(got - expected).max()),
            "argmax_agree": f"{int((got.argmax(-1) == expected.argmax(-1)).sum())}/{len(reference)}",
            "free_running_greedy_equal": greedy(gpu, prompt, 48) == reference}


def ragged_window_runs(ms, ids: np.ndarray, chunks: list[int], prompts: tuple[int, int], decode: int) -> np.ndarray:
    """Row 0 prefilled in `chunks` (several windows' worth), rows 1 and 2 with shorter prompts, then `decode`
    steps of the three rows at once: the logits of every run, stacked (the window cache's evictions, chunked
    prefill past the window and a ragged batch, as tests/runtime/test_window_cache.py runs them on the CPU)."""
    cache = ms.new_cache(batch=3, length=sum(chunks) + decode + 8)
    out, start = [], 0
    for n in chunks:
        out.append(ms.step(ids[0:1, start:start + n], cache, first_row=0).logits()[0])
        start += n
    lengths = [start, *prompts]
    for row in (1, 2):
        out.append(ms.step(ids[row:row + 1, :lengths[row]], cache, first_row=row).logits()[0])
    for t in range(decode):
        out.extend(ms.step(np.array([[ids[row, lengths[row] + t]] for row in range(3)]), cache).logits())
    return np.stack(out).astype(np.float32)


def window_cache_against_cpu(demo: Path, names: list[str]) -> dict:
    """Each window-cache folder on CUDA against itself on the CPU, over many windows of evictions."""
    out = {}
    for name in names:
        try:
            cpu = session(demo / name, "cpu")
            window = cpu.manifest.kv_cache.window
            if not window:
                out[name] = "no window cache"
                continue
            ids = np.random.default_rng(0).integers(20, cpu.config.vocab_size - 20, (3, 4 * window + 80))
            plan = ([window - 28, 37, 1, window + 22, 2], (window + 12, 20), 64)
            expected = ragged_window_runs(cpu, ids, *plan)
            del cpu
            gpu = session(demo / name, GPU)
            got = ragged_window_runs(gpu, ids, *plan)
            out[name] = {"providers": gpu.session.get_providers()[:1], "window": window,
                         "tokens_row0": sum(plan[0]) + plan[2], "runs": len(got),
                         "max_abs_logit_diff": float(np.abs(got - expected).max()),
                         "argmax_agree": f"{int((got.argmax(-1) == expected.argmax(-1)).sum())}/{len(got)}"}
        except Exception as exc:  # noqa: BLE001 - the other folders still say something
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def engine_replies(demo: Path, lines: int, names: list[str]) -> dict:
    from runtime.engine import Engine, EngineOptions, ReplyRequest
    from runtime.profiles import load_profiles
    from runtime.sampler import GREEDY
    from runtime.session import SessionOptions
    from tools.demo import freeform

    npcs = load_profiles(Path("npc_profiles")).npcs
    chosen = [line for line in freeform.LINES if not line.before][:lines]

    def replies(name: str, provider: str) -> list[tuple[tuple[int, ...], str]]:
        engine = Engine(demo / name, npcs, EngineOptions(session=SessionOptions(provider=provider,
                                                                                experimental_mxfp4=True)))
        got = []
        for line in chosen:
            result = list(engine.reply(ReplyRequest(npc=line.npc, text=line.say, sampling=GREEDY,
                                                    deadline_ms=60_000)))[-1]
            got.append((result.tokens, result.text))
        return got

    runs, errors = {}, {}
    for name, provider in [("twin-f32", "cpu"), ("twin-f16", "cpu"), ("int4-f16", "cpu"), ("fp4-f16", GPU),
                           ("fp4swap-f16", GPU),
                           ("twin-f16", GPU), ("twin-f32", GPU), ("int4-f16", GPU), ("int4d-f16", "cpu"),
                           ("int4d-f16", GPU), ("int8d-f16", "cpu"), ("int8d-f16", GPU), ("int4d64-f16", "cpu"),
                           ("int4d64-f16", GPU)]:
        if name not in names:
            continue
        start = time.perf_counter()
        try:
            runs[(name, provider)] = replies(name, provider)
        except Exception as exc:  # noqa: BLE001 - the other folders still say something
            errors[f"{name} on {provider}"] = f"{type(exc).__name__}: {exc}"
            continue
        log(f"  {name} on {provider}: {len(chosen)} replies in {time.perf_counter() - start:.1f} s")
    out = {"lines": len(chosen), "errors": errors}
    for gpu_name, cpu_name in pairs(names):
        a, b = runs.get((gpu_name, GPU)), runs.get((cpu_name, "cpu"))
        if a and b:
            out[f"{gpu_name} on {GPU} vs {cpu_name} on cpu: identical replies"] = \
                f"{sum(x[0] == y[0] for x, y in zip(a, b))}/{len(chosen)}"
    for (name, provider), got in runs.items():
        scores = [freeform.score(line, text) for line, (_, text) in zip(chosen, got)]
        out[f"{name} on {provider}: right/wrong"] = f"{scores.count('right')}/{scores.count('wrong')}"
    out["examples (fp4-f16 on cuda)"] = [text for _, text in runs.get(("fp4-f16", GPU), [])[:3]]
    return out


def providers_and_copies(demo: Path, out: Path, names: list[str]) -> dict:
    """Which provider runs each node of a decode step, and how many Memcpy nodes a run has: the MXFP4
    folder's, else the one with the most kinds of quantized nodes."""
    import onnxruntime as ort

    name = next(n for n in ("fp4-f16", "int4d-f16", "int8d-f16", *names) if n in names)
    ms = session(demo / name, GPU)
    so = ort.SessionOptions()
    so.enable_profiling = True
    so.profile_file_prefix = str(out / "profile")
    ms.session = ort.InferenceSession(str(ms.folder / ms.manifest.graph_file), so,
                                      providers=ms.session.get_providers(),
                                      provider_options=[ms.session.get_provider_options()[p]
                                                        for p in ms.session.get_providers()])
    prompt = prompt_ids(demo / name)
    cache = ms.new_cache(length=256)
    ms.run(prompt.reshape(1, -1), cache)
    runs = 8
    for _ in range(runs):
        ms.run(np.array([[5]], dtype=np.int64), cache)
    events = json.loads(Path(ms.session.end_profiling()).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    by_provider: dict[str, dict[str, int]] = {}
    for e in nodes:
        ops = by_provider.setdefault(e["args"].get("provider", "?"), {})
        ops[e["args"]["op_name"]] = ops.get(e["args"]["op_name"], 0) + 1
    memcpy = sum(n for ops in by_provider.values() for op, n in ops.items() if op.startswith("Memcpy"))
    return {"folder": name, "runs_profiled": runs + 1, "node_runs_by_provider": by_provider,
            "memcpy_nodes_per_run": memcpy / (runs + 1)}


def full_size(folder: Path, gpu_mem_mb: int | None, arena: str | None = None, kv_arena: str = "own") -> dict:
    from export.bench.worker import prompt_ids as random_ids
    from runtime.session import ModelSession, SessionOptions

    if kv_arena == "default":  # the KV caches from onnxruntime's default arena, as before the sixth session
        import runtime.session as rs

        rs._register_kv_allocator = lambda device_id: None
    if arena:  # an experiment on onnxruntime's working memory: its CUDA arena grown by this strategy
        import runtime.session as rs

        plain = rs._providers
        rs._providers = lambda opts: [(p[0], {**p[1], "arena_extend_strategy": arena}) if isinstance(p, tuple)
                                      else p for p in plain(opts)]

    before = nvidia_smi_used_mb()
    start = time.perf_counter()
    ms = ModelSession(folder, SessionOptions(provider=GPU, gpu_mem_limit_mb=gpu_mem_mb))
    load_s = time.perf_counter() - start
    after_load = nvidia_smi_used_mb()
    vocab = ms.config.vocab_size
    cache = ms.new_cache()

    def next_token(ids: np.ndarray, row_cache, first_row: int = 0) -> np.ndarray:
        return ms.step(ids, row_cache, first_row).candidates()[1][:, 0]

    ttft = []
    for seed in range(4):
        cache.lengths[:] = 0
        ids = random_ids(128, seed, vocab).reshape(1, -1)
        t = time.perf_counter()
        next_token(ids, cache)
        ttft.append((time.perf_counter() - t) * 1000)
    decode = []
    for seed in range(3):
        cache.lengths[:] = 0
        token = next_token(random_ids(16, seed, vocab).reshape(1, -1), cache)
        t = time.perf_counter()
        for _ in range(32):
            token = next_token(token.reshape(1, 1).astype(np.int64), cache)
        decode.append(32 / (time.perf_counter() - t))
    batch = ms.new_cache(batch=8, length=1024)
    for r in range(8):
        next_token(random_ids(16, r, vocab).reshape(1, -1), batch, r)
    tokens = np.arange(8, dtype=np.int64).reshape(8, 1) + 1000
    batch8 = []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(16):
            tokens = next_token(tokens, batch).reshape(8, 1).astype(np.int64)
        batch8.append(8 * 16 / (time.perf_counter() - t))
    after_runs = nvidia_smi_used_mb()
    pool = ms.new_cache(batch=8)  # a decode batch of 8 at the export's whole context, as the server makes
    return {"load_s": load_s, "gpu_mem_before_mb": before, "gpu_mem_after_load_mb": after_load,
            "gpu_mem_after_runs_mb": after_runs, "gpu_mem_with_8_rows_of_max_context_mb": nvidia_smi_used_mb(),
            "pool_bytes_8_rows_max_context": pool.nbytes, "gpu_mem_limit_mb": gpu_mem_mb,
            "kv_cache_bytes_one_conversation": cache.nbytes, "kv_cache_bytes_8_rows_1024": batch.nbytes,
            "ttft_128_ms": statistics.median(ttft[1:]), "ttft_all_ms": ttft,
            "decode_tok_s": statistics.median(decode), "decode_all": decode,
            "batch8_tok_s": statistics.median(batch8), "batch8_all": batch8,
            "providers": ms.session.get_providers()[:1], "arena_extend_strategy": arena, "kv_arena": kv_arena}


MEMORY = """
import json, subprocess, onnxruntime as ort
def used():
    return float(subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                capture_output=True, text=True).stdout.split()[0])
before = used()
so = ort.SessionOptions()
so.log_severity_level = 3
for key, value in {config!r}.items():
    so.add_session_config_entry(key, value)
s = ort.InferenceSession({graph!r}, so, providers=[("CUDAExecutionProvider", {cuda!r})])
print(json.dumps({{"gpu_mem_before_mb": before, "gpu_mem_after_load_mb": used()}}))
"""
MEMORY_VARIANTS = {
    "default": ({}, {}),
    "initializers outside the arena": ({"session.use_device_allocator_for_initializers": "1"}, {}),
    "arena grows as requested": ({}, {"arena_extend_strategy": "kSameAsRequested"}),
    "both": ({"session.use_device_allocator_for_initializers": "1"}, {"arena_extend_strategy": "kSameAsRequested"}),
}


def memory_options(folder: Path) -> dict:
    """GPU memory after loading the folder under onnxruntime's allocator options, each in a fresh process."""
    from runtime.manifest import Manifest

    graph = str(folder / Manifest.read(folder).graph_file)
    out = {"weights_on_disk_mb": sum(f.stat().st_size for f in folder.iterdir()) / 2**20}
    for name, (config, cuda) in MEMORY_VARIANTS.items():
        code = MEMORY.format(config=config, graph=graph, cuda={"device_id": "0", **cuda})
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        out[name] = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else \
            {"error": done.stderr[-1500:]}
    return out


def floors(folder: Path, bw: dict, measured: dict) -> dict:
    from export.weight_bytes import active_bytes_per_token
    from tools.experiments.measure_model_folder import export_choice

    manifest, choice = export_choice(folder)
    bandwidth = bw["d2d_gb_s"] * 1e9
    one, eight = active_bytes_per_token(manifest.config, choice), active_bytes_per_token(manifest.config, choice, 8)
    floor, ceiling = bandwidth / one, 8 * bandwidth / eight
    return {"choice": choice.label(), "active_bytes_per_token": one, "floor_tok_s": floor,
            "decode_share_of_floor": measured["decode_tok_s"] / floor, "ceiling8_tok_s": ceiling,
            "batch8_share_of_ceiling": measured["batch8_tok_s"] / ceiling}


def run(args) -> None:
    results = Results(args.out)
    results.step("environment", environment)
    results.step("bandwidth", bandwidth)
    names = [n for n in chosen(args.folders) if (args.demo or args.kv or Path()).joinpath(n).exists()]
    if args.demo:
        results.step("demo logits, cuda vs cpu", logits_against_cpu, args.demo, names)
        results.step("demo window caches, cuda vs cpu", window_cache_against_cpu, args.demo, names)
        results.step("demo providers and copies", providers_and_copies, args.demo, args.out, names)
        results.step("demo engine replies, cuda vs cpu", engine_replies, args.demo, args.lines, names)
    if args.demo or args.kv:
        from tools.experiments import gpu_kv_check

        for name in [n for n in ("twin-f16", "int4-f16") if n in names]:
            results.step(f"demo {name}: kv copies and batching on {GPU}", gpu_kv_check.run,
                         (args.kv or args.demo) / name, GPU)
    if args.full:
        results.step("full size on cuda", full_size, args.full, None, args.arena, args.kv_arena)
        if "error" not in results.data["full size on cuda"] and "error" not in results.data["bandwidth"]:
            results.step("full size against the floor", floors, args.full, results.data["bandwidth"],
                         results.data["full size on cuda"])
        if args.memory_options:
            results.step("full size: GPU memory under allocator options", memory_options, args.full)
        if args.gpu_mem_mb:
            results.step(f"full size on cuda, --gpu-mem-mb {args.gpu_mem_mb}", full_size, args.full, args.gpu_mem_mb)
        if args.serve:
            from tools.experiments.measure_model_folder import concurrent

            results.step("full size through parley serve", concurrent, args.full, [1, 8], 32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="export the demo model's MXFP4 folders (here, with torch)")
    p.add_argument("out", type=Path)
    p.add_argument("--folders", nargs="+", help="only these folders (default: all)")
    r = sub.add_parser("run", help="measure on the GPU machine")
    r.add_argument("--demo", type=Path, help="the folders `prepare` made")
    r.add_argument("--kv", type=Path, help="the folders `prepare` made: only the KV copy and batching checks")
    r.add_argument("--full", type=Path, help="a full-size model folder exported with --dtype float16")
    r.add_argument("--gpu-mem-mb", type=int, help="onnxruntime's GPU memory cap for the full-size session")
    r.add_argument("--serve", action="store_true", help="also 1 and 8 concurrent replies through parley serve")
    r.add_argument("--memory-options", action="store_true",
                   help="also GPU memory after load under onnxruntime's allocator options, each in a fresh process")
    r.add_argument("--lines", type=int, default=24, help="free-form player lines per demo engine run")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--folders", nargs="+", help="only these demo folders (default: all that prepare made)")
    r.add_argument("--arena", choices=["kNextPowerOfTwo", "kSameAsRequested"],
                   help="the full-size session's CUDA arena growth (default: onnxruntime's)")
    r.add_argument("--kv-arena", choices=["own", "default"], default="own",
                   help="the KV caches from the runtime's own arena (as served) or onnxruntime's default one")
    r.add_argument("--provider", default="cuda", choices=["cuda", "cpu"], help="cpu: rehearse without a GPU")
    args = ap.parse_args()
    global GPU
    if args.command == "prepare":
        prepare(args.out, args.folders)
    else:
        GPU = args.provider
        run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

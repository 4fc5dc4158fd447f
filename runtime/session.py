"""An onnxruntime session over a model folder, with a KV cache that lives on the device.

The cache is a set of preallocated [batch, kv_heads, length, head_dim] buffers (a sliding layer's
only its window long, in folders exported with window caches) bound with IOBinding. Contrib graphs
update them in place; standard graphs write a fresh
tensor, so those caches keep two buffers and swap them (no reallocation per step).
Only the logits of the last position cross to the host.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from runtime import manifest as m
from runtime.kv_copy import KvRowCopier
from runtime.manifest import Manifest, ManifestError
from runtime.provider_fit import ModelLoadError, providers_for

log = logging.getLogger(__name__)

NP_DTYPES = {"float32": np.float32, "float16": np.float16}


@dataclass(frozen=True)
class SessionOptions:
    provider: str = "auto"  # "auto", "cuda" or "cpu"
    device_id: int = 0
    gpu_mem_limit_mb: int | None = None  # the game renders on the same GPU
    cpu_threads: int | None = None  # None: onnxruntime's default (all physical cores)
    experimental_mxfp4: bool = False  # serve MXFP4 experts on CUDA anyway (tools/experiments/gpu_check.py)


_CUDA_PROBED: dict[int, bool] = {}


def cuda_usable(device_id: int = 0) -> bool:
    """True when the CUDA provider can really run here; probed once, quietly.

    onnxruntime-gpu lists CUDAExecutionProvider even on machines without a GPU or CUDA
    libraries, and logs errors when it tries to load it: the probe silences its logger.
    """
    if device_id in _CUDA_PROBED:
        return _CUDA_PROBED[device_id]
    usable, why = False, "this onnxruntime has no CUDA provider"
    if "CUDAExecutionProvider" in ort.get_available_providers():
        _preload_cuda_libraries()
        ort.set_default_logger_severity(4)  # fatal only, for the probe
        try:
            _register_kv_allocator(device_id)
        except Exception as exc:  # noqa: BLE001 - only memory is at stake: the default arena serves then
            log.debug("CUDA allocator for KV caches not registered (%s)", exc)
        try:
            ort.OrtValue.ortvalue_from_shape_and_type([1], np.float32, "cuda", device_id)
            usable = True
        except Exception as exc:  # noqa: BLE001 - any failure means "not usable", which is the answer
            usable, why = False, f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        finally:
            ort.set_default_logger_severity(2)
    _CUDA_PROBED[device_id] = usable
    if not usable:  # said where a studio will see it: a player's GPU left idle is the slow path, silently
        log.info("the CUDA provider cannot run here (GPU %d: %s); the CPU provider serves. A GPU needs the NVIDIA "
                 "driver and the CUDA and cuDNN libraries onnxruntime %s was built for (docs/shipping.md)",
                 device_id, why, ort.__version__)
    return usable


def _preload_cuda_libraries() -> None:
    """Load CUDA and cuDNN from NVIDIA's pip packages when they are installed (`onnxruntime-gpu[cuda,cudnn]`:
    a game can ship them in its Python folder instead of asking players for a CUDA install). onnxruntime does
    not look there by itself. Its messages go to stderr: stdout carries the server's ready line."""
    if importlib.util.find_spec("nvidia") is None or not hasattr(ort, "preload_dlls"):
        return
    try:
        with contextlib.redirect_stdout(sys.stderr):
            ort.preload_dlls(directory="")
    except Exception as exc:  # noqa: BLE001 - the probe that follows says whether CUDA runs
        log.debug("preloading NVIDIA's CUDA packages failed: %s", exc)


def _register_kv_allocator(device_id: int) -> None:
    """The KV caches' device memory (OrtValues made outside any session) from an arena that grows by what is
    asked for. Without it onnxruntime's default arena doubles each time it grows: a decode pool of 8 x 4096
    tokens (1.5 GiB for gpt-oss-20b) took 2.0 GiB of an H100 that way, 1.5 GiB with this (docs/performance.md,
    "sixth session"). Sessions keep their own arenas (they use this one only with session.use_env_allocators).
    Before the first device allocation, since onnxruntime keeps the allocator it first made."""
    info = ort.OrtMemoryInfo("Cuda", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, device_id, ort.OrtMemType.DEFAULT)
    # OrtArenaCfg(max_mem=0: no limit, arena_extend_strategy=1: kSameAsRequested, defaults for the rest)
    ort.create_and_register_allocator_v2("CUDAExecutionProvider", info, {}, ort.OrtArenaCfg(0, 1, -1, -1))


def _providers(opts: SessionOptions) -> list:
    want = opts.provider
    if want not in ("auto", "cuda", "cpu"):
        raise ValueError(f"provider must be 'auto', 'cuda' or 'cpu', not {want!r}")
    if want == "cpu" or (want == "auto" and not cuda_usable(opts.device_id)):
        return ["CPUExecutionProvider"]
    if want == "cuda" and not cuda_usable(opts.device_id):
        raise ModelLoadError("the CUDA provider was requested but is not usable on this machine "
                             "(no NVIDIA GPU, driver or CUDA libraries); use provider 'auto' or 'cpu'")
    cuda = {"device_id": opts.device_id}
    if opts.gpu_mem_limit_mb:
        cuda["gpu_mem_limit"] = opts.gpu_mem_limit_mb * 1024 * 1024
    return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]


class KvCache:
    """Per-layer key/value buffers on the session's device, plus each row's length (tokens it holds).

    A layer's buffer is [batch, kv_heads, positions, head_dim]: `length` positions, or, for a sliding-window
    layer of a folder exported with a window cache, `window` positions that GroupQueryAttention keeps as
    the most recent ones at rows [0, min(tokens, window)). Such a layer cannot be cut back to fewer tokens
    once it has evicted any (`can_truncate`): a conversation keeps a snapshot of it at its prompt's end
    (`copy_window_from`) to go back to."""

    def __init__(self, session: "ModelSession", batch: int, length: int):
        cfg = session.config
        self._session = session
        self.batch, self.length = batch, length
        self.window = session.manifest.kv_cache.window
        self.lengths = np.zeros(batch, dtype=np.int32)
        layers = cfg.num_hidden_layers
        self.windowed = [bool(self.window) and cfg.is_sliding(n) for n in range(layers)]
        self.positions = [self.window if w else length for w in self.windowed]
        self.heads, self.head_dim = cfg.num_key_value_heads, cfg.head_dim
        dtype = NP_DTYPES[session.manifest.kv_cache.dtype]
        copies = 1 if session.manifest.kv_cache.in_place else 2

        self.on_cpu = session.device == "cpu"
        self._host: dict[int, np.ndarray] = {}  # on CPU the OrtValues wrap these arrays (by address)

        def buffer(positions: int) -> ort.OrtValue:
            shape = [batch, self.heads, positions, self.head_dim]
            if self.on_cpu:
                array = np.zeros(shape, dtype=dtype)
                value = ort.OrtValue.ortvalue_from_numpy(array)
                self._host[value.data_ptr()] = array
                return value
            return ort.OrtValue.ortvalue_from_shape_and_type(shape, dtype, session.device, session.device_id)

        self._bufs = [[(buffer(p), buffer(p)) for p in self.positions] for _ in range(copies)]
        self._current = 0
        self._decode_bindings: dict[tuple[int, int, int], "_StepBinding"] = {}  # (buffer set, first row, rows)
        self.dtype = dtype
        self.row_bytes = [self.heads * p * self.head_dim * np.dtype(dtype).itemsize for p in self.positions]
        self.nbytes = 2 * copies * batch * sum(self.row_bytes)

    def held(self, layer: int, tokens: int) -> int:
        """How many positions layer `layer` holds after `tokens` tokens (rows [0, held))."""
        return min(tokens, self.window) if self.windowed[layer] else tokens

    def can_truncate(self, row: int, tokens: int) -> bool:
        """Whether row `row` can be cut back to its first `tokens` tokens by its length alone: not once a
        windowed layer has evicted positions it would need (onnxruntime's rollback rule for a window cache
        whose capacity is the window)."""
        have = int(self.lengths[row])
        return tokens == have or (tokens < have and (not self.window or have <= self.window))

    def copy_rows_from(self, src: "KvCache", rows: int, src_row: int = 0, dst_row: int = 0,
                       on_device: bool | None = None) -> None:
        """Make batch row dst_row's first `rows` positions equal src's batch row src_row, and its length `rows`.

        On a GPU the copy stays on the device (runtime/kv_copy.py); on the CPU numpy copies the live positions.
        on_device=True takes the device path on the CPU too (tests check the two agree)."""
        if rows > self.length or rows > src.length:
            raise ValueError(f"cannot copy {rows} rows between caches of {src.length} and {self.length}")
        self._check_pair(src, src_row, dst_row)
        if src.window and not src.can_truncate(src_row, rows):
            raise ValueError(f"cannot copy the first {rows} of {int(src.lengths[src_row])} tokens: the sliding "
                             f"layers hold only the last {src.window} of what they ran (restore a window snapshot "
                             "first)")
        self._copy_layers(src, range(len(self.positions)), rows, src_row, dst_row, on_device)
        self.lengths[dst_row] = rows

    def copy_window_from(self, src: "KvCache", src_row: int = 0, dst_row: int = 0,
                         on_device: bool | None = None) -> None:
        """Make dst_row's windowed layers equal src_row's, and its length src_row's: a snapshot taken
        (into a small cache) or restored (over a row whose full-length layers hold those tokens already)."""
        self._check_pair(src, src_row, dst_row)  # the same window: the same windowed layers
        tokens = int(src.lengths[src_row])
        self._copy_layers(src, [n for n, w in enumerate(self.windowed) if w], tokens, src_row, dst_row, on_device)
        self.lengths[dst_row] = tokens

    def _check_pair(self, src: "KvCache", src_row: int, dst_row: int) -> None:
        if not (0 <= src_row < src.batch and 0 <= dst_row < self.batch):
            raise ValueError(f"batch rows {src_row} -> {dst_row} are outside caches of {src.batch} and {self.batch}")
        if (src.heads, src.head_dim, src.dtype, src.on_cpu, src.window) != \
                (self.heads, self.head_dim, self.dtype, self.on_cpu, self.window):
            raise ValueError("cannot copy rows between caches of different models or devices")

    def _copy_layers(self, src: "KvCache", layers, tokens: int, src_row: int, dst_row: int,
                     on_device: bool | None) -> None:
        dst_bufs, src_bufs = self._bufs[self._current], src._bufs[src._current]
        if on_device if on_device is not None else not (self.on_cpu and src.on_cpu):
            groups: dict[tuple[int, int, int], list[tuple[int, int]]] = {}
            for n in layers:
                key = (src.positions[n], self.positions[n], self.held(n, tokens))
                groups.setdefault(key, []).extend(
                    (src.row_pointer(n, source, src_row), self.row_pointer(n, dst, dst_row))
                    for dst, source in zip(dst_bufs[n], src_bufs[n]))
            for (src_len, dst_len, held), pairs in groups.items():
                self._session.kv_copier().copy(pairs, self.heads, self.head_dim, src_len, dst_len, held)
        else:
            for n in layers:
                held = self.held(n, tokens)
                for dst, source in zip(dst_bufs[n], src_bufs[n]):
                    self._array(dst)[dst_row, :, :held] = src._array(source)[src_row, :, :held]

    @property
    def in_place(self) -> bool:
        """One buffer per layer, updated in place (contrib graphs): a run may cover some rows only."""
        return len(self._bufs) == 1

    def bind_rows(self, binding, device: str, device_id: int, first_row: int, batch: int) -> None:
        """Bind rows first_row..first_row+batch-1 of every layer as the graph's past (read) and present
        (written) key/value tensors: the current buffer set and the next (one and the same in place)."""
        for n in range(len(self.positions)):
            shape = [batch, self.heads, self.positions[n], self.head_dim]
            (past_k, past_v), (present_k, present_v) = self.past(n), self.present(n)
            for in_name, out_name, past, present in ((m.past_key(n), m.present_key(n), past_k, present_k),
                                                     (m.past_value(n), m.present_value(n), past_v, present_v)):
                binding.bind_input(in_name, device, device_id, self.dtype, shape, self.row_pointer(n, past, first_row))
                binding.bind_output(out_name, device, device_id, self.dtype, shape,
                                    self.row_pointer(n, present, first_row))

    def row_pointer(self, layer: int, value: ort.OrtValue, row: int) -> int:
        """Address of batch row `row` of one of layer `layer`'s buffers: rows are contiguous, so rows a..b form
        a valid tensor."""
        return value.data_ptr() + row * self.row_bytes[layer]

    def _array(self, value: ort.OrtValue) -> np.ndarray:
        return self._host[value.data_ptr()]

    def past(self, layer: int) -> tuple[ort.OrtValue, ort.OrtValue]:
        return self._bufs[self._current][layer]

    def present(self, layer: int) -> tuple[ort.OrtValue, ort.OrtValue]:
        return self._bufs[(self._current + 1) % len(self._bufs)][layer]

    def advance(self) -> None:
        self._current = (self._current + 1) % len(self._bufs)


class ModelSession:
    def __init__(self, folder: Path | str, options: SessionOptions | None = None):
        self.folder = Path(folder)
        self.options = options or SessionOptions()
        self.manifest = Manifest.read(self.folder)
        self.config = self.manifest.config
        providers = providers_for(self.folder, self.manifest, self.options, _providers(self.options))
        so = ort.SessionOptions()
        so.log_severity_level = 3  # our own log line says what matters
        if providers[0] != "CPUExecutionProvider":
            # Weights in their own allocations rather than carved from the memory arena, which rounds each
            # up: a gpt-oss-20b-shaped int4 folder took 14.1 GiB of an H200 this way against 25.7 GiB (each
            # in a fresh process, CUDA context included). onnxruntime's gpu_mem_limit then bounds only its
            # working memory; the cap is checked against the weights above.
            so.add_session_config_entry("session.use_device_allocator_for_initializers", "1")
        if self.options.cpu_threads:
            so.intra_op_num_threads = self.options.cpu_threads
        try:
            self.session = ort.InferenceSession(str(self.folder / self.manifest.graph_file), so,
                                                providers=providers)
        except Exception as exc:  # onnxruntime raises several unrelated types
            raise ModelLoadError(f"{self.folder / self.manifest.graph_file}: onnxruntime could not load "
                                 f"the graph ({exc}); re-export the model folder") from exc
        names = {i.name for i in self.session.get_inputs()}
        missing = [n for n in self.manifest.inputs if n not in names]
        if missing:
            raise ManifestError(f"{self.folder}: the graph lacks inputs the manifest lists: {missing}")
        # Every graph run uses these: `terminate = True` aborts the runs in flight with an error, the way a
        # failing device would (the server's tests inject faults with it).
        self.run_options = ort.RunOptions()
        self.device = "cuda" if self.session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        self.device_id = self.options.device_id
        self._kv_copier: KvRowCopier | None = None
        log.info("model %s: %s, %d layers, op set %s, %s on %s", self.folder.name, self.manifest.dtype,
                 self.config.num_hidden_layers, self.manifest.op_set, self.session.get_providers()[0],
                 f"GPU {self.device_id}" if self.device == "cuda" else "CPU")

    def kv_copier(self) -> KvRowCopier:
        """The graph that copies cache rows on this session's device, made on first use."""
        if self._kv_copier is None:
            self._kv_copier = KvRowCopier(self.device, self.device_id, self.manifest.kv_cache.dtype,
                                          self.session.get_providers()[:1] if self.device == "cpu" else
                                          [("CUDAExecutionProvider", {"device_id": self.device_id})])
        return self._kv_copier

    @property
    def max_context(self) -> int:
        return self.manifest.kv_cache.max_context

    def new_cache(self, batch: int = 1, length: int | None = None) -> KvCache:
        length = length or self.max_context
        if not 0 < length <= self.max_context:
            raise ValueError(f"cache length {length} must be in 1..{self.max_context} (the export's max context)")
        return KvCache(self, batch, length)

    def run(self, input_ids: np.ndarray, cache: KvCache) -> np.ndarray:
        """Append input_ids [batch, T] to every row of the cache; return last-position logits [batch, vocab]."""
        return self.step(input_ids, cache).logits()

    def step(self, input_ids: np.ndarray, cache: KvCache, first_row: int = 0) -> "StepOutput":
        """Like run(), but the logits stay where they were computed until asked for.

        input_ids [k, T] runs on the cache's batch rows first_row..first_row+k-1 (a decode batch runs
        its k live rows; a prefill runs one row). With a standard-op-set (ping-pong) cache every step
        must cover all the rows whose contents matter, since only those reach the other buffer.
        """
        batch, t = input_ids.shape
        rows = slice(first_row, first_row + batch)
        if first_row < 0 or rows.stop > cache.batch:
            raise ValueError(f"rows {first_row}..{rows.stop - 1} are outside the cache's {cache.batch} rows")
        after = cache.lengths[rows] + t
        if int(after.max()) > cache.length:
            raise ValueError(f"context full: {int(after.max())} tokens exceed the cache length {cache.length}")
        # A decode step's bindings are made once per cache rows and kept with the cache (a 24-layer model
        # binds 96 cache buffers a step); a prompt's shape varies, so its bindings are made for it.
        key = (cache._current, first_row, batch)
        bound = cache._decode_bindings.get(key) if t == 1 else None
        if bound is None or bound.session is not self.session:  # a binding belongs to one session
            bound = _StepBinding(self, cache, first_row, batch)
            if t == 1:
                cache._decode_bindings[key] = bound
        out = bound.run(input_ids, after)
        cache.advance()
        cache.lengths[rows] = after
        return out


class _StepBinding:
    """One run's IOBinding over a cache's rows first_row..first_row+batch-1: the cache buffers bound once.
    The three small inputs are bound for every run (onnxruntime copies an input to the device that reads it
    when it is bound, so rewriting a bound host buffer would not reach a GPU), and the outputs are let go
    after each run (the binding would otherwise keep the last logits alive, and reuse them as the next run's
    buffers under an earlier step's StepOutput)."""

    def __init__(self, ms: ModelSession, cache: KvCache, first_row: int, batch: int):
        self.ms, self.session = ms, ms.session
        binding = self.binding = ms.session.io_binding()
        self._bind_outputs()  # first: get_outputs() lists them before the cache's
        cache.bind_rows(binding, ms.device, ms.device_id, first_row, batch)

    def _bind_outputs(self) -> None:
        # On a GPU the full logits stay on the device; the top-K candidates come to the host.
        self.binding.bind_output(m.LOGITS, self.ms.device, self.ms.device_id)
        self.binding.bind_output(m.TOP_VALUES)
        self.binding.bind_output(m.TOP_IDS)

    def run(self, input_ids: np.ndarray, after: np.ndarray) -> "StepOutput":
        b = self.binding
        b.bind_cpu_input(m.INPUT_IDS, np.ascontiguousarray(input_ids, dtype=np.int64))
        b.bind_cpu_input(m.SEQLENS_K, (after - 1).astype(np.int32))
        b.bind_cpu_input(m.TOTAL_SEQ_LEN, np.array(after.max(), dtype=np.int32))
        try:
            self.session.run_with_iobinding(b, self.ms.run_options)
            return StepOutput(*b.get_outputs()[:3])
        finally:
            self._bind_outputs()  # also after a failed run: nothing it allocated outlives it


class StepOutput:
    """One step's outputs: top-K candidates on the host, the full logits copied only on demand."""

    def __init__(self, logits: ort.OrtValue, top_values: ort.OrtValue, top_ids: ort.OrtValue):
        self._logits, self._top_values, self._top_ids = logits, top_values, top_ids
        self._host_logits: np.ndarray | None = None

    def logits(self) -> np.ndarray:
        if self._host_logits is None:
            self._host_logits = self._logits.numpy()
        return self._host_logits

    def candidates(self) -> tuple[np.ndarray, np.ndarray]:
        return self._top_values.numpy(), self._top_ids.numpy()

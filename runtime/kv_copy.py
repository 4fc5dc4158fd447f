"""Copies KV cache rows where the cache lives: on a GPU a copy stays on the device.

A reply joining or leaving the decode batch moves its KV between its conversation's cache and the batch's
pool. Through host memory that moved every buffer whole, twice (measured on an H200 with a
gpt-oss-20b-shaped int4 model: 22 tok/s to one `parley serve` client where the bare decode loop ran
193-277; 225 with this). Here each (layer, key or value) buffer's row is copied by a two-node graph
(runtime/graphs/, built by export/kv_copy_graph.py) run on the cache's own device, with source and
destination bound by address: one run per buffer, 48 for gpt-oss-20b, each writing the destination row's
whole length. A single graph over all layers is the next step if joins show up in profiles.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

GRAPHS = Path(__file__).resolve().parent / "graphs"
DTYPES = {"float16": np.float16, "float32": np.float32}


class KvRowCopier:
    def __init__(self, device: str, device_id: int, dtype: str, providers: list):
        if dtype not in DTYPES:
            raise ValueError(f"no KV copy graph for {dtype!r} caches (there are: {', '.join(DTYPES)})")
        so = ort.SessionOptions()
        so.log_severity_level = 3
        # a copy is one small op at a time: no thread pool spinning beside the game
        so.intra_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.device, self.device_id = device, device_id
        self.session = ort.InferenceSession(str(GRAPHS / f"kv_copy_{dtype}.onnx"), so, providers=providers)
        self.dtype = DTYPES[dtype]

    def copy(self, pairs: list[tuple[int, int]], heads: int, head_dim: int, src_length: int, dst_length: int,
             rows: int) -> None:
        """For each (src address, dst address): dst row = src row's first `rows` positions, zeros after."""
        binding = self.session.io_binding()
        binding.bind_cpu_input("rows", np.array([rows], dtype=np.int64))
        binding.bind_cpu_input("pads", np.array([0, 0, 0, 0, 0, 0, dst_length - rows, 0], dtype=np.int64))
        for src, dst in pairs:
            binding.bind_input("src", self.device, self.device_id, self.dtype, [1, heads, src_length, head_dim], src)
            binding.bind_output("dst", self.device, self.device_id, self.dtype, [1, heads, dst_length, head_dim],
                                dst)
            self.session.run_with_iobinding(binding)

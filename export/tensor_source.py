"""A checkpoint's tensors, read one at a time when asked for, never all at once.

gpt-oss-20b is 13 GB as released and about 84 GB in float32: an export that loaded it whole would need
a workstation nobody has. `SafetensorsTensors` maps canonical names to the shards' tensors (the
safetensors format: a JSON header of names, dtypes, shapes and byte ranges); each access reads (and, for MXFP4 experts, dequantizes) one tensor into
float32 and keeps nothing. `Transformed` applies a per-tensor change on access (a LoRA delta, an int8
round trip), so nothing is held in a second copy either. Both are plain Mappings: code that takes a
dict of tensors takes these.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Callable

import torch

from export import mxfp4
from export.errors import CheckpointError
from export.safetensors_header import read_header

BLOCKS, SCALES = "_blocks", "_scales"


def shape_of(tensors: Mapping[str, torch.Tensor], name: str) -> tuple[int, ...]:
    """A tensor's shape without reading it, where the mapping can tell."""
    shape = getattr(tensors, "shape", None)
    return shape(name) if shape is not None else tuple(tensors[name].shape)


# safetensors dtype names -> torch dtypes (the format stores little-endian data)
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


class _Shard:
    """One safetensors file: its header now, a tensor's bytes when asked. Tensors are read with plain
    reads rather than memory-mapped, so what was read leaves the process's memory once dropped (a
    memory map would keep every page it touched counted against the export)."""

    def __init__(self, path: Path):
        self.path = path
        self.base, header, size = read_header(path)
        self.entries = header
        for name, e in header.items():
            if e.get("dtype") not in DTYPES or not isinstance(e.get("data_offsets"), list):
                raise CheckpointError(f"{path}: tensor '{name}' has dtype {e.get('dtype')!r}, which this "
                                      "exporter cannot read")
            if e["data_offsets"][1] > size - self.base:
                raise CheckpointError(f"{path}: tensor '{name}' lies beyond the end of the file; the file "
                                      "is truncated")

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.entries[name]["shape"])

    def read(self, name: str) -> torch.Tensor:
        e = self.entries[name]
        start, end = e["data_offsets"]
        buf = bytearray(end - start)
        try:
            with self.path.open("rb") as f:
                f.seek(self.base + start)
                if f.readinto(buf) != len(buf):
                    raise OSError("short read")
        except OSError as exc:
            raise CheckpointError(f"{self.path}: cannot read tensor '{name}' ({exc})") from exc
        dtype = DTYPES[e["dtype"]]
        if not buf:
            return torch.empty(e["shape"], dtype=dtype)
        return torch.frombuffer(buf, dtype=dtype).reshape(e["shape"])


class SafetensorsTensors(Mapping):
    """Canonical name -> float32 tensor, read from the files on each access."""

    def __init__(self, files: list[Path]):
        self._where: dict[str, _Shard] = {}  # stored name -> its shard
        for path in files:
            shard = _Shard(path)
            for name in shard.entries:
                self._where[name] = shard
        self._names = [n for n in self._where if not n.endswith((BLOCKS, SCALES))]
        self._quantized = [n[: -len(BLOCKS)] for n in self._where if n.endswith(BLOCKS)]
        for base in self._quantized:
            if base + SCALES not in self._where:
                raise CheckpointError(f"tensor '{base}{SCALES}' is missing (needed with '{base}{BLOCKS}' for "
                                      f"MXFP4); searched {', '.join(p.name for p in files)}")
        self._names += self._quantized

    @property
    def quantized(self) -> bool:
        return bool(self._quantized)

    def is_mxfp4(self, name: str) -> bool:
        return name in self._quantized and name not in self._where

    def raw(self, name: str) -> torch.Tensor:
        """A tensor exactly as stored (for MXFP4 experts: name + '_blocks' or '_scales')."""
        return self._where[name].read(name)

    def dtype(self, name: str) -> str:
        """The stored dtype's safetensors name ('BF16', 'F32', ...)."""
        return self._where[name].entries[name]["dtype"]

    def shape(self, name: str) -> tuple[int, ...]:
        if self.is_mxfp4(name):
            blocks = self._where[name + BLOCKS].shape(name + BLOCKS)  # [E, rows, G, 16] -> [E, G*32, rows]
            return (blocks[0], blocks[2] * mxfp4.BLOCK, blocks[1]) if len(blocks) == 4 else blocks
        return self._where[name].shape(name)

    def __getitem__(self, name: str) -> torch.Tensor:
        if self.is_mxfp4(name):
            try:
                return mxfp4.dequantize(self.raw(name + BLOCKS), self.raw(name + SCALES))
            except ValueError as exc:
                raise CheckpointError(f"tensor '{name}{BLOCKS}': {exc}") from exc
        if name not in self._where:
            raise KeyError(name)
        return self.raw(name).to(torch.float32)

    def __contains__(self, name: object) -> bool:
        return name in self._where or name in self._quantized

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class Transformed(Mapping):
    """`base` with `change(name, tensor)` applied to every tensor as it is read."""

    def __init__(self, base: Mapping[str, torch.Tensor], change: Callable[[str, torch.Tensor], torch.Tensor]):
        self.base, self.change = base, change

    def shape(self, name: str) -> tuple[int, ...]:
        return shape_of(self.base, name)

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.change(name, self.base[name])

    def __contains__(self, name: object) -> bool:
        return name in self.base

    def __iter__(self) -> Iterator[str]:
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)

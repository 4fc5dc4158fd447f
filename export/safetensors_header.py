"""A safetensors file's header (names, dtypes, shapes, byte ranges), read without torch: the tensor reader
(export/tensor_source.py) and `parley inspect` of a checkpoint on a runtime-only install share it."""
from __future__ import annotations

import json
import struct
from pathlib import Path

from export.errors import CheckpointError

MAX_HEADER_BYTES = 100 << 20


def read_header(path: Path) -> tuple[int, dict, int]:
    """(where the tensor data starts, the header's tensor entries without `__metadata__`, the file's size)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if not 0 < length <= min(MAX_HEADER_BYTES, size - 8):
                raise ValueError(f"header length {length} does not fit the {size}-byte file")
            header = json.loads(f.read(length))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (OSError, ValueError, struct.error) as exc:
        raise CheckpointError(f"{path}: cannot read safetensors file ({exc}); "
                              "the file is corrupted or not safetensors") from exc
    header.pop("__metadata__", None)
    return 8 + length, header, size


def tensor_dtype(folder: Path, names: tuple[str, ...]) -> str | None:
    """The safetensors dtype ("BF16", "F32", ...) of the first of `names` any shard in `folder` holds."""
    for path in sorted(folder.glob("*.safetensors")):
        _, header, _ = read_header(path)
        for name in names:
            entry = header.get(name)
            if isinstance(entry, dict):
                return entry.get("dtype")
    return None

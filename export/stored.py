"""An initializer that a model folder keeps in its weights file, read back without loading the file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

# stored bits that numpy has no type for, read as the unsigned integers of their width
_BITS = {onnx.TensorProto.BFLOAT16: np.uint16, onnx.TensorProto.FLOAT8E8M0: np.uint8}


def stored_array(folder: Path, tensor: onnx.TensorProto) -> np.ndarray:
    """`tensor`'s bytes in `folder`'s external data file, memory-mapped, in the tensor's shape: bfloat16 as
    its uint16 bits, e8m0 scales as their bytes, every other type as numpy's own."""
    info = {e.key: e.value for e in tensor.external_data}
    dtype = _BITS.get(tensor.data_type) or onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    shape = tuple(tensor.dims)
    if not int(np.prod(shape)):
        return np.zeros(shape, dtype)
    return np.memmap(Path(folder) / info["location"], dtype=dtype, mode="r", offset=int(info.get("offset", 0)),
                     shape=shape)

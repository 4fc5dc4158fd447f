"""A timing-only model folder with int4 experts, made from an MXFP4 one in seconds instead of an export.

    python -m tools.experiments.int4_timing_folder MXFP4_FOLDER OUT

For speed on a GPU with random weights only: the folder's QMoE nodes become int4 ones (block 32, raw codes,
weights_prepacked=0) that read the MXFP4 bytes as int4 codes, with float scales made from the e8m0 ones.
The shapes, bytes per weight and kernels are those of a real `--experts int4` export of the same checkpoint;
the values are not (int4 from MXFP4 is a rounding, not a reinterpretation), so its outputs mean nothing and
the manifest says so (`timing_only`). The 13 GB weights file is hard-linked, not copied.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from export.stored import stored_array

SCALES_FILE = "int4_scales.data"


def convert(src: Path, out: Path) -> int:
    model = onnx.load(src / "model.onnx", load_external_data=False)
    dtype = np.float16 if json.loads((src / "manifest.json").read_text())["dtype"] == "float16" else np.float32
    inits = {t.name: t for t in model.graph.initializer}
    out.mkdir(parents=True, exist_ok=True)
    scales = open(out / SCALES_FILE, "wb")
    converted = 0
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "QMoE" or attrs.get("quant_type") != b"fp4":
            continue
        for slot in (3, 6):  # fc1 and fc2 e8m0 scales -> float scales of the graph's dtype
            e8m0 = inits.pop(node.input[slot])
            values = np.exp2(stored_array(src, e8m0).astype(np.float32) - 127.0).astype(dtype)
            t = numpy_helper.from_array(values, node.input[slot] + ".int4_scale")
            offset = scales.tell()
            scales.write(t.raw_data)
            set_external_data(t, SCALES_FILE, offset, values.nbytes)
            t.ClearField("raw_data")
            inits[t.name] = t
            node.input[slot] = t.name
        for name in node.input[15:17]:
            inits.pop(name, None)
        del node.input[8:]
        keep = [a for a in node.attribute if a.name not in ("quant_type", "block_size", "expert_weight_bits")]
        del node.attribute[:]
        node.attribute.extend(keep + [helper.make_attribute("expert_weight_bits", 4),
                                      helper.make_attribute("block_size", 32),
                                      helper.make_attribute("weights_prepacked", 0)])
        converted += 1
    scales.close()
    del model.graph.initializer[:]
    model.graph.initializer.extend(inits.values())
    for t in model.graph.initializer:
        if t.data_type == TensorProto.FLOAT8E8M0:
            raise SystemExit(f"{t.name}: an e8m0 tensor is left; this folder is not what the exporter writes")
    onnx.save(model, out / "model.onnx")
    data = out / "model.onnx.data"
    if data.exists():
        data.unlink()
    os.link(src / "model.onnx.data", data)
    for f in src.iterdir():
        if f.name not in ("model.onnx", "model.onnx.data", "manifest.json") and f.is_file():
            shutil.copyfile(f, out / f.name)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["export_options"].update(experts="int4", qmoe_weights_prepacked=0, timing_only=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return converted


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    print(f"{args.out}: {convert(args.src, args.out)} QMoE nodes now int4 (timing only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A window-cache model folder's twin whose sliding layers keep the whole context again, as folders exported
before window caches (or with --full-sliding-cache) do: the same weights (hard-linked, not copied), the
graph's GroupQueryAttention nodes without sliding_window_cache and the manifest's window 0. For measuring
what the window cache saves on a GPU in one session without a second full-size export (minutes there).

    python -m tools.experiments.full_cache_folder WINDOWED_FOLDER OUT_FOLDER
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import onnx

from runtime.manifest import MANIFEST_FILE, Manifest


def full_cache_folder(src: Path, out: Path) -> Path:
    manifest = Manifest.read(src)
    if not manifest.kv_cache.window:
        raise SystemExit(f"{src}: its sliding layers keep the whole context already")
    out.mkdir(parents=True, exist_ok=False)
    graph = onnx.load(str(src / manifest.graph_file), load_external_data=False)
    for node in graph.graph.node:
        if node.op_type == "GroupQueryAttention":
            kept = [a for a in node.attribute if a.name != "sliding_window_cache"]
            del node.attribute[:]
            node.attribute.extend(kept)
    for value in list(graph.graph.input) + list(graph.graph.output):
        if value.name.startswith(("past_key_values.", "present.")):
            dim = value.type.tensor_type.shape.dim[2]
            dim.Clear()
            dim.dim_param = "cache_length"
    onnx.save(graph, str(out / manifest.graph_file))
    for name in (manifest.weights_file, manifest.tokenizer_file):
        try:
            os.link(src / name, out / name)
        except OSError:
            shutil.copyfile(src / name, out / name)
    raw = json.loads((src / MANIFEST_FILE).read_text(encoding="utf-8"))
    raw["kv_cache"]["window"] = 0
    raw["export_options"]["window_cache"] = False
    (out / MANIFEST_FILE).write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    Manifest.read(out)  # it reads back as a model folder
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    print(full_cache_folder(args.src, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Streaming export: the checkpoint is read a tensor at a time, and the folder is the same to the byte."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from export.exporter import ExportOptions, export_model
from tests.helpers.checkpoints import make_mxfp4_twins
from tests.helpers.checkpoints import TinySpec, make_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def same_folders(a: Path, b: Path) -> None:
    for name in ("model.onnx", "model.onnx.data", "tokenizer.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    for m in (ma, mb):
        m["verification"].pop("seconds")
    assert ma == mb


def export_both(checkpoint: Path, root: Path, **options) -> None:
    for stream in (True, False):
        export_model(checkpoint, root / f"stream-{stream}", ExportOptions(max_context=32, stream=stream, **options))
    same_folders(root / "stream-True", root / "stream-False")


def test_streaming_equals_reading_whole_for_a_float_checkpoint(tiny_checkpoint, tmp_path):
    export_both(tiny_checkpoint, tmp_path)


def test_streaming_equals_reading_whole_for_mxfp4_experts(tmp_path):
    quantized, _ = make_mxfp4_twins(tmp_path)
    export_both(quantized, tmp_path)


def test_streaming_equals_reading_whole_with_int8_experts(tiny_checkpoint, tmp_path):
    export_both(tiny_checkpoint, tmp_path, experts="int8")


def test_streaming_equals_reading_whole_with_a_lora_adapter(base_and_adapter, tmp_path):  # noqa: F811
    base, adapter, _ = base_and_adapter
    export_both(base, tmp_path, lora=adapter)


MEASURE = """
import json, sys, threading, time
from export.exporter import ExportOptions, export_model

def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

before, peak, done = anon_mb(), [0.0], threading.Event()

def sample():
    while not done.is_set():
        peak[0] = max(peak[0], anon_mb())
        time.sleep(0.002)

threading.Thread(target=sample, daemon=True).start()
export_model(sys.argv[1], sys.argv[2], ExportOptions(max_context=32, stream=sys.argv[3] == "1"))
done.set()
print(json.dumps({"growth_mb": max(peak[0], anon_mb()) - before}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_streaming_export_holds_about_a_layer_not_the_model(tmp_path):
    # 8 layers of 25 MB of float32 experts each: 200 MB of weights, of which one layer at a time
    spec = TinySpec(hidden=256, layers=8, heads=4, kv_heads=2, head_dim=64, experts=16, top_k=4, intermediate=512)
    checkpoint = make_checkpoint(tmp_path / "wide", spec)
    weights_mb = (checkpoint / "model.safetensors").stat().st_size / 2**20
    layer_mb = 4 * spec.experts * 3 * spec.hidden * spec.intermediate / 2**20

    def growth(stream: bool) -> float:
        run = subprocess.run([sys.executable, "-c", MEASURE, str(checkpoint), str(tmp_path / f"out-{stream}"),
                              "1" if stream else "0"], capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout.strip().splitlines()[-1])["growth_mb"]

    streaming, whole = growth(True), growth(False)
    assert whole > 0.9 * weights_mb  # the measure sees a whole model when one is held
    assert streaming < 4 * layer_mb < 0.5 * weights_mb, (streaming, whole, layer_mb)

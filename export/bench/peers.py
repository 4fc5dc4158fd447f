"""The peers' setup: a separate virtual environment for onnxruntime-genai, and its model built by its own builder.

onnxruntime-genai depends on the CPU `onnxruntime` package, which would replace Parley's
onnxruntime-gpu if both lived in one environment, so the peer gets a venv of its own.
"""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

GENAI_VERSION = "0.18.0"
# Run by path with the peer's interpreter: Python puts the script's folder first on sys.path, so it finds
# worker.py beside it without Parley installed.
GENAI_SCRIPT = Path(__file__).resolve().parent / "system_genai.py"
PEER_SET = 2  # bumped when the packages below change, so existing peer environments are refilled


class PeerUnavailable(Exception):
    """A peer could not be set up here; the message says why, and the benchmark goes on without it."""


def _same_as_here(package: str) -> str:
    """Pin the peer's copy of a shared package to this environment's version, for a like-for-like build."""
    try:
        return f"{package}=={version(package)}"
    except PackageNotFoundError:
        return package


def peer_python(venv_dir: Path, log) -> Path:
    """The peer venv's interpreter, creating and filling the venv on first use."""
    python = venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    stamp = venv_dir / f".genai-{GENAI_VERSION}-{PEER_SET}"
    if stamp.is_file():
        return python
    log(f"setting up the onnxruntime-genai {GENAI_VERSION} peer environment in {venv_dir} (first run only) ...")
    venv.create(venv_dir, with_pip=True, clear=True)
    wanted = [f"onnxruntime-genai=={GENAI_VERSION}", _same_as_here("torch"), _same_as_here("transformers"),
              _same_as_here("onnx"), "onnx-ir", "tqdm", "safetensors", "numpy",
              "accelerate"]  # transformers loads an MXFP4 checkpoint (the int4 build's input) only with it
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", *wanted], capture_output=True, text=True)
    if done.returncode != 0:
        raise PeerUnavailable(f"pip could not install {' '.join(wanted)} into {venv_dir}: "
                              f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no output'}")
    stamp.write_text("ok\n")
    return python


def build_genai_model(python: Path, checkpoint: Path, out: Path, log, precision: str = "fp32") -> Path:
    """onnxruntime-genai's model builder on the same checkpoint, for the CPU: fp32, or its own int4 build."""
    if (out / "genai_config.json").is_file():
        return out
    log(f"building the onnxruntime-genai model (its builder, -p {precision} -e cpu) in {out} ...")
    cmd = [str(python), "-m", "onnxruntime_genai.models.builder", "-i", str(checkpoint), "-o", str(out),
           "-p", precision, "-e", "cpu", "-c", str(out.parent / f"genai-build-cache-{precision}")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not (out / "genai_config.json").is_file():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise PeerUnavailable(f"the onnxruntime-genai builder failed on {checkpoint}:\n{tail}")
    return out


def transformers_available() -> bool:
    try:
        import transformers  # noqa: F401
        return hasattr(transformers, "GptOssForCausalLM")
    except ImportError:
        return False


def this_python() -> Path:
    return Path(sys.executable)

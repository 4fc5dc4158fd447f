"""Average a continued training run's last weights with its first (the checkpoint it continued from).

    .venv/bin/python -m tools.demo.soup --run .cache/v12-ckpt --init tools/demo/checkpoint --out OUT

Both lie in one basin (the run started from the other), so their mean is a model too, and often one that
generalises better than either end: training on has made the demo model surer of itself without making
it right more often (the model card's later runs). `train.py --average-with-init` does the same at the
end of a run; this is for a run already trained. The averaged checkpoint's training log is the run's,
marked `averaged_with_init`, with the one command that trains and averages it again.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

COPIED = ("config.json", "generation_config.json", "tokenizer.json")


def average_states(a: dict, b: dict) -> dict:
    """The element-wise mean of two state dicts of one shape (computed in float64, kept in a's dtypes)."""
    if a.keys() != b.keys():
        raise ValueError(f"the checkpoints hold different tensors: {sorted(a.keys() ^ b.keys())[:4]}")
    out = {}
    for name, x in a.items():
        if x.shape != b[name].shape:
            raise ValueError(f"{name}: shapes {tuple(x.shape)} and {tuple(b[name].shape)} differ")
        out[name] = ((x.double() + b[name].double()) / 2).to(x.dtype).contiguous()
    return out


class RunningMean:
    """The element-wise mean of snapshots of one model's weights taken as it trains (latest weight averaging:
    the mean of a run's late points lies nearer the middle of the basin than its last point). Kept in float64
    so that the order of many small updates does not matter."""

    def __init__(self) -> None:
        self.count = 0
        self._mean: dict | None = None

    def add(self, state: dict) -> None:
        self.count += 1
        if self._mean is None:
            self._mean = {k: v.detach().double().clone() for k, v in state.items()}
            return
        if self._mean.keys() != state.keys():
            raise ValueError("a snapshot holds different tensors from the first")
        for name, x in state.items():
            self._mean[name] += (x.detach().double() - self._mean[name]) / self.count

    def state(self, like: dict) -> dict:
        """The mean, in the dtypes of `like` (a state dict of the same model)."""
        if self._mean is None:
            raise ValueError("no snapshot was taken")
        return {k: self._mean[k].to(v.dtype).contiguous() for k, v in like.items()}


def averaged_log(run_log: dict, init_log: dict | None) -> dict:
    """The run's training log, marked as averaged with the checkpoint it continued from."""
    if run_log.get("averaged_with_init"):
        raise ValueError("the run is already averaged with its start (train.py --average-with-init)")
    if run_log.get("continued_from") != init_log:
        raise ValueError("the run did not continue from that checkpoint (its training log names another start)")
    command = run_log["command"]
    return {**run_log, "averaged_with_init": True,
            "command": command if "--average-with-init" in command else command + " --average-with-init"}


def write_average(run: Path, init: Path, out: Path) -> None:
    from safetensors.torch import load_file, save_file

    for name in COPIED:
        if name != "generation_config.json" and (run / name).read_bytes() != (init / name).read_bytes():
            raise ValueError(f"{run / name} and {init / name} differ: not one model continued")
    log = averaged_log(json.loads((run / "training_log.json").read_text()),
                       json.loads((init / "training_log.json").read_text()))
    state = average_states(load_file(str(run / "model.safetensors")), load_file(str(init / "model.safetensors")))
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:  # from the run: out may be init
        if (run / name).is_file() and (run / name).resolve() != (out / name).resolve():
            shutil.copy(run / name, out / name)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "training_log.json").write_text(json.dumps(log, indent=1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="the continued run's checkpoint")
    ap.add_argument("--init", type=Path, required=True, help="the checkpoint that run continued from")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    try:
        write_average(args.run, args.init, args.out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"soup: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: the mean of {args.run} and {args.init}")
    return 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())

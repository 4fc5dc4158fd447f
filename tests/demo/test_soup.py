"""Averaging a continued run with the checkpoint it continued from (tools/demo/soup.py)."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from safetensors.torch import load_file, save_file  # noqa: E402

from tools.demo.soup import average_states, main, write_average  # noqa: E402


def checkpoint(path, seed: int, log: dict, tokenizer: str = '{"tok": 1}'):
    torch.manual_seed(seed)
    path.mkdir()
    save_file({"a.weight": torch.randn(4, 3), "b.bias": torch.randn(5)}, str(path / "model.safetensors"))
    (path / "config.json").write_text('{"hidden_size": 3}')
    (path / "tokenizer.json").write_text(tokenizer)
    (path / "training_log.json").write_text(json.dumps(log))
    return path


def test_the_average_is_the_element_wise_mean_and_the_log_says_how_to_train_it_again(tmp_path):
    init_log = {"command": "train --seed 1", "continued_from": None}
    init = checkpoint(tmp_path / "init", 1, init_log)
    run = checkpoint(tmp_path / "run", 2, {"command": "train --init x --seed 2", "continued_from": init_log})
    write_average(run, init, tmp_path / "out")
    a, b = load_file(str(run / "model.safetensors")), load_file(str(init / "model.safetensors"))
    out = load_file(str(tmp_path / "out" / "model.safetensors"))
    for name in a:
        assert torch.allclose(out[name], (a[name] + b[name]) / 2, atol=1e-7)
        assert not torch.equal(out[name], a[name]) and not torch.equal(out[name], b[name])
    log = json.loads((tmp_path / "out" / "training_log.json").read_text())
    assert log["averaged_with_init"] and log["command"] == "train --init x --seed 2 --average-with-init"
    assert log["continued_from"] == init_log
    assert (tmp_path / "out" / "tokenizer.json").read_text() == '{"tok": 1}'


def test_a_run_that_did_not_continue_from_that_checkpoint_is_refused_and_nothing_is_written(tmp_path, capsys):
    init = checkpoint(tmp_path / "init", 1, {"command": "train --seed 1", "continued_from": None})
    other = checkpoint(tmp_path / "run", 2, {"command": "train --seed 2", "continued_from": {"command": "other"}})
    assert main_with(["--run", str(other), "--init", str(init), "--out", str(tmp_path / "out")]) == 2
    assert "did not continue from that checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_run_already_averaged_with_its_start_is_refused(tmp_path):
    init_log = {"command": "train", "continued_from": None}
    init = checkpoint(tmp_path / "init", 1, init_log)
    run = checkpoint(tmp_path / "run", 2, {"command": "t --average-with-init", "continued_from": init_log,
                                           "averaged_with_init": True})
    with pytest.raises(ValueError, match="already averaged"):  # a second mean would weigh the start 3:1
        write_average(run, init, tmp_path / "out")


def test_another_tokenizer_is_refused(tmp_path):
    init_log = {"command": "train", "continued_from": None}
    init = checkpoint(tmp_path / "init", 1, init_log)
    run = checkpoint(tmp_path / "run", 2, {"command": "t", "continued_from": init_log}, tokenizer='{"tok": 2}')
    with pytest.raises(ValueError, match="tokenizer.json"):
        write_average(run, init, tmp_path / "out")


def test_tensors_of_other_shapes_are_refused():
    with pytest.raises(ValueError, match="shapes"):
        average_states({"w": torch.zeros(2, 3)}, {"w": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match="different tensors"):
        average_states({"w": torch.zeros(2)}, {"v": torch.zeros(2)})


def main_with(argv: list[str]) -> int:
    import sys

    saved, sys.argv = sys.argv, ["soup", *argv]
    try:
        return main()
    finally:
        sys.argv = saved


def test_the_running_mean_of_snapshots_is_their_element_wise_mean_in_the_models_dtypes():
    from tools.demo.soup import RunningMean

    torch.manual_seed(3)
    snaps = [{"w": torch.randn(3, 2), "n": torch.tensor([k], dtype=torch.int64)} for k in (2, 4, 9)]
    mean = RunningMean()
    for s in snaps:
        mean.add(s)
    out = mean.state(snaps[0])
    assert mean.count == 3
    assert torch.allclose(out["w"], sum(s["w"] for s in snaps) / 3, atol=1e-7)
    assert out["w"].dtype == torch.float32 and out["n"].dtype == torch.int64 and int(out["n"]) == 5
    with pytest.raises(ValueError, match="different tensors"):
        mean.add({"w": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match="no snapshot"):
        RunningMean().state(snaps[0])

"""An interrupted training run, resumed: `hf-sign train ... --resume` after a SIGTERM ends bit-identical to the run
that was never interrupted, and the same command without `--resume` into a folder holding checkpoints is refused
(naming `--resume` and `--overwrite-output-dir`) instead of silently overwriting them."""

from __future__ import annotations

import signal

import pytest
import torch
from safetensors.torch import load_file
from transformers import Trainer

from hf_sign.cli import main
from hf_sign.systems import get_system, list_systems
from hf_sign.training.stages import check_output_dir

# two epochs of two steps: checkpoint-2 after the first epoch, checkpoint-4 at the end
FAST = {"vae_training.num_train_epochs": 2}


class _Terminated(Exception):
    pass


def _train(corpus, out, resume=False):
    return get_system("sign-sald").run_training(
        corpus, out, config="tiny", stage="vae", seed=0, overrides=FAST, resume_from_checkpoint=resume
    )


def test_resume_after_sigterm_is_bit_identical(tiny_synthsign, tmp_path, monkeypatch):
    # the reference: one uninterrupted run
    _train(tiny_synthsign, tmp_path / "whole")

    # the same run, sent SIGTERM during its third step (after checkpoint-2 was written)
    def on_sigterm(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    step = Trainer.training_step

    def training_step(self, *args, **kwargs):
        if self.state.global_step == 2:
            signal.raise_signal(signal.SIGTERM)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", training_step)
    try:
        with pytest.raises(_Terminated):
            _train(tiny_synthsign, tmp_path / "cut")
    finally:
        signal.signal(signal.SIGTERM, previous)
        monkeypatch.setattr(Trainer, "training_step", step)
    ckpts = tmp_path / "cut" / "checkpoints" / "vae"
    assert sorted(p.name for p in ckpts.iterdir()) == ["checkpoint-2"]

    # without --resume the folder is refused; with it, the run ends where the uninterrupted one did, bit for bit
    with pytest.raises(ValueError, match="--resume.*--overwrite-output-dir"):
        _train(tiny_synthsign, tmp_path / "cut")
    metrics = _train(tiny_synthsign, tmp_path / "cut", resume=True)
    assert metrics["vae_resumed_from"].endswith("checkpoint-2") and metrics["vae_global_step"] == 4
    whole = load_file(tmp_path / "whole" / "checkpoints" / "vae" / "checkpoint-4" / "model.safetensors")
    resumed = load_file(ckpts / "checkpoint-4" / "model.safetensors")
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)


@pytest.mark.parametrize("system", [s.name for s in list_systems() if s.stages])
def test_cli_refuses_a_folder_with_checkpoints(system, tiny_synthsign, tmp_path, capsys):
    stage = get_system(system).stages[0]
    (tmp_path / "checkpoints" / stage / "checkpoint-7").mkdir(parents=True)
    code = main(["train", system, "--dataset", str(tiny_synthsign), "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "--resume" in err and "--overwrite-output-dir" in err and "Traceback" not in err
    assert err.count("\n") == 1 and (tmp_path / "checkpoints" / stage / "checkpoint-7").is_dir()  # nothing removed


def test_overwrite_output_dir_removes_the_stale_checkpoints(tmp_path):
    (tmp_path / "checkpoints" / "vae" / "checkpoint-9").mkdir(parents=True)
    check_output_dir(tmp_path, ["ldm"])  # the next stage into the same folder: other stages' checkpoints are fine
    with pytest.raises(ValueError, match="stage.*vae.*--resume.*--overwrite-output-dir"):
        check_output_dir(tmp_path, ["vae"])
    check_output_dir(tmp_path, ["vae"], resume=True)  # resuming keeps them
    assert (tmp_path / "checkpoints" / "vae" / "checkpoint-9").is_dir()
    (tmp_path / "checkpoints" / "ldm" / "checkpoint-3").mkdir(parents=True)
    check_output_dir(tmp_path, ["vae"], overwrite=True)  # removes the stage's stale checkpoints, only those
    assert not (tmp_path / "checkpoints" / "vae").exists() and (tmp_path / "checkpoints" / "ldm").is_dir()
    with pytest.raises(ValueError, match="not both"):
        check_output_dir(tmp_path, ["ldm"], resume=True, overwrite=True)

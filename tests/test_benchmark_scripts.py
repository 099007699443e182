"""Benchmark scripts run end to end at tiny sizes, or their pieces on hand-made inputs: they import the library's
public pieces, so a change there that breaks a script shows here rather than when someone next measures with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_madis_throughput_runs_past_the_configs_canvas():
    # `tiny` has a 48-token sign canvas: the script must size its random LM for the tokens it times
    out = _run("bench_madis_throughput.py", "--config", "tiny", "--tokens", "60", "--steps", "10", "--repeats", "1")
    assert "MaDiS / AR throughput:" in out and "| 10 |" in out


def test_dtw_jpe_end_to_end_prints_both_ratios():
    out = _run("bench_dtw.py", "--jpe-only", "--pairs", "20", "--frames", "30", "--repeats", "1")
    assert "end to end / DP" in out and out.count("x\n") >= 2


def _script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_madis_ablations_reuse_a_default_run_only_at_its_own_budget(tmp_path):
    import argparse
    import json

    import pytest

    from hf_sign.training.madis_trainer import full_config

    script = _script("bench_madis_ablations")
    run = tmp_path / "run"
    for folder in ("part_vqvae", "normalizer", "text_tokenizer", "pretrained_lm", "lm", "checkpoints/sft"):
        (run / folder).mkdir(parents=True)
        (run / folder / "config.json").write_text("{}")
    (run / "model_index.json").write_text("{}")
    (run / "madis_metrics.json").write_text(json.dumps({"tokenizer_seconds": 1.0, "sft_seconds": 2.0}))
    config = full_config("tiny", {"pretraining.num_train_epochs": 3.0, "sft.num_train_epochs": 5.0})
    (run / "madis_config.json").write_text(json.dumps({**config, "train_stages": ["sft"]}))

    def args(out, pretrain_epochs=3.0, sft_epochs=5.0):
        return argparse.Namespace(
            default_run=str(run), out=str(out), config="tiny", pretrain_epochs=pretrain_epochs, sft_epochs=sft_epochs
        )

    with pytest.raises(ValueError, match=r"pretraining\.num_train_epochs"):
        script.adopt_default_run(args(tmp_path / "other", pretrain_epochs=4.0))
    assert not (tmp_path / "other").exists()

    out = tmp_path / "out"
    assert script.adopt_default_run(args(out)) == "+physical"  # `tiny` pretrains as the paper
    pretrained = out / "pretrain" / "physical"
    assert (pretrained / "pretrained_lm" / "config.json").is_file() and (pretrained / "part_vqvae").is_dir()
    # the pretraining folder keeps the tokenizer stage's metrics only; the default row is the whole run, no checkpoints
    assert json.loads((pretrained / "madis_metrics.json").read_text()) == {"tokenizer_seconds": 1.0}
    default = out / "runs" / "physical-uniform"
    assert (default / "model_index.json").is_file() and (default / "lm" / "config.json").is_file()
    assert not (default / "checkpoints").exists()

    # `small` pretrains without the physical term: its run fills the `+latent` rows, not the paper's `+physical`
    small = full_config("small", {"pretraining.num_train_epochs": 3.0, "sft.num_train_epochs": 5.0})
    (run / "madis_config.json").write_text(json.dumps(small))
    small_args = argparse.Namespace(**{**vars(args(tmp_path / "small")), "config": "small"})
    assert script.adopt_default_run(small_args) == "+latent"
    assert (tmp_path / "small" / "runs" / "latent-uniform" / "model_index.json").is_file()
    assert not (tmp_path / "small" / "runs" / "physical-uniform").exists()

    (run / "model_index.json").unlink()
    with pytest.raises(ValueError, match="model_index.json"):
        script.adopt_default_run(args(tmp_path / "third"))


def test_paired_bootstrap_of_bleu_between_two_systems(tmp_path):
    import csv

    import pytest

    references = ["A B C D E", "F G H I", "J K L M N", "A C E G", "B D F H J"] * 4
    wrong = ["X Y Z W"] * len(references)
    half = [r if i % 2 else w for i, (r, w) in enumerate(zip(references, wrong))]
    path = tmp_path / "per_sample.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["system", "index", "reference_gloss", "hypothesis_gloss"])
        for name, hyps in (("wrong", wrong), ("right", references), ("half", half)):
            for i in reversed(range(len(references))):  # the order of the file is not the samples' order
                writer.writerow([name, i, references[i], hyps[i]])
    script = _script("paired_bootstrap")
    hyps, refs = script.read_glosses(path, "right")
    assert hyps == refs == references

    r = script.paired_bootstrap(wrong, references, references, samples=50)
    assert r["a"] == 0 and r["b"] == pytest.approx(100) and r["ci_low"] > 50
    assert r["p_b_below_a"] == 0 and r["p_b_above_a"] == 1
    same = script.paired_bootstrap(half, half, references, samples=50)
    assert same["mean_difference"] == same["ci_low"] == same["ci_high"] == 0
    out = _run("paired_bootstrap.py", str(path), "half", "wrong", "--samples", "50")
    assert "BLEU-4: A " in out and "B 0.00" in out and "B below A in 100.0%, above in 0.0%" in out
    with pytest.raises(ValueError, match="no rows of system 'missing'"):
        script.read_glosses(path, "missing")

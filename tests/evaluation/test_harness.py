"""Benchmark harness on a tiny SynthSign corpus with tiny evaluators: output files and their layout, the
Ground Truth row, baselines and models by path or object, SiBLEU for token systems, max_samples and errors."""

import csv
import json

import numpy as np
import pytest
import torch
import yaml

from hf_sign.data.synthsign import build_synthsign
from hf_sign.evaluation.baselines import BaselineOutput, MeanPoseBaseline
from hf_sign.evaluation.harness import (
    GROUND_TRUTH,
    PoseScorer,
    load_evaluators,
    parse_model_specs,
    prepare_evaluators,
    run_benchmark,
)
from hf_sign.skeletons import get_skeleton
from hf_sign.training.evaluator_trainer import resolve_config, train_evaluators

BASELINE_ROWS = ["Mean pose", "Nearest sentence", "Gloss concatenation (oracle gloss)"]




class TokenSystem:
    """A toy model exposing part-wise sign tokens (the SiBLEU protocol) and recording its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompt, num_frames=None, generator=None, output_type="np", return_dict=True):
        self.calls.append({"prompt": list(prompt), "num_frames": num_frames, "generator": generator})
        lengths = num_frames or [20] * len(prompt)
        poses = [np.zeros((n, 133), np.float32) + 0.01 * torch.randn(1, generator=g).item() for n, g in zip(lengths, generator)]
        out = BaselineOutput(poses=poses, num_frames=list(lengths), fps=24.0)
        out.sign_tokens = [{"body": [1, 2, 3, 4], "left_hand": [5, 6, 7, 8], "right_hand": [9, 9, 9, 9]} for _ in prompt]
        return out

    def tokenize_poses(self, poses):
        return [{"body": [1, 2, 3, 4], "left_hand": [5, 6, 7, 8], "right_hand": [1, 1, 1, 1]} for _ in poses]


class WrongCount:
    def __call__(self, prompt, num_frames=None, generator=None, output_type="np", return_dict=True):
        return BaselineOutput(poses=[np.zeros((4, 133), np.float32)] * (len(prompt) - 1), num_frames=[], fps=24.0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    # a folder name of its own: `datasets` caches local folders by name, and the evaluator trainer loads with it
    data = root / "synthsign_harness_24_4_5"
    build_synthsign(data, seed=0, num_train=24, num_validation=4, num_test=5, show_progress=False)
    # a shorter tiny evaluator config, as a YAML path: the first run trains the evaluators into out/evaluators
    config = yaml.safe_load(resolve_config("tiny").read_text())
    config.update(recognizer_num_train_epochs=4, contrastive_num_train_epochs=4)
    (root / "evaluator.yaml").write_text(yaml.safe_dump(config))
    mean_dir = MeanPoseBaseline.from_dataset(data).save_pretrained(root / "mean_baseline")
    token_system = TokenSystem()
    out = root / "out"
    results = run_benchmark(
        data, models={"Mean (saved)": str(mean_dir), "Tokens": token_system}, evaluator_dir=None,
        evaluator_config=str(root / "evaluator.yaml"), out_dir=out, num_examples=1, batch_size=2, seed=3, show_progress=False,
        train_evaluators=train_evaluators,
    )
    return {"data": data, "evaluators": out / "evaluators", "out": out, "results": results, "tokens": token_system, "root": root}


def test_writes_tables_json_csv_and_examples_with_ground_truth_first(setup):
    out, results = setup["out"], setup["results"]
    names = [s["name"] for s in results["systems"]]
    assert names == [GROUND_TRUTH] + BASELINE_ROWS + ["Mean (saved)", "Tokens"]
    md = (out / "results.md").read_text()
    for header in ("BLEU-1 ↑", "BLEU-4 ↑", "ROUGE-L ↑", "DTW-JPE Body ↓ (mm)", "DTW-JPE Hands ↓ (mm)", "DTW-JPE Σ Body ↓ (m)",
                   "MPJPE Body ↓ (mm)", "MPJPE Hands ↓ (mm)", "FID ↓", "SiCLIP R@1 ↑", "SiCLIP R@5 ↑", "SiBLEU-4 ↑"):
        assert header in md
    tables = [block for block in md.split("\n\n") if block.startswith("| Method")]
    assert len(tables) == 3
    for table in tables:
        rows = table.splitlines()[2:]
        assert [r.split(" | ")[0].lstrip("| ") for r in rows] == [GROUND_TRUTH] + BASELINE_ROWS[:2] + [BASELINE_ROWS[2] + " †", "Mean (saved)", "Tokens"]
    assert "test split, 5 samples" in md and "oracle" in md
    saved = json.loads((out / "results.json").read_text())
    assert saved["num_samples"] == 5 and saved["seed"] == 3 and saved["split"] == "test"
    assert saved["evaluators"]["recognizer"] == str(out / "evaluators" / "recognizer") and saved["evaluators"]["trained_here"]
    assert saved["evaluators"]["config"].endswith("evaluator.yaml") and saved["evaluators"]["seed"] == 0
    assert [s["name"] for s in saved["systems"]] == names
    for s in saved["systems"]:
        assert {"bleu1", "bleu4", "rouge_l", "dtw_jpe_body", "dtw_jpe_hands", "mpjpe_body", "fid", "siclip_r1", "siclip_r5"} <= set(s["metrics"])
    with open(out / "per_sample.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(names) * 5
    assert {"id", "text", "reference_gloss", "hypothesis_gloss", "dtw_jpe_body_mm", "dtw_jpe_hands_mm", "mpjpe_body_mm",
            "num_frames_generated", "num_frames_reference"} <= set(rows[0])
    assert rows[0]["system"] == GROUND_TRUTH and rows[0]["reference_gloss"]
    assert len(list((out / "examples").glob("*.gif"))) == 1 and saved["examples"][0].startswith("examples/")


def test_ground_truth_row_is_exact_and_baselines_are_not(setup):
    systems = {s["name"]: s["metrics"] for s in setup["results"]["systems"]}
    gt = systems[GROUND_TRUTH]
    for key in ("dtw_jpe_body", "dtw_jpe_hands", "dtw_jpe_body_sum", "dtw_jpe_hands_sum", "mpjpe_body", "mpjpe_hands"):
        assert gt[key] == 0.0
    assert gt["fid"] == pytest.approx(0.0, abs=1e-6)
    assert systems["Mean pose"]["dtw_jpe_hands"] > 1.0 and systems["Mean pose"]["fid"] > 1e-4
    # the saved mean-pose folder loaded by path is the same system as the in-memory baseline
    for key in ("dtw_jpe_body", "mpjpe_hands", "fid", "bleu1"):
        assert systems["Mean (saved)"][key] == pytest.approx(systems["Mean pose"][key])
    # the concatenation baseline beats the mean pose on pose error (it follows the oracle glosses)
    concat = systems["Gloss concatenation (oracle gloss)"]
    assert concat["dtw_jpe_hands"] < systems["Mean pose"]["dtw_jpe_hands"] and concat["num_unknown_glosses"] == 0


def test_sibleu_only_for_token_systems_and_generators_are_per_sample(setup):
    systems = {s["name"]: s["metrics"] for s in setup["results"]["systems"]}
    assert all(systems[n]["sibleu"] is None for n in [GROUND_TRUTH] + BASELINE_ROWS)
    tok = systems["Tokens"]
    assert tok["sibleu_body"] == pytest.approx(100.0) and tok["sibleu_right_hand"] == 0.0
    assert "| – |" in (setup["out"] / "results.md").read_text()
    calls = setup["tokens"].calls
    assert [len(c["prompt"]) for c in calls] == [2, 2, 1]  # batch_size=2 over 5 samples
    assert calls[0]["num_frames"] is None  # systems choose their own length by default
    seeds = [g.initial_seed() for c in calls for g in c["generator"]]
    assert seeds == [3, 4, 5, 6, 7]


def test_max_samples_reference_lengths_and_trained_evaluator_reuse(setup):
    out = setup["root"] / "small"
    results = run_benchmark(
        setup["data"], baselines=["mean"], models={"Tokens": TokenSystem()}, evaluator_dir=setup["evaluators"],
        out_dir=out, max_samples=2, num_examples=0, num_frames="reference", show_progress=False,
    )
    assert results["num_samples"] == 2 and [s["name"] for s in results["systems"]] == [GROUND_TRUTH, "Mean pose", "Tokens"]
    with open(out / "per_sample.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 2
    assert all(r["num_frames_generated"] == r["num_frames_reference"] for r in rows)
    assert not (out / "examples").exists() or not list((out / "examples").iterdir())
    # evaluators trained by a previous run are reused from OUT/evaluators, but only for the same dataset
    assert prepare_evaluators(setup["data"], None, setup["out"]) == (setup["evaluators"], False)
    with pytest.raises(ValueError, match="trained on"):
        prepare_evaluators(setup["root"] / "other_corpus", None, setup["out"])


def test_bad_inputs_raise_clear_errors(setup):
    data, ev, out = setup["data"], setup["evaluators"], setup["root"] / "errors"
    kw = dict(evaluator_dir=ev, out_dir=out, num_examples=0, show_progress=False, baselines=False)
    with pytest.raises(ValueError, match="`split`='dev'.*available splits"):
        run_benchmark(data, split="dev", **kw)
    with pytest.raises(ValueError, match=r"`models\['ghost'\]`.*does not exist"):
        run_benchmark(data, models={"ghost": str(setup["root"] / "no_such_model")}, **kw)
    with pytest.raises(ValueError, match="'wrong'.*returned 1 `poses` for 2 prompts"):
        run_benchmark(data, models={"wrong": WrongCount()}, max_samples=2, **kw)
    with pytest.raises(ValueError, match="`evaluator_dir`"):
        run_benchmark(data, **dict(kw, evaluator_dir=setup["root"] / "no_evaluators"))
    # without evaluators to use, the harness trains them only with a trainer it is handed (it imports none)
    with pytest.raises(ValueError, match="No `evaluator_dir`.*`train_evaluators` callable"):
        run_benchmark(data, **dict(kw, evaluator_dir=None, out_dir=setup["root"] / "no_trainer"))
    with pytest.raises(ValueError, match="`train_evaluators` must be callable"):
        prepare_evaluators(data, None, setup["root"] / "no_trainer", train_evaluators="train")
    with pytest.raises(ValueError, match="`dataset_dir`"):
        run_benchmark(setup["root"] / "no_data", **kw)
    with pytest.raises(ValueError, match="reserved"):
        run_benchmark(data, models={GROUND_TRUTH: TokenSystem()}, **kw)
    with pytest.raises(ValueError, match="max_samples"):
        run_benchmark(data, max_samples=0, **kw)
    with pytest.raises(ValueError, match="num_frames"):
        run_benchmark(data, num_frames="longest", **kw)
    with pytest.raises(ValueError, match="baselines"):
        run_benchmark(data, **dict(kw, baselines=["median"]))
    scorer = PoseScorer([np.zeros((5, 133), np.float32)] * 2, ["a b", "c d"], [["A"], ["C"]], get_skeleton("smplx133"), load_evaluators(ev))
    with pytest.raises(ValueError, match="`predictions` has 1 sequences but `references` has 2"):
        scorer.score([np.zeros((5, 133), np.float32)])
    with pytest.raises(ValueError, match="`texts` has 1 entries"):
        PoseScorer([np.zeros((5, 133), np.float32)] * 2, ["a"], [["A"], ["C"]], get_skeleton("smplx133"), load_evaluators(ev))


def test_command_line_helpers():
    assert parse_model_specs(["sald=out/sald", "out/mexd/"]) == {"sald": "out/sald", "mexd": "out/mexd/"}
    with pytest.raises(ValueError, match="twice"):
        parse_model_specs(["a=x", "a=y"])
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_model_specs(["=x"])
    from hf_sign.cli import build_parser

    args = build_parser().parse_args(
        ["benchmark", "--dataset", "d", "--model", "a=x", "--model", "b=y", "--out", "o", "--max-samples", "3", "--no-baselines"]
    )
    assert args.model == ["a=x", "b=y"] and args.max_samples == 3 and args.baselines is False and args.split == "test"


def test_command_line_benchmark_without_evaluator_trains_them_into_out(setup, monkeypatch, capsys):
    """`hf-sign benchmark` without `--evaluator` hands the harness the evaluator trainer (stubbed here with a copy of
    the evaluators trained above), which trains into OUT/evaluators."""
    import shutil

    import hf_sign.training.evaluator_trainer as evaluator_trainer
    from hf_sign.cli import main

    calls = []

    def fake_train(dataset_dir, output_dir, config="default", seed=None):
        calls.append((dataset_dir, output_dir, config, seed))
        shutil.copytree(setup["evaluators"], output_dir)

    monkeypatch.setattr(evaluator_trainer, "train_evaluators", fake_train)
    out = setup["root"] / "cli_bench"
    argv = ["benchmark", "--dataset", str(setup["data"]), "--out", str(out), "--max-samples", "2", "--num-examples", "0",
            "--no-baselines", "--evaluator-config", "tiny"]
    assert main(argv) == 0
    assert calls == [(str(setup["data"]), str(out / "evaluators"), "tiny", 0)]
    saved = json.loads((out / "results.json").read_text())
    assert saved["evaluators"]["trained_here"] and saved["evaluators"]["dir"] == str(out / "evaluators")
    # a second run reuses them; with `--evaluator` the trainer is never called
    assert main(argv) == 0 and len(calls) == 1
    assert main(argv[:-2] + ["--evaluator", str(setup["evaluators"]), "--out", str(out / "again")]) == 0 and len(calls) == 1
    capsys.readouterr()

"""Benchmark harness on a tiny SynthSign corpus with tiny evaluators: output files and their layout, the
Ground Truth row, baselines and models by path or object, SiBLEU for token systems, max_samples and errors."""

import csv
import json
import zlib

import numpy as np
import pytest
import torch
import yaml

from hf_sign.data.io import load_corpus, split_rows
from hf_sign.data.resample import resample_to_length
from hf_sign.data.synthsign import build_synthsign
from hf_sign.evaluation.baseline_utils import BaselineOutput
from hf_sign.evaluation.baselines import MeanPoseBaseline
from hf_sign.evaluation.evaluators import PoseRecognizerModel
from hf_sign.evaluation.harness import GROUND_TRUTH, parse_model_specs, run_benchmark
from hf_sign.evaluation.metrics import back_translation, dtw_jpe, fid, mpjpe, siclip_retrieval
from hf_sign.evaluation.report import TABLES, format_value
from hf_sign.evaluation.scoring import PoseScorer, load_evaluators, prepare_evaluators
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
        noise = [0.01 * torch.randn(1, generator=g).item() for g in generator]
        poses = [np.zeros((n, 133), np.float32) + e for n, e in zip(lengths, noise)]
        out = BaselineOutput(poses=poses, num_frames=list(lengths), fps=24.0)
        tokens = {"body": [1, 2, 3, 4], "left_hand": [5, 6, 7, 8], "right_hand": [9, 9, 9, 9]}
        out.sign_tokens = [dict(tokens) for _ in prompt]
        return out

    def tokenize_poses(self, poses):
        return [{"body": [1, 2, 3, 4], "left_hand": [5, 6, 7, 8], "right_hand": [1, 1, 1, 1]} for _ in poses]


class PerturbedReference:
    """A deterministic stub system: each prompt's reference poses, resampled to 80% of their length plus noise seeded
    by the text, so every metric has a non-trivial value that the test can recompute from the same poses."""

    def __init__(self, rows):
        self.poses = {}
        for row in rows:
            self.poses.setdefault(str(row["text"]), row["poses"])

    def generate(self, text):
        ref = self.poses[text]
        rng = np.random.default_rng(zlib.crc32(text.encode()))
        out = resample_to_length(ref, max(2, int(0.8 * ref.shape[0])))
        return (out + rng.normal(scale=0.05, size=out.shape)).astype(np.float32)

    def __call__(self, prompt, generator=None, output_type="np", return_dict=True):
        return BaselineOutput(poses=[self.generate(t) for t in prompt], num_frames=[], fps=24.0)


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
    config["recognizer_training"]["num_train_epochs"] = config["contrastive_training"]["num_train_epochs"] = 4
    (root / "evaluator.yaml").write_text(yaml.safe_dump(config))
    mean_dir = MeanPoseBaseline.from_dataset(data).save_pretrained(root / "mean_baseline")
    token_system = TokenSystem()
    out = root / "out"
    results = run_benchmark(
        data, models={"Mean (saved)": str(mean_dir), "Tokens": token_system}, evaluator_dir=None,
        evaluator_config=str(root / "evaluator.yaml"), out_dir=out, num_examples=1, batch_size=2, seed=3,
        show_progress=False,
        train_evaluators=train_evaluators,
    )
    return {"data": data, "evaluators": out / "evaluators", "out": out, "results": results, "tokens": token_system,
            "root": root}


def test_writes_tables_json_csv_and_examples_with_ground_truth_first(setup):
    out, results = setup["out"], setup["results"]
    names = [s["name"] for s in results["systems"]]
    assert names == [GROUND_TRUTH] + BASELINE_ROWS + ["Mean (saved)", "Tokens"]
    md = (out / "results.md").read_text()
    for header in ("BLEU-1 ↑", "BLEU-4 ↑", "ROUGE-L ↑", "SOKE DTW-JPE Body ↓ (mm)", "SOKE DTW-JPE Hands ↓ (mm)",
                   "SOKE DTW-JPE Σ Body ↓ (m)", "MPJPE Body ↓ (mm)", "MPJPE Hands ↓ (mm)", "FID ↓", "SiCLIP R@1 ↑",
                   "SiCLIP R@5 ↑", "SiBLEU-4 ↑"):
        assert header in md
    tables = [block for block in md.split("\n\n") if block.startswith("| Method")]
    assert len(tables) == 3
    for table in tables:
        rows = table.splitlines()[2:]
        expected = [GROUND_TRUTH] + BASELINE_ROWS[:2] + [BASELINE_ROWS[2] + " †", "Mean (saved)", "Tokens"]
        assert [r.split(" | ")[0].lstrip("| ") for r in rows] == expected
    assert "test split, 5 samples" in md and "oracle" in md
    saved = json.loads((out / "results.json").read_text())
    assert saved["num_samples"] == 5 and saved["seed"] == 3 and saved["split"] == "test"
    assert saved["evaluators"]["recognizer"] == str(out / "evaluators" / "recognizer")
    assert saved["evaluators"]["trained_here"]
    assert saved["evaluators"]["config"].endswith("evaluator.yaml") and saved["evaluators"]["seed"] == 0
    assert [s["name"] for s in saved["systems"]] == names
    for s in saved["systems"]:
        keys = {"bleu1", "bleu4", "rouge_l", "dtw_jpe_body", "dtw_jpe_hands", "mpjpe_body", "fid", "siclip_r1"}
        assert keys | {"siclip_r5"} <= set(s["metrics"])
    with open(out / "per_sample.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(names) * 5
    assert {"id", "text", "reference_gloss", "hypothesis_gloss", "dtw_jpe_body_mm", "dtw_jpe_hands_mm",
            "mpjpe_body_mm", "num_frames_generated", "num_frames_reference"} <= set(rows[0])
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


def test_headline_columns_equal_the_metric_functions_on_the_same_poses(setup, monkeypatch):
    """Every number in results.json, results.md and per_sample.csv, recomputed by calling the metric functions and
    the evaluators directly on the stub's poses and the reference poses (sample i against reference i)."""
    rows = split_rows(load_corpus(str(setup["data"]))["test"], "test")
    system = PerturbedReference(rows)
    # The tiny recogniser transcribes nothing yet (BLEU 0 whatever the pairing), so it is replaced by one that
    # recognises the nearest reference by its mean pose and drops one or two of its glosses: BLEU is then neither 0
    # nor 100 and depends on each hypothesis meeting its own reference.
    ref_means = np.stack([r["poses"].mean(0) for r in rows])

    def recognise(self, poses, attention_mask=None, batch_size=64, return_tokens=False):
        means = np.stack([np.asarray(p).mean(0) for p in poses])
        nearest = np.linalg.norm(means[:, None] - ref_means[None], axis=-1).argmin(1)
        return [" ".join(rows[j]["gloss"][: -1 - j % 2]) for j in nearest]

    monkeypatch.setattr(PoseRecognizerModel, "generate", recognise)
    out = setup["root"] / "headline"
    run_benchmark(
        setup["data"], baselines=False, models={"Perturbed": system}, evaluator_dir=setup["evaluators"], out_dir=out,
        num_examples=0, batch_size=2, show_progress=False,
    )
    spec, ev = get_skeleton("smplx133"), load_evaluators(setup["evaluators"])
    refs = [r["poses"] for r in rows]
    preds = [system.generate(str(r["text"])) for r in rows]
    assert any(p.shape[0] != r.shape[0] for p, r in zip(preds, refs))  # MPJPE has to resample
    ref_pos = [spec.to_positions(r) for r in refs]
    texts = [str(r["text"]) for r in rows]
    candidates = list(dict.fromkeys(texts))
    text_emb = ev.contrastive.get_text_embeddings(candidates).numpy()
    ref_emb = ev.contrastive.get_pose_embeddings(refs).numpy()
    bt_refs = [" ".join(r["gloss"]) for r in rows]

    def expected(poses):
        pos = [spec.to_positions(p) for p in poses]
        d = dtw_jpe(pos, ref_pos, "smplx133", per_sample=True)
        m = mpjpe(pos, ref_pos, "smplx133", per_sample=True, scale=1000.0)
        emb = ev.contrastive.get_pose_embeddings(poses).numpy()
        hyps = ev.recognizer.generate(poses)
        values = {
            **back_translation(hyps, bt_refs, tokenize="none"),
            "fid": fid(emb, ref_emb),
            **siclip_retrieval(similarity=emb @ text_emb.T, targets=[candidates.index(t) for t in texts]),
            "mean_num_frames": float(np.mean([p.shape[0] for p in poses])),
        }
        per_sample = []
        for g in ("body", "hands"):
            values[f"dtw_jpe_{g}"] = 1000.0 * d[f"dtw_jpe_{g}_normalized"]
            values[f"dtw_jpe_{g}_sum"] = d[f"dtw_jpe_{g}"]
            values[f"mpjpe_{g}"] = m[f"mpjpe_{g}"]
        for i in range(len(poses)):
            per_sample.append({
                "hypothesis_gloss": hyps[i],
                "dtw_jpe_body_mm": 1000.0 * d["dtw_jpe_body_normalized_per_sample"][i],
                "dtw_jpe_hands_mm": 1000.0 * d["dtw_jpe_hands_normalized_per_sample"][i],
                "dtw_jpe_body_sum_m": d["dtw_jpe_body_per_sample"][i],
                "dtw_jpe_hands_sum_m": d["dtw_jpe_hands_per_sample"][i],
                "mpjpe_body_mm": m["mpjpe_body_per_sample"][i],
                "mpjpe_hands_mm": m["mpjpe_hands_per_sample"][i],
                "num_frames_generated": poses[i].shape[0],
            })
        return values, per_sample

    saved = json.loads((out / "results.json").read_text())
    md = (out / "results.md").read_text()
    with open(out / "per_sample.csv", newline="") as fh:
        csv_rows = list(csv.DictReader(fh))
    columns = [(key, dec) for _, _, table in TABLES for key, _, dec in table]
    assert columns[-1][0] == "mean_num_frames"
    headline = [(key, dec) for key, dec in columns if key not in ("sibleu", "mean_num_frames")]
    for name, poses in ((GROUND_TRUTH, refs), ("Perturbed", preds)):
        values, per_sample = expected(poses)
        metrics = next(s["metrics"] for s in saved["systems"] if s["name"] == name)
        assert 10 < values["bleu1"] < 100 and (values["dtw_jpe_hands"] == 0) == (name == GROUND_TRUTH)
        for key, dec in headline:
            assert metrics[key] == pytest.approx(values[key], rel=1e-6, abs=1e-9), (name, key)
        assert metrics["siclip_median_rank"] == values["siclip_median_rank"]
        assert metrics["mean_num_frames"] == values["mean_num_frames"]
        # results.md: the row of `name` in each of the three tables, cell by cell
        lines = [line for line in md.splitlines() if line.startswith(f"| {name} |")]
        cells = [c.strip() for line in lines for c in line.strip("|").split("|")[1:]]
        ref_frames = format_value(float(np.mean([r.shape[0] for r in refs])), 1)
        want = [format_value(values.get(key), dec) for key, dec in columns]
        want[-1] = f"{want[-1]} / {ref_frames}"  # the last column: generated / reference mean length
        assert cells == want, name
        sample_rows = [r for r in csv_rows if r["system"] == name]
        assert [r["id"] for r in sample_rows] == [str(r["id"]) for r in rows]
        for got, want in zip(sample_rows, per_sample):
            assert got["hypothesis_gloss"] == want.pop("hypothesis_gloss")
            for key, value in want.items():
                assert float(got[key]) == pytest.approx(round(value, 4), abs=1e-4), (name, key)
    assert not system.poses.keys() - set(texts)


def test_max_samples_reference_lengths_and_trained_evaluator_reuse(setup):
    out = setup["root"] / "small"
    results = run_benchmark(
        setup["data"], baselines=["mean"], models={"Tokens": TokenSystem()}, evaluator_dir=setup["evaluators"],
        out_dir=out, max_samples=2, num_examples=0, num_frames="reference", show_progress=False,
    )
    assert results["num_samples"] == 2
    assert [s["name"] for s in results["systems"]] == [GROUND_TRUTH, "Mean pose", "Tokens"]
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
    refs, spec, evaluators = [np.zeros((5, 133), np.float32)] * 2, get_skeleton("smplx133"), load_evaluators(ev)
    scorer = PoseScorer(refs, ["a b", "c d"], [["A"], ["C"]], spec, evaluators)
    with pytest.raises(ValueError, match="`predictions` has 1 sequences but `references` has 2"):
        scorer.score([np.zeros((5, 133), np.float32)])
    with pytest.raises(ValueError, match="`texts` has 1 entries"):
        PoseScorer(refs, ["a"], [["A"], ["C"]], spec, evaluators)


def test_command_line_helpers():
    assert parse_model_specs(["sald=out/sald", "out/mexd/"]) == {"sald": "out/sald", "mexd": "out/mexd/"}
    with pytest.raises(ValueError, match="twice"):
        parse_model_specs(["a=x", "a=y"])
    with pytest.raises(ValueError, match="NAME=PATH"):
        parse_model_specs(["=x"])
    from hf_sign.cli import build_parser

    args = build_parser().parse_args(
        ["benchmark", "--dataset", "d", "--model", "a=x", "--model", "b=y", "--out", "o", "--max-samples", "3",
         "--no-baselines"]
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
    argv = ["benchmark", "--dataset", str(setup["data"]), "--out", str(out), "--max-samples", "2",
            "--num-examples", "0", "--no-baselines", "--evaluator-config", "tiny"]
    assert main(argv) == 0
    assert calls == [(str(setup["data"]), str(out / "evaluators"), "tiny", 0)]
    saved = json.loads((out / "results.json").read_text())
    assert saved["evaluators"]["trained_here"] and saved["evaluators"]["dir"] == str(out / "evaluators")
    # a second run reuses them; with `--evaluator` the trainer is never called
    assert main(argv) == 0 and len(calls) == 1
    assert main(argv[:-2] + ["--evaluator", str(setup["evaluators"]), "--out", str(out / "again")]) == 0
    assert len(calls) == 1
    capsys.readouterr()

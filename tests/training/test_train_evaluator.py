"""Evaluator training on a toy corpus: quality above chance, outputs, configs/overrides, target choice, resume."""

import json
import math

import numpy as np
import pytest
import torch
from transformers import AutoModel

from hf_sign.data.io import save_corpus
from hf_sign.data.normalization import PoseNormalizer
from hf_sign.data.schema import make_sample, sign_features
from hf_sign.evaluation.evaluators import PoseRecognizerModel, SignTextContrastiveModel
from hf_sign.training.evaluator_trainer import (
    EvaluatorTrainingArguments,
    build_arguments,
    load_splits,
    main,
    resolve_config,
    time_stretch,
    train_evaluators,
)

GLOSSES = ["HELLO", "HOUSE", "BIG", "GO", "EAT", "YOU"]
FEATURE_DIM = 12


def _rows(n, rng, prefix, with_gloss=True):
    """Sentences of 2-4 glosses; each gloss is a distinct constant pose plus its own oscillation."""
    base = np.random.default_rng(123).normal(0, 1.0, (len(GLOSSES), FEATURE_DIM))
    rows = []
    for i in range(n):
        seq = []
        while len(seq) < int(rng.integers(2, 5)):
            g = int(rng.integers(len(GLOSSES)))
            if not seq or seq[-1] != g:
                seq.append(g)
        frames = []
        for g in seq:
            t = np.arange(int(rng.integers(6, 10)))[:, None]
            osc = 0.5 * np.sin(2 * np.pi * (g + 1) * t / 12.0) * np.eye(FEATURE_DIM)[g]
            frames.append(base[g] + osc + rng.normal(0, 0.05, (len(t), FEATURE_DIM)))
        gloss = [GLOSSES[g] for g in seq]
        rows.append(
            make_sample(
                id=f"{prefix}{i}",
                text="the " + " ".join(g.lower() for g in gloss) + ".",
                poses=np.concatenate(frames).astype(np.float32),
                fps=24.0,
                representation="toy",
                gloss=gloss if with_gloss else [],
                language="synth",
            )
        )
    return rows


def _corpus(path, n_train=48, n_eval=12, seed=0, with_gloss=True):
    rng = np.random.default_rng(seed)
    splits = {
        "train": _rows(n_train, rng, "tr", with_gloss),
        "validation": _rows(n_eval, rng, "va", with_gloss),
        "test": _rows(n_eval, rng, "te", with_gloss),
    }
    save_corpus(splits, sign_features(FEATURE_DIM), path, card="---\nlicense: cc0-1.0\n---\ntoy corpus\n")
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluators")
    data = _corpus(root / "toy")
    metrics = train_evaluators(data, str(root / "out"), config="tiny", seed=0)
    return data, root / "out", metrics


def test_tiny_training_beats_chance_and_reports_metrics(trained):
    _, out, metrics = trained
    assert metrics["recognizer_target"] == "gloss" and metrics["num_train"] == 48
    # the toy glosses are trivially separable: near-perfect back-translation, far above chance
    assert metrics["recognizer_test_wer"] < 20 and metrics["recognizer_test_bleu4"] > 60
        # (the toy grammar repeats a few sentences, so the test split has fewer distinct texts than rows)
    chance = 100.0 / metrics["contrastive_test_num_candidates"]
    assert metrics["contrastive_test_num_candidates"] >= 8 and metrics["contrastive_test_r1"] > 3 * chance
    assert json.loads((out / "evaluator_metrics.json").read_text()) == metrics


def test_outputs_are_safetensors_and_load_through_auto_model(trained):
    data, out, metrics = trained
    assert not [p for p in out.rglob("*") if p.suffix in (".bin", ".pkl")]
    rec = AutoModel.from_pretrained(out / "recognizer")
    clip = AutoModel.from_pretrained(out / "contrastive")
    assert isinstance(rec, PoseRecognizerModel) and isinstance(clip, SignTextContrastiveModel)
    assert rec.config.vocab == ["<blank>", "<unk>"] + sorted(GLOSSES)
    assert rec.config.representation == "toy" and "house" in clip.config.text_vocab
    splits = load_splits(data)
    # the normaliser inside both models is the one fitted on the train split, in dataset units
    norm = PoseNormalizer.fit([r["poses"] for r in splits["train"].rows])
    for model in (rec, clip):
        torch.testing.assert_close(model.pose_mean, norm.mean)
        torch.testing.assert_close(model.pose_std, norm.std)
    test = splits["test"].rows
    hyps = rec.generate([r["poses"] for r in test])
    correct = sum(h == " ".join(r["gloss"]) for h, r in zip(hyps, test))
    assert 100.0 * correct / len(test) == pytest.approx(metrics["recognizer_test_exact_match"], abs=0.01)


def test_config_resolution_and_overrides(tmp_path):
    assert resolve_config("tiny").name == "tiny.yaml" and resolve_config("default").is_file()
    for name in ("tiny", "default"):  # every shipped config parses into the dataclass
        assert isinstance(build_arguments("d", "o", config=name), EvaluatorTrainingArguments)
    custom = tmp_path / "mine.yaml"
    custom.write_text("recognizer_hidden_size: 8\nrecognizer_num_attention_heads: 2\nrecognizer_learning_rate: 1e-3\n")
    args = build_arguments(
        "d", "o", config=str(custom), recognizer_num_train_epochs="3", select_best="false", noise_std="0.1"
    )
    assert isinstance(args, EvaluatorTrainingArguments)
    assert args.recognizer_hidden_size == 8 and args.recognizer_num_train_epochs == 3.0
    assert args.recognizer_learning_rate == 1e-3 and args.seed == 0
    assert build_arguments("d", "o", config="tiny", seed="7").seed == 7
    assert args.select_best is False and args.noise_std == pytest.approx(0.1)
    with pytest.raises(ValueError, match="Unknown evaluator config 'nope'"):
        resolve_config("nope")
    with pytest.raises(ValueError, match="recognizer_hiden_size"):
        build_arguments("d", "o", config="tiny", recognizer_hiden_size=8)
    with pytest.raises(ValueError, match="recognizer_batch_size"):
        build_arguments("d", "o", config="tiny", recognizer_batch_size="many")
    with pytest.raises(ValueError, match="target"):
        build_arguments("d", "o", config="tiny", target="phonemes")


def test_text_target_when_glosses_are_missing_and_cli(tmp_path):
    data = _corpus(tmp_path / "noglosses", n_train=16, n_eval=4, with_gloss=False)
    out = tmp_path / "out"
    argv = ["--config", "tiny", "--dataset_dir", data, "--output_dir", str(out), "--train_contrastive", "false",
            "--recognizer_num_train_epochs", "2"]
    assert main(argv) == 0
    rec = AutoModel.from_pretrained(out / "recognizer")
    assert rec.config.target == "text" and "the" in rec.config.vocab and "house" in rec.config.vocab
    assert not (out / "contrastive").exists()
    with pytest.raises(ValueError, match="empty `gloss`"):
        train_evaluators(data, str(tmp_path / "o2"), config="tiny", target="gloss", train_contrastive=False)


def test_resume_from_checkpoint_continues_training(tmp_path):
    data = _corpus(tmp_path / "toy", n_train=16, n_eval=4)
    out = tmp_path / "out"
    common = dict(config="tiny", train_contrastive=False, save_checkpoints=True, recognizer_batch_size=8)
    train_evaluators(data, str(out), recognizer_num_train_epochs=1, **common)
    first = sorted(p.name for p in (out / "checkpoints" / "recognizer").iterdir())
    assert first == ["checkpoint-2"]
    assert not list((out / "checkpoints").rglob("*.bin"))
    # mark the checkpoint's state: a resumed run carries its log history forward, a fresh run would not
    state_file = out / "checkpoints" / "recognizer" / "checkpoint-2" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    state["log_history"].append({"marker": 1, "step": 2})
    state_file.write_text(json.dumps(state))
    train_evaluators(data, str(out), recognizer_num_train_epochs=2, resume_from_checkpoint=True, **common)
    state = json.loads((out / "checkpoints" / "recognizer" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and math.isclose(state["epoch"], 2.0)
    assert {"marker": 1, "step": 2} in state["log_history"]


def test_training_is_deterministic(tmp_path):
    data = _corpus(tmp_path / "toy", n_train=16, n_eval=4)
    kw = dict(config="tiny", train_contrastive=False, recognizer_num_train_epochs=2, seed=3)
    train_evaluators(data, str(tmp_path / "a"), **kw)
    train_evaluators(data, str(tmp_path / "b"), **kw)
    a = AutoModel.from_pretrained(tmp_path / "a" / "recognizer").state_dict()
    b = AutoModel.from_pretrained(tmp_path / "b" / "recognizer").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_time_stretch_augmentation_resamples_each_sequence():
    torch.manual_seed(0)
    poses = torch.zeros(2, 10, 3)
    poses[0, :10] = torch.linspace(0, 9, 10)[:, None]
    poses[1, :4] = torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None]
    mask = torch.arange(10)[None] < torch.tensor([10, 4])[:, None]
    out, new_mask = time_stretch(poses, mask, 0.5)
    lengths = new_mask.sum(1).tolist()
    assert 5 <= lengths[0] <= 15 and 2 <= lengths[1] <= 6 and out.shape[1] == max(lengths)
    # linear resampling keeps the endpoints and the range; padded frames stay zero
    assert out[0, 0, 0] == 0 and out[0, lengths[0] - 1, 0] == pytest.approx(9.0)
    assert out[1, lengths[1] - 1, 0] == pytest.approx(4.0) and (out[1, lengths[1]:] == 0).all()

"""Evaluator training on a toy corpus: quality above chance, outputs, configs/overrides, target choice, the two
stages of the stage runner (each alone, through the registry) and resume."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel

from hf_sign.data.io import save_corpus
from hf_sign.data.normalization import PoseNormalizer
from hf_sign.data.schema import make_sample, sign_features
from hf_sign.evaluation.evaluators import PoseRecognizerModel, SignTextContrastiveModel
from hf_sign.systems import get_system
from hf_sign.training.config_utils import CONFIGS_DIR, load_config
from hf_sign.training.evaluator_data import load_splits, time_stretch
from hf_sign.training.evaluator_trainer import (
    CONFIG_SCHEMA,
    STAGES,
    full_config,
    main,
    resolve_config,
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


ONE_EPOCH = {"recognizer_training.num_train_epochs": 1, "contrastive_training.num_train_epochs": 1}


def test_tiny_training_beats_chance_and_reports_metrics(trained):
    _, out, metrics = trained
    assert metrics["recognizer_target"] == "gloss" and metrics["num_train"] == 48
    # the toy glosses are trivially separable: near-perfect back-translation, far above chance
    assert metrics["recognizer_test_wer"] < 20 and metrics["recognizer_test_bleu4"] > 60
    # (the toy grammar repeats a few sentences, so the test split has fewer distinct texts than rows)
    chance = 100.0 / metrics["contrastive_test_num_candidates"]
    assert metrics["contrastive_test_num_candidates"] >= 8 and metrics["contrastive_test_r1"] > 3 * chance
    assert json.loads((out / "evaluator_metrics.json").read_text()) == metrics
    # what the stage runner records per stage: 40 epochs of 6 (recogniser, batch 8) and 3 (contrastive, 16) steps
    assert metrics["recognizer_global_step"] == 240 and metrics["contrastive_global_step"] == 120
    for stage in STAGES:
        assert metrics[f"{stage}_seconds"] > 0 and metrics[f"{stage}_resumed_from"] is None
    # the resolved config, with the target the data chose; the run's arguments, which the harness reads
    resolved = json.loads((out / "evaluator_config.json").read_text())
    assert resolved == {**full_config("tiny"), "recognizer": {**full_config("tiny")["recognizer"], "target": "gloss"}}
    run = json.loads((out / "evaluator_training_args.json").read_text())
    assert run["dataset_dir"].endswith("toy") and run["config"] == "tiny" and run["seed"] == 0


def test_outputs_are_safetensors_and_load_through_auto_model(trained):
    data, out, metrics = trained
    assert not [p for p in out.rglob("*") if p.suffix in (".bin", ".pkl")]
    rec = AutoModel.from_pretrained(out / "recognizer")
    clip = AutoModel.from_pretrained(out / "contrastive")
    assert isinstance(rec, PoseRecognizerModel) and isinstance(clip, SignTextContrastiveModel)
    assert rec.config.vocab == ["<blank>", "<unk>"] + sorted(GLOSSES)
    assert rec.config.representation == "toy" and "house" in clip.config.text_vocab
    assert rec.config.hidden_size == 32 and clip.config.projection_dim == 16  # the tiny config's sections
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
    custom = tmp_path / "mine.yaml"
    custom.write_text("recognizer:\n  hidden_size: 8\n  num_attention_heads: 2\n"
                      "recognizer_training:\n  learning_rate: 1e-3\n")
    cfg = full_config(str(custom), {"recognizer_training.num_train_epochs": "3", "recognizer_training.select_best":
                                    "false", "contrastive_training": {"noise_std": "0.1"}})
    assert cfg["recognizer"]["hidden_size"] == 8 and cfg["recognizer_training"]["num_train_epochs"] == 3.0
    assert cfg["recognizer_training"]["learning_rate"] == 1e-3 and cfg["seed"] == 0
    assert cfg["recognizer_training"]["select_best"] is False
    assert cfg["contrastive_training"]["noise_std"] == pytest.approx(0.1)  # a section as a mapping: merged by key
    assert cfg["contrastive_training"]["time_stretch"] == 0.0
    assert full_config("tiny", {"seed": "7"})["seed"] == 7
    # the defaults: the models' signatures and the stage arguments; the contrastive batches are not length-grouped
    defaults = CONFIG_SCHEMA.defaults()
    assert defaults["recognizer"]["hidden_size"] == 192 and defaults["recognizer"]["target"] == "auto"
    assert defaults["data"] == {"max_frames": 1000, "min_token_frequency": 1}
    assert defaults["recognizer_training"]["per_device_train_batch_size"] == 32
    assert defaults["contrastive_training"]["group_by_length"] is False
    with pytest.raises(ValueError, match="Unknown evaluator config 'nope'"):
        resolve_config("nope")
    with pytest.raises(ValueError, match="recognizer.hiden_size"):
        full_config("tiny", {"recognizer.hiden_size": 8})
    with pytest.raises(ValueError, match="recognizer_training.per_device_train_batch_size"):
        full_config("tiny", {"recognizer_training.per_device_train_batch_size": "many"})
    with pytest.raises(ValueError, match="recognizer.target"):
        full_config("tiny", {"recognizer.target": "phonemes"})
    with pytest.raises(ValueError, match="text_tokenizer"):
        full_config("tiny", {"contrastive.text_tokenizer": "bpe"})
    with pytest.raises(ValueError, match="time_stretch"):
        full_config("tiny", {"contrastive_training.time_stretch": -0.1})


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIGS_DIR / "evaluator").glob("*.yaml")))
def test_configs_list_only_what_differs_from_the_defaults(name):
    defaults, resolved = CONFIG_SCHEMA.defaults(), full_config(name)
    keys = [f"{s}.{k}" if isinstance(v, dict) else s for s, v in load_config("evaluator", name).items()
            for k in (v if isinstance(v, dict) else [s])]

    def get(cfg, key):
        for part in key.split("."):
            cfg = cfg[part]
        return cfg

    same = [k for k in keys if get(resolved, k) == get(defaults, k)]
    assert keys and not same, f"{name}.yaml restates defaults: {same}"


def test_text_target_when_glosses_are_missing_and_cli(tmp_path):
    data = _corpus(tmp_path / "noglosses", n_train=16, n_eval=4, with_gloss=False)
    out = tmp_path / "out"
    argv = ["--config", "tiny", "--dataset_dir", data, "--output_dir", str(out), "--stage", "recognizer",
            "--set", "recognizer_training.num_train_epochs=2"]
    assert main(argv) == 0
    rec = AutoModel.from_pretrained(out / "recognizer")
    assert rec.config.target == "text" and "the" in rec.config.vocab and "house" in rec.config.vocab
    assert not (out / "contrastive").exists()
    with pytest.raises(ValueError, match="empty `gloss`"):
        train_evaluators(data, str(tmp_path / "o2"), config="tiny", stage="recognizer", recognizer={"target": "gloss"})


def test_stages_run_one_at_a_time_through_the_registry(tmp_path):
    """`--stage` trains one model and keeps what the other stage wrote; the registry knows the stages."""
    data = _corpus(tmp_path / "toy", n_train=16, n_eval=4)
    out = tmp_path / "out"
    system = get_system("evaluator")
    assert system.stages == STAGES == ("recognizer", "contrastive")
    metrics = system.run_training(data, out, config="tiny", stage="recognizer", overrides=ONE_EPOCH)
    assert (out / "recognizer" / "config.json").is_file() and not (out / "contrastive").exists()
    assert metrics["recognizer_global_step"] == 2 and not [k for k in metrics if k.startswith("contrastive")]
    assert json.loads((out / "evaluator_training_args.json").read_text())["stage"] == "recognizer"
    # markers: a retrained recogniser would rewrite its weights and its metrics
    weights_mtime = (out / "recognizer" / "model.safetensors").stat().st_mtime_ns
    (out / "evaluator_metrics.json").write_text(json.dumps({**metrics, "recognizer_test_wer": -1.0}))

    metrics = system.run_training(data, out, config="tiny", stage="contrastive", overrides=ONE_EPOCH)
    assert (out / "contrastive" / "config.json").is_file() and metrics["contrastive_global_step"] == 1
    assert metrics["recognizer_test_wer"] == -1.0 and metrics["recognizer_global_step"] == 2  # the first run's, kept
    assert (out / "recognizer" / "model.safetensors").stat().st_mtime_ns == weights_mtime
    with pytest.raises(ValueError, match=r"`--stage` 'vae' is not a stage of 'evaluator'"):
        system.run_training(data, tmp_path / "o2", config="tiny", stage="vae")
    with pytest.raises(ValueError, match="`stage` must be one of"):
        train_evaluators(data, tmp_path / "o3", config="tiny", stage="vae")


def test_resume_continues_from_the_checkpoint(tmp_path):
    """What only a resume does: markers planted in the checkpoint's state and weights survive, and the second run
    adds only the optimizer steps after the checkpoint's."""
    data = _corpus(tmp_path / "toy", n_train=16, n_eval=4)
    out = tmp_path / "out"
    common = {"recognizer_training.logging_steps": 1}
    train_evaluators(data, out, config="tiny", stage="recognizer",
                     **{**common, "recognizer_training.num_train_epochs": 1})
    ckpt = out / "checkpoints" / "recognizer" / "checkpoint-2"
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["checkpoint-2"]
    assert not list((out / "checkpoints").rglob("*.bin"))
    state = json.loads((ckpt / "trainer_state.json").read_text())
    state["log_history"].append({"planted_marker": 1.0, "step": 2})
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    weights = load_file(ckpt / "model.safetensors")
    weights["ctc_head.bias"] = torch.full_like(weights["ctc_head.bias"], 100.0)  # a constant shift of every logit
    save_file(weights, ckpt / "model.safetensors", metadata={"format": "pt"})

    metrics = train_evaluators(data, out, config="tiny", stage="recognizer", resume_from_checkpoint=True,
                               **{**common, "recognizer_training.num_train_epochs": 2})
    assert metrics["recognizer_resumed_from"] == str(ckpt) and metrics["recognizer_global_step"] == 4
    history = json.loads((ckpt.parent / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    assert {"planted_marker": 1.0, "step": 2} in history
    # steps 1-2 are the first run's log entries (kept from the checkpoint), only steps 3-4 ran again
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3, 4]
    assert [h for h in history if "loss" in h][:2] == [h for h in state["log_history"] if "loss" in h]
    # trained on from the planted weights: two Adam steps of lr <= 3e-3 move the bias by at most about 0.006
    bias = AutoModel.from_pretrained(out / "recognizer").ctc_head.bias
    assert ((bias > 99.99) & (bias < 100.01)).all()
    # without a checkpoint to resume from, the stage trains from scratch (and says so in the metrics)
    fresh = train_evaluators(data, tmp_path / "fresh", config="tiny", stage="contrastive",
                             resume_from_checkpoint=True, **ONE_EPOCH)
    assert fresh["contrastive_resumed_from"] is None and fresh["contrastive_global_step"] == 1


def test_training_is_deterministic(tmp_path):
    data = _corpus(tmp_path / "toy", n_train=16, n_eval=4)
    kw = dict(config="tiny", stage="recognizer", seed=3, recognizer_training={"num_train_epochs": 2})
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

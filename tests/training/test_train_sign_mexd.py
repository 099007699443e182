"""Sign-MExD training on a toy SynthSign corpus, through the system registry: the output folder as a pipeline, the
loss terms, learning (an untrained model fails), resume, the data checks, and the CLI's `models params` and
`plot routing`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from PIL import Image

from hf_sign.cli import main
from hf_sign.data.io import load_corpus, save_corpus, split_rows
from hf_sign.data.schema import make_sample, sign_features
from hf_sign.data.synthsign import build_synthsign
from hf_sign.models.sign_mexd import SignMExDTransformer
from hf_sign.pipelines.pipeline_sign_mexd import SignMExDPipeline
from hf_sign.render.routing import heatmap_size
from hf_sign.systems import get_system
from hf_sign.training.sign_mexd_stages import DIFFUSION_STAGE
from hf_sign.training.sign_mexd_trainer import full_config
from hf_sign.training.stages import StageContext
from hf_sign.training.trainer_utils import load_pose_splits, train_with_resume

SYSTEM = get_system("sign-mexd")
ONE_EPOCH = {"training.num_train_epochs": 1}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthsign")
    build_synthsign(path, seed=0, num_train=16, num_validation=4, num_test=4, show_progress=False)
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("mexd")
    metrics = SYSTEM.run_training(corpus, out, config="tiny", seed=0)
    return out, metrics


def _rewrite(corpus, path, change):
    """A copy of `corpus` with `change(index, row)` applied to every train row."""
    splits = {}
    for split, ds in load_corpus(str(corpus)).items():
        rows = split_rows(ds, split)
        keep = ("id", "text", "poses", "fps", "representation", "gloss", "gloss_spans")
        rows = [make_sample(**{k: r[k] for k in keep}) for r in rows]
        splits[split] = [change(i, dict(r)) if split == "train" else r for i, r in enumerate(rows)]
    save_corpus(splits, sign_features(133), path, card="---\nlicense: cc0-1.0\n---\ntoy\n")
    return path


# ------------------------------------------------------------------------------------------------ the run
def test_training_writes_a_loadable_pipeline(trained, corpus):
    out, metrics = trained
    for name in ("model_index.json", "pipeline_sign_mexd.py", "sign_mexd_config.json", "sign_mexd_metrics.json"):
        assert (out / name).is_file(), name
    for sub in ("transformer", "text_encoder", "tokenizer", "scheduler", "normalizer"):
        assert (out / sub).is_dir(), sub
    ckpt = next((out / "checkpoints" / "diffusion").glob("checkpoint-*"))
    assert (ckpt / "model.safetensors").is_file() and not (ckpt / "training_args.bin").exists()
    assert metrics["num_train"] == 16 and metrics["diffusion_global_step"] == 6  # 3 epochs x 2 batches of 8
    assert metrics["num_train_without_gloss"] == 0 and metrics["diffusion_resumed_from"] is None
    assert all(np.isfinite(metrics[f"diffusion_val_{k}"]) for k in ("loss", "loss_joint", "loss_bone"))
    state = json.loads((ckpt / "trainer_state.json").read_text())
    logged = [h for h in state["log_history"] if "loss" in h]
    assert logged and all({"loss_joint", "loss_bone", "loss_sample"} <= set(h) for h in logged)
    rows = split_rows(load_corpus(str(corpus))["test"], "test")
    remote = DiffusionPipeline.from_pretrained(out, trust_remote_code=True)
    for pipe in (SignMExDPipeline.from_pretrained(out), remote):
        assert type(pipe).__name__ == "SignMExDPipeline" and pipe.scheduler.config.prediction_type == "sample"
        assert type(pipe.scheduler).__name__ == "DDIMScheduler" and pipe.config.fps == 24.0
        pipe.set_progress_bar_config(disable=True)
        result = pipe(gloss=[r["gloss"] for r in rows[:2]], num_inference_steps=2, generator=torch.manual_seed(0))
        assert all(p.shape == (n, 133) and np.isfinite(p).all() for p, n in zip(result.poses, result.num_frames))
    durations = pipe.config.gloss_durations
    glosses = {g for r in split_rows(load_corpus(str(corpus))["train"], "train") for g in r["gloss"]}
    assert set(durations) == glosses and all(d > 0 for d in durations.values())
    resolved = json.loads((out / "sign_mexd_config.json").read_text())
    assert resolved == full_config("tiny")


def test_training_learns_and_fails_without_learning(corpus, tmp_path):
    """The loss on ONE fixed batch with fixed draws (noise, timesteps, no augmentation) drops clearly after a short
    training; with learning rate 0 it does not."""

    def fixed_batch_loss(lr):
        cfg = full_config("tiny", {"training.num_train_epochs": 10, "training.learning_rate": lr})
        ctx = StageContext(cfg, load_pose_splits(str(corpus), cfg["data"]["max_frames"]), tmp_path / f"lr{lr}")
        torch.manual_seed(0)
        trainer = DIFFUSION_STAGE.build_trainer(ctx)
        batch = trainer.data_collator(trainer.train_dataset.rows[:8])
        g = torch.Generator().manual_seed(1234)
        draws = {"noise": torch.randn(batch["poses"].shape, generator=g),
                 "timesteps": torch.randint(0, 1000, (8,), generator=g)}

        def loss():
            with torch.no_grad():
                return trainer.batch_loss(trainer.model, batch, training=False, **draws)

        before = loss()
        train_with_resume(trainer, resume=False)
        return before, loss()

    before, after = fixed_batch_loss(3e-3)
    assert after["loss"] < 0.7 * before["loss"], (float(before["loss"]), float(after["loss"]))
    assert after["loss_joint"] < 0.8 * before["loss_joint"] and after["loss_bone"] < before["loss_bone"]
    frozen_before, frozen_after = fixed_batch_loss(0.0)
    assert float(frozen_after["loss"]) == pytest.approx(float(frozen_before["loss"]), rel=1e-6)


def test_resume_continues_from_the_checkpoint(corpus, tmp_path):
    from safetensors.torch import load_file, save_file

    out = tmp_path / "run"
    SYSTEM.run_training(corpus, out, config="tiny", overrides=ONE_EPOCH)
    ckpt = out / "checkpoints" / "diffusion" / "checkpoint-2"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    state["log_history"].append({"planted_marker": 1.0, "step": 2})
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    weights = load_file(ckpt / "model.safetensors")
    name = "transformer.proj_out.bias"
    weights[name] = torch.full_like(weights[name], 100.0)
    save_file(weights, ckpt / "model.safetensors", metadata={"format": "pt"})

    metrics = SYSTEM.run_training(corpus, out, config="tiny", overrides={"training.num_train_epochs": 2},
                                  resume_from_checkpoint=True)
    assert metrics["diffusion_resumed_from"] == str(ckpt) and metrics["diffusion_global_step"] == 4
    history = json.loads((out / "checkpoints" / "diffusion" / "checkpoint-4" / "trainer_state.json").read_text())
    assert {"planted_marker": 1.0, "step": 2} in history["log_history"]
    assert [h["step"] for h in history["log_history"] if "loss" in h] == [1, 2, 3, 4]
    bias = SignMExDPipeline.from_pretrained(out).transformer.proj_out.bias
    # trained on from the planted weights: two Adam steps of lr 3e-3 move them by about 0.006
    assert (bias - 100.0).abs().max() < 0.1 and (bias != 100.0).all()


# ------------------------------------------------------------------------------------------------ data checks
def test_samples_without_glosses_are_counted_not_silently_dropped(corpus, tmp_path):
    half = _rewrite(corpus, tmp_path / "half", lambda i, r: r if i % 3 else {**r, "gloss": [], "gloss_spans": []})
    n = sum(1 for r in split_rows(load_corpus(str(half))["train"], "train") if not r["gloss"])
    assert n == 6
    metrics = SYSTEM.run_training(half, tmp_path / "out", config="tiny",
                                  overrides={**ONE_EPOCH, "training.per_device_train_batch_size": 5})
    assert metrics["num_train_without_gloss"] == n and metrics["num_train"] == 16 - n
    assert metrics["diffusion_global_step"] == 2  # 10 glossed samples in batches of 5 (16 would take 4)
    bare = _rewrite(corpus, tmp_path / "bare", lambda i, r: {**r, "gloss": [], "gloss_spans": []})
    with pytest.raises(ValueError, match="conditioned on glosses"):
        SYSTEM.run_training(bare, tmp_path / "bare-out", config="tiny")
    assert not (tmp_path / "bare-out" / "checkpoints").exists()


def test_too_long_gloss_sequences_fail_before_training(corpus, tmp_path):
    advice = r"max_position_embeddings` = 5\. Pass --set gloss_encoder.max_position_embeddings=9"
    with pytest.raises(ValueError, match=advice):
        SYSTEM.run_training(corpus, tmp_path, config="tiny", overrides={"gloss_encoder.max_position_embeddings": 5})
    assert not (tmp_path / "checkpoints").exists()


def test_unaligned_corpus_trains_with_the_share_length_model(corpus, tmp_path):
    unaligned = _rewrite(corpus, tmp_path / "unaligned", lambda i, r: {**r, "gloss_spans": []})
    SYSTEM.run_training(unaligned, tmp_path / "out", config="tiny", overrides=ONE_EPOCH)
    pipe = SignMExDPipeline.from_pretrained(tmp_path / "out")
    assert pipe.config.length_offset == 0.0 and pipe.config.transition_frames == 0.0


# ------------------------------------------------------------------------------------------------ the CLI
def test_models_params_prints_table_i_and_the_configs(capsys):
    assert main(["models", "params", "sign-mexd"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["table_i"]) == 12 and set(report["configs"]) >= {"tiny", "small-dense", "small-moe", "paper-xl"}
    row = report["table_i"]["xxl-8e"]
    assert row["paper_total"] == 52_650_000 and abs(row["total"] - row["paper_total"]) / row["paper_total"] < 0.001
    assert main(["models", "params", "sign-mexd", "--config", "tiny"]) == 0
    tiny = json.loads(capsys.readouterr().out)
    assert tiny == report["configs"]["tiny"] and tiny["total"] == tiny["transformer_total"] + tiny["gloss_encoder"]


def test_generate_takes_glosses_only(trained, corpus, tmp_path, capsys):
    out, _ = trained
    args = ["generate", "--model", str(out), "--out", str(tmp_path), "--format", "npz", "--num-inference-steps", "2"]
    glosses = " ".join(split_rows(load_corpus(str(corpus))["train"], "train")[0]["gloss"])
    assert main(args + ["--gloss", glosses, "--num-frames", "12"]) == 0
    assert np.load(tmp_path / "sample-000.npz", allow_pickle=False)["poses"].shape == (12, 133)
    assert '"unknown_glosses": []' in capsys.readouterr().out
    assert main(args + ["--text", "i went to the store"]) == 2
    assert "conditioned on gloss" in capsys.readouterr().err


def test_plot_routing_writes_the_map(trained, tmp_path, capsys):
    out, _ = trained
    png = tmp_path / "routing.png"
    glosses = "ME STORE GO ZEPPELIN"
    assert main(["plot", "routing", "--model", str(out), "--gloss", glosses, "--out", str(png),
                 "--num-inference-steps", "3"]) == 0
    printed = capsys.readouterr().out
    assert "4 glosses x 2 experts" in printed and "ZEPPELIN" in printed
    assert Image.open(png).size == heatmap_size(4, 2)
    assert main(["plot", "routing", "--model", str(out), "--gloss", glosses, "--out", str(tmp_path / "r.png"),
                 "--layer", "3"]) == 2
    assert "`layer` must index one of the model's 1 MoE layer" in capsys.readouterr().err
    dense = tmp_path / "dense"
    pipe = SignMExDPipeline.from_pretrained(out)
    config = {k: v for k, v in pipe.transformer.config.items() if not k.startswith("_")}
    SignMExDPipeline(**{**pipe.components, "transformer": SignMExDTransformer(**{**config, "num_experts": 0})}
                     ).save_pretrained(dense)
    assert main(["plot", "routing", "--model", str(dense), "--gloss", glosses, "--out", str(tmp_path / "d.png")]) == 2
    assert "no MoE layer" in capsys.readouterr().err

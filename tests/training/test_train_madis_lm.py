"""MaDiS's LM stages (`pretrain`, `sft`) on a toy SynthSign corpus, through the system registry: the pipeline folder,
the validation metrics, learning (and none at learning rate 0), fine-tuning from the pretrained LM, the baselines,
resume, the CLI and bad configs."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from hf_sign.cli import main
from hf_sign.systems import get_system
from hf_sign.training.madis_lm_stages import build_pretrain_trainer, build_sft_trainer
from hf_sign.training.madis_trainer import full_config
from hf_sign.training.stages import StageContext
from hf_sign.training.trainer_utils import load_pose_splits

SYSTEM = get_system("madis")
STEPS_PER_EPOCH = 3  # 12 train sentences at batch 4
QUICK_TOKENIZER = {"tokenizer_training.num_train_epochs": 5}
AR = {"lm.bidirectional": False, "lm.sign_embedding": "average", "sft.alpha": 0.0, "sft.sign_canvas": "fit"}


@pytest.fixture(scope="module")
def tokenized(tiny_synthsign, tmp_path_factory):
    """An output folder holding the tokenizer stage's outputs (copied by the tests that train the LM on them)."""
    out = tmp_path_factory.mktemp("madis-tokenizer")
    SYSTEM.run_training(tiny_synthsign, out, config="tiny", stage="tokenizer", seed=0, overrides=QUICK_TOKENIZER)
    return out


@pytest.fixture(scope="module")
def trained(tiny_synthsign, tmp_path_factory):
    """Every stage of `tiny`, through the registry."""
    out = tmp_path_factory.mktemp("madis-all")
    metrics = SYSTEM.run_training(tiny_synthsign, out, config="tiny", seed=0, overrides=QUICK_TOKENIZER)
    return out, metrics


def copy_tokenizers(tokenized, dest):
    for name in ("part_vqvae", "normalizer", "text_tokenizer", "madis_metrics.json"):
        src = tokenized / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


def lm_weights(folder):
    return load_file(str(folder / "model.safetensors"))


# ------------------------------------------------------------------------------------------------ the pipeline folder
def test_writes_the_pipeline_folder(trained):
    out, metrics = trained
    assert (out / "model_index.json").is_file()
    pipe = SYSTEM.pipeline_class().from_pretrained(str(out))
    lm, vqvae = pipe.lm, pipe.part_vqvae
    # the LM's vocabulary follows the tokenizers; the codebooks are the VQ-VAE's; fine-tuned with MoP
    assert lm.config.text_vocab_size == len(pipe.text_tokenizer)
    assert lm.config.part_codebook_sizes == list(vqvae.config.codebook_sizes) == [16, 16, 16]
    assert all(torch.equal(lm.codebook(p), vqvae.codebook(p)) for p in range(3))
    assert lm.config.sign_embedding == "mop" and lm.config.bidirectional
    assert json.loads((out / "pretrained_lm" / "config.json").read_text())["sign_embedding"] == "average"
    assert pipe.scheduler.config.pivot_mode == "uniform" and pipe.scheduler.config.eos_token_id == 3
    out_tokens = pipe("a sentence to sign", num_inference_steps=4, output_type="tokens")
    assert out_tokens.poses[0].ndim == 2 and out_tokens.poses[0].shape[1] == 3
    for stage in ("pretrain", "sft"):
        assert metrics[f"{stage}_global_step"] == 4 * STEPS_PER_EPOCH
        assert 0 <= metrics[f"{stage}_val_code_accuracy"] <= 1 and 0 <= metrics[f"{stage}_val_token_accuracy"] <= 1
        for term in ("loss", "token_loss", "latent_loss", "physical_loss"):
            assert metrics[f"{stage}_val_{term}"] > 0, (stage, term)
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pkl"))


# ------------------------------------------------------------------------------------------------ learning
def test_lm_stages_learn_and_not_at_learning_rate_zero(trained, tokenized, tiny_synthsign, tmp_path):
    _, metrics = trained
    frozen = {"pretraining.learning_rate": 0.0, "sft.learning_rate": 0.0}
    dest = copy_tokenizers(tokenized, tmp_path)
    for stage in ("pretrain", "sft"):
        SYSTEM.run_training(tiny_synthsign, dest, config="tiny", stage=stage, seed=0, overrides=frozen)
    untrained = json.loads((dest / "madis_metrics.json").read_text())
    # the same validation draws: trained, the losses are lower and the masked tokens better predicted
    for stage in ("pretrain", "sft"):
        assert metrics[f"{stage}_val_token_loss"] < 0.85 * untrained[f"{stage}_val_token_loss"], stage
        assert metrics[f"{stage}_val_latent_loss"] < untrained[f"{stage}_val_latent_loss"], stage
        assert metrics[f"{stage}_val_token_accuracy"] > untrained[f"{stage}_val_token_accuracy"], stage


def test_sft_starts_from_the_pretrained_lm(trained, tiny_synthsign, tmp_path):
    out, _ = trained
    dest = copy_tokenizers(out, tmp_path)
    shutil.copytree(out / "pretrained_lm", dest / "pretrained_lm")
    SYSTEM.run_training(tiny_synthsign, dest, config="tiny", stage="sft", seed=1, overrides={"sft.learning_rate": 0.0})
    # at lr 0 the fine-tuned LM is the pretrained one (trained at lr 3e-3, so not an initialisation)
    pretrained, finetuned = lm_weights(dest / "pretrained_lm"), lm_weights(dest / "lm")
    assert pretrained.keys() == finetuned.keys()
    assert all(torch.equal(pretrained[k], finetuned[k]) for k in pretrained)


@pytest.mark.parametrize("mode, probability", [("uniform", 1.0), ("contiguous", 1.0), ("none", 0.0)])
def test_stages_mask_as_configured(mode, probability, trained, tiny_synthsign, tmp_path):
    out, _ = trained
    dest = copy_tokenizers(out, tmp_path)
    shutil.copytree(out / "pretrained_lm", dest / "pretrained_lm")
    data = load_pose_splits(str(tiny_synthsign), 400)
    cfg = full_config("tiny", {"scheduler.pivot_mode": mode, "sft.alpha": 0.25, "pretraining.mask_text": False})
    sft = build_sft_trainer(StageContext(config=cfg, data=data, output_dir=dest))
    # sft: text kept, the sign canvas in the states of the configured sampler, alpha on both latent terms
    assert sft.loss_options() == dict(
        mask_text=False,
        latent_loss_weight=0.25,
        physical_loss_weight=0.25,
        checkpoint_state_probability=probability,
        min_mask_ratio=1e-3,
    )
    assert sft.noise_scheduler.config.pivot_mode == mode and sft.model.config.sign_embedding == "mop"
    pretrain = build_pretrain_trainer(StageContext(config=cfg, data=data, output_dir=dest))
    assert pretrain.loss_options() == dict(
        mask_text=False, latent_loss_weight=1.0, physical_loss_weight=1.0, min_mask_ratio=1e-3
    )
    assert pretrain.model.config.sign_embedding == "average"


def test_mdlm_baseline_starts_from_scratch(trained, tokenized, tiny_synthsign, tmp_path):
    out, _ = trained
    dest = copy_tokenizers(tokenized, tmp_path)
    shutil.copytree(out / "pretrained_lm", dest / "pretrained_lm")  # present, but not part of this config's run
    overrides = {"train_stages": ["tokenizer", "sft"], "sft.learning_rate": 0.0, "lm.sign_embedding": "average"}
    SYSTEM.run_training(tiny_synthsign, dest, config="tiny", stage="sft", seed=0, overrides=overrides)
    pretrained, finetuned = lm_weights(dest / "pretrained_lm"), lm_weights(dest / "lm")
    backbone = [k for k in pretrained if k.startswith("model.layers.")]
    assert backbone and not any(torch.equal(pretrained[k], finetuned[k]) for k in backbone if "norm" not in k)
    cfg = full_config("mdlm-baseline")
    assert cfg["train_stages"] == ["tokenizer", "sft"] and cfg["scheduler"]["pivot_mode"] == "none"
    assert (cfg["lm"]["sign_embedding"], cfg["sft"]["alpha"]) == ("average", 0.0)


def test_ar_baseline_through_the_registry(tokenized, tiny_synthsign, tmp_path):
    dest = copy_tokenizers(tokenized, tmp_path)
    overrides = {**AR, "train_stages": ["tokenizer", "sft"]}
    metrics = SYSTEM.run_training(tiny_synthsign, dest, config="tiny", stage="sft", seed=0, overrides=overrides)
    assert metrics["sft_global_step"] == 4 * STEPS_PER_EPOCH and "sft_val_latent_loss" not in metrics
    assert 0 <= metrics["sft_val_token_accuracy"] <= 1 and metrics["sft_val_token_loss"] > 0
    pipe = SYSTEM.pipeline_class().from_pretrained(str(dest))
    assert not pipe.lm.config.bidirectional and not (dest / "pretrained_lm").exists()
    assert pipe("a sentence to sign", output_type="tokens").poses[0].shape[1] == 3  # KV-cache decoding
    cfg = full_config("ar-baseline")
    assert cfg["train_stages"] == ["tokenizer", "sft"] and not cfg["lm"]["bidirectional"]
    assert (
        cfg["sft"]["alpha"] == 0.0
        and cfg["lm"]["num_hidden_layers"] == full_config("small")["lm"]["num_hidden_layers"]
    )


# ------------------------------------------------------------------------------------------------ resume, CLI
def test_resume_from_checkpoint(tokenized, tiny_synthsign, tmp_path):
    dest = copy_tokenizers(tokenized, tmp_path)
    first = SYSTEM.run_training(
        tiny_synthsign, dest, config="tiny", stage="pretrain", overrides={"pretraining.num_train_epochs": 1}
    )
    assert first["pretrain_global_step"] == STEPS_PER_EPOCH and first["pretrain_resumed_from"] is None
    second = SYSTEM.run_training(
        tiny_synthsign,
        dest,
        config="tiny",
        stage="pretrain",
        overrides={"pretraining.num_train_epochs": 2},
        resume_from_checkpoint=True,
    )
    assert second["pretrain_resumed_from"].endswith(f"checkpoint-{STEPS_PER_EPOCH}")
    assert second["pretrain_global_step"] == 2 * STEPS_PER_EPOCH
    assert (dest / "checkpoints" / "pretrain" / f"checkpoint-{2 * STEPS_PER_EPOCH}" / "model.safetensors").is_file()


def test_cli_trains_every_stage_into_a_pipeline_folder(tiny_synthsign, tmp_path):
    args = f"train madis --config tiny --dataset {tiny_synthsign} --output-dir {tmp_path}".split()
    quick = ["tokenizer_training.num_train_epochs=1", "pretraining.num_train_epochs=1", "sft.num_train_epochs=1"]
    assert main(args + [item for setting in quick for item in ("--set", setting)]) == 0
    assert (tmp_path / "model_index.json").is_file() and (tmp_path / "lm" / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------------------ bad configs
@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"sft.alpha": -1.0}, "alpha"),
        ({"pretraining.sign_canvas": "half"}, "sign_canvas"),
        ({"pretraining.min_mask_ratio": 0.0}, "min_mask_ratio"),
        ({"sft.checkpoint_state_probability": 2.0}, "checkpoint_state_probability"),
        ({"lm.sign_embedding": "sum"}, "sign_embedding"),
        ({"lm.text_vocab_size": 10}, "text_vocab_size"),  # follows the text tokenizer
        ({"lm.max_position_embeddings": 64}, "max_position_embeddings"),
        ({"lm.bidirectional": False}, "sft.alpha"),  # the AR baseline has no latent terms
        ({"scheduler.pivot_mode": "random"}, "pivot_mode"),
        ({"scheduler.mask_token_id": 5}, "mask_token_id"),
        ({"train_stages": ["tokenizer", "finetune"]}, "train_stages"),
    ],
)
def test_bad_config_is_refused(overrides, field, tiny_synthsign, tmp_path):
    with pytest.raises(ValueError, match=field):
        SYSTEM.run_training(tiny_synthsign, tmp_path, config="tiny", overrides=overrides)
    assert not (tmp_path / "madis_config.json").exists()


@pytest.mark.parametrize(
    "stage, overrides, field",
    [
        ("pretrain", {"lm.max_text_tokens": 3}, "max_text_tokens"),
        ("pretrain", {**AR}, "bidirectional"),  # the AR baseline has no masked pretraining
        ("sft", {}, "pretrain"),  # the config trains `pretrain`, which has not run
    ],
)
def test_lm_stage_refuses_what_it_cannot_train(stage, overrides, field, tokenized, tiny_synthsign, tmp_path):
    dest = copy_tokenizers(tokenized, tmp_path)
    with pytest.raises(ValueError, match=field):
        SYSTEM.run_training(tiny_synthsign, dest, config="tiny", stage=stage, overrides=overrides)


def test_lm_stage_needs_the_tokenizer_stage(tiny_synthsign, tmp_path):
    with pytest.raises(ValueError, match="tokenizer"):
        SYSTEM.run_training(tiny_synthsign, tmp_path, config="tiny", stage="pretrain")

"""Stable Signer's renderer stage through the stage runner: the saved folders and metrics, learning on a fixed batch
(an untrained renderer, learning rate 0, fails it), resuming, and config checks."""

from __future__ import annotations

import json

import pytest
import torch

from hf_sign.data.synthsign import build_synthsign
from hf_sign.pipelines.pipeline_sign_video import SignVideoPipeline
from hf_sign.training import stable_signer_renderer as stage_module
from hf_sign.training.config_utils import ConfigSchema
from hf_sign.training.stable_signer_renderer import (
    RENDERER_CONFIG_SECTIONS,
    RENDERER_STAGE,
    RendererSettings,
    RendererTrainingArguments,
    renderer_loss,
)
from hf_sign.training.stages import StageContext, run_stages
from hf_sign.training.trainer_utils import load_pose_splits, train_with_resume

SCHEMA = ConfigSchema("stable-signer", RENDERER_CONFIG_SECTIONS, top_level={"seed": 0, "num_threads": 0})
LEARNING_RATE = 2e-3
TINY = {
    "renderer": {
        "image_size": 32,
        "block_out_channels": [16, 32],
        "attention_levels": 1,
        "attention_head_dim": 8,
        "cross_attention_dim": 16,
        "conditioning_channels": 8,
        "reference_block_out_channels": [16, 16],
        "reference_token_grid_size": 2,
        "num_styles": 3,
    },
    "renderer_training": {
        "num_train_epochs": 1,
        "per_device_train_batch_size": 8,
        "learning_rate": LEARNING_RATE,
        "warmup_steps": 0.0,
        "frames_per_sequence": 2,
        "validation_sequences": 2,
        "validation_frames": 2,
        "validation_inference_steps": 2,
        "logging_steps": 1,
    },
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("synthsign")
    build_synthsign(path, seed=0, num_train=8, num_validation=2, num_test=2, show_progress=False)
    return path


def _config(**overrides):
    return SCHEMA.resolve(TINY, overrides)


def test_stage_run_saves_the_renderer(corpus, tmp_path):
    out = run_stages(
        [RENDERER_STAGE], _config(), tmp_path, lambda: load_pose_splits(str(corpus), 400), pipeline_folder=False
    )
    for name in ("unet", "controlnet", "reference_encoder", "renderer_scheduler"):
        assert (out / name).is_dir(), name
    assert list((out / "unet").glob("*.safetensors"))
    metrics = json.loads((out / "training_metrics.json").read_text())
    assert metrics["renderer_global_step"] == 2  # 8 sequences x 2 frames at batch 8
    assert metrics["renderer_val_num_frames"] == 4
    for key in ("renderer_val_ssim", "renderer_val_hand_ssim", "renderer_val_skeleton_ssim"):
        assert -1.0 <= metrics[key] <= 1.0, key
    pipe = SignVideoPipeline.from_renderer_folder(out)
    pipe.set_progress_bar_config(disable=True)
    poses = load_pose_splits(str(corpus), 400)["validation"][0]["poses"][:3]
    assert pipe(poses=poses, num_inference_steps=2).frames.shape == (3, 32, 32, 3)
    # resume: a second epoch from the first one's checkpoint
    resumed = run_stages(
        [RENDERER_STAGE],
        _config(**{"renderer_training.num_train_epochs": 2}),
        tmp_path,
        lambda: load_pose_splits(str(corpus), 400),
        pipeline_folder=False,
        resume_from_checkpoint=True,
    )
    metrics = json.loads((resumed / "training_metrics.json").read_text())
    assert metrics["renderer_resumed_from"].endswith("checkpoint-2") and metrics["renderer_global_step"] == 4


def test_renderer_learns(corpus, tmp_path):
    cfg = _config(**{"renderer_training.num_train_epochs": 16, "renderer_training.validation_sequences": 0})
    ctx = StageContext(cfg, load_pose_splits(str(corpus), 400), tmp_path)
    torch.manual_seed(0)
    trainer = RENDERER_STAGE.build_trainer(ctx)
    dataset = trainer.train_dataset
    batch = trainer.data_collator([dataset.draw(i, 3 * i % 20, i % 3, (3 * i + 7) % 20) for i in range(8)])
    g = torch.Generator().manual_seed(1234)
    noise = torch.randn(batch["sample"].shape, generator=g)
    timesteps = torch.randint(0, 1000, (8,), generator=g)

    def fixed_loss():
        with torch.no_grad():
            return float(renderer_loss(trainer.model.eval(), batch, trainer.noise_scheduler, noise, timesteps)["loss"])

    before = fixed_loss()
    train_with_resume(trainer, resume=False)
    after = fixed_loss()
    assert trainer.state.global_step == 32
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_renderer_loss_targets(corpus, tmp_path, monkeypatch, prediction_type):
    """The loss is zero exactly when the UNet outputs what `prediction_type` names: the noise, the clean frame or the
    velocity, and positive for the other two."""
    cfg = _config(**{"renderer.prediction_type": prediction_type})
    trainer = RENDERER_STAGE.build_trainer(StageContext(cfg, load_pose_splits(str(corpus), 400), tmp_path))
    assert trainer.noise_scheduler.config.prediction_type == prediction_type
    batch = trainer.data_collator([trainer.train_dataset.draw(i, i, i % 3, i + 1) for i in range(2)])
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(batch["sample"].shape, generator=g)
    timesteps = torch.tensor([100, 700])
    outputs = {
        "epsilon": noise,
        "sample": batch["sample"],
        "v_prediction": trainer.noise_scheduler.get_velocity(batch["sample"], noise, timesteps),
    }
    for kind, output in outputs.items():
        monkeypatch.setattr(stage_module, "renderer_noise_prediction", lambda *args, output=output: output)
        loss = float(renderer_loss(trainer.model, batch, trainer.noise_scheduler, noise, timesteps)["loss"])
        assert (loss == 0.0) == (kind == prediction_type), (kind, loss)


def test_config_checks():
    with pytest.raises(ValueError, match="patch_size"):
        RendererSettings(patch_size=3)
    with pytest.raises(ValueError, match="image_size"):
        RendererSettings(image_size=60)
    with pytest.raises(ValueError, match="num_styles"):
        RendererSettings(num_styles=0)
    with pytest.raises(ValueError, match="prediction_type"):
        RendererSettings(prediction_type="noise")
    with pytest.raises(ValueError, match="frames_per_sequence"):
        RendererTrainingArguments(frames_per_sequence=0)
    with pytest.raises(ValueError, match="renderer_training"):
        SCHEMA.resolve(TINY, {"renderer_training.nope": 1})

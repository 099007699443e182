"""Sign-SALD learns: each stage's loss on ONE fixed batch, with every random draw fixed (posterior noise, diffusion
noise and timesteps, condition dropout), drops clearly after a short training. An untrained model (learning rate 0)
fails these tests; comparing two logged mini-batch losses would not notice it."""

from __future__ import annotations

import pytest
import torch

from hf_sign.data.synthsign import build_synthsign
from hf_sign.training.sign_sald_losses import latent_denoiser_loss, skeleton_vae_loss
from hf_sign.training.sign_sald_stages import LDM_STAGE, VAE_STAGE
from hf_sign.training.sign_sald_trainer import full_config
from hf_sign.training.stages import StageContext
from hf_sign.training.trainer_utils import load_pose_splits, train_with_resume

LEARNING_RATE = 3e-3  # `tiny`'s
VAE_EPOCHS, LDM_EPOCHS = 20, 8  # 16 sentences at batch 8: 40 and 16 optimizer steps


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    corpus = tmp_path_factory.mktemp("synthsign")
    build_synthsign(corpus, seed=0, num_train=16, num_validation=4, num_test=4, show_progress=False)
    overrides = {"vae.skeleton": "smplx133", "vae_training.num_train_epochs": VAE_EPOCHS,
                 "ldm_training.num_train_epochs": LDM_EPOCHS, "vae_training.learning_rate": LEARNING_RATE,
                 "ldm_training.learning_rate": LEARNING_RATE}
    cfg = full_config("tiny", overrides)
    data = load_pose_splits(str(corpus), cfg["data"]["max_frames"])
    return StageContext(cfg, data, tmp_path_factory.mktemp("out"))


def _fixed_generator():
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="module")
def vae_run(context):
    """Stage `vae` on `context`: its loss on a fixed batch before and after training (the trained VAE is saved, for
    stage `ldm`)."""
    torch.manual_seed(context.config["seed"])
    trainer = VAE_STAGE.build_trainer(context)
    vae, args = trainer.model, trainer.loss_args
    batch = trainer.data_collator(context.data["train"][:8])  # whole sequences: `tiny` does not crop
    poses, mask = batch["poses"], batch["attention_mask"]
    with torch.no_grad():
        shape = vae.encode(poses, attention_mask=mask).latent_dist.mean.shape
    noise = torch.randn(shape, generator=_fixed_generator())

    def fixed_loss():
        with torch.no_grad():
            return skeleton_vae_loss(vae, poses, mask, args, trainer.normalizer.denormalize, latent_noise=noise)

    before = fixed_loss()
    train_with_resume(trainer, resume=False)
    after = fixed_loss()
    VAE_STAGE.finish(context, trainer)
    return before, after, trainer.state.global_step


def test_vae_stage_learns(vae_run):
    before, after, steps = vae_run
    assert steps == 2 * VAE_EPOCHS
    assert after["loss"] < 0.8 * before["loss"], (float(before["loss"]), float(after["loss"]))
    assert after["loss_m"] < 0.85 * before["loss_m"]  # the reconstruction itself


def test_ldm_stage_learns(context, vae_run):
    torch.manual_seed(context.config["seed"])
    trainer = LDM_STAGE.build_trainer(context)
    module, args = trainer.model, trainer.loss_args
    batch = trainer.data_collator(trainer.train_dataset.rows[:8])
    g = _fixed_generator()
    b = batch["latent_mean"].shape[0]
    fixed = {
        "posterior_noise": torch.randn(batch["latent_mean"].shape, generator=g),
        "noise": torch.randn(batch["latent_mean"].shape, generator=g),
        "timesteps": torch.randint(0, trainer.noise_scheduler.config.num_train_timesteps, (b,), generator=g),
        "drop": torch.arange(b) % 4 == 0,  # two of the eight samples get the null condition
    }

    def fixed_loss():
        with torch.no_grad():
            return latent_denoiser_loss(module.denoiser, batch, args, trainer.noise_scheduler, trainer.scale_latents,
                                        training=True, **fixed)

    before = fixed_loss()
    train_with_resume(trainer, resume=False)
    after = fixed_loss()
    assert trainer.state.global_step == 2 * LDM_EPOCHS
    assert after["loss"] < 0.7 * before["loss"], (float(before["loss"]), float(after["loss"]))
    assert after["loss_denoise"] < 0.7 * before["loss_denoise"], (float(before["loss_denoise"]),
                                                                  float(after["loss_denoise"]))

"""Sign-SALD's stage losses on stub models, by value: the VAE objective (eq. 4) and its weights, the diffusion target
of every prediction type, condition dropout, the length / duration / attention terms and their weights, and the
Trainers' `compute_loss` wiring."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from torch import nn
from transformers import TrainingArguments

from hf_sign.data.normalization import PoseNormalizer
from hf_sign.training.losses import diffusion_target, drop_condition, log_length_loss, masked_mse
from hf_sign.training.sign_sald_losses import duration_loss, latent_denoiser_loss, skeleton_vae_loss
from hf_sign.training.sign_sald_stages import (
    LatentDenoiserTrainer,
    LatentDenoiserTrainingArguments,
    LatentDiffusionModule,
    SkeletonVAETrainer,
    SkeletonVAETrainingArguments,
)

FEATURES = 216  # holistic: 72 joints x xyz, so positions are the features reshaped


# ------------------------------------------------------------------------------------------------ stage `vae`
class StubVAE(nn.Module):
    """Encodes to a fixed posterior and decodes to a fixed reconstruction (the loss must not care how)."""

    def __init__(self, recon, mean, logvar, factor=2):
        super().__init__()
        self.recon, self.mean, self.logvar = recon, mean, logvar
        self.temporal_downsample_factor = factor
        self.config = SimpleNamespace(skeleton="holistic")
        self.weight = nn.Parameter(torch.zeros(()))  # so that a Trainer has something to optimise
        self.seen = {}

    def encode(self, x, attention_mask=None):
        self.seen["encode_mask"] = attention_mask
        dist = DiagonalGaussianDistribution(torch.cat([self.mean, self.logvar], dim=1))
        return SimpleNamespace(latent_dist=dist)

    def decode(self, z, attention_mask=None):
        self.seen.update(z=z, decode_mask=attention_mask)
        return SimpleNamespace(sample=self.recon + self.weight)


def _vae_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, FEATURES, generator=g)
    delta = torch.randn(2, 4, FEATURES, generator=g)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    mean, logvar = torch.randn(2, 2, 3, 5, generator=g), 0.3 * torch.randn(2, 2, 3, 5, generator=g)
    return x, delta, mask, mean, logvar


def test_vae_loss_terms_by_value():
    x, delta, mask, mean, logvar = _vae_case()
    vae = StubVAE(x + delta, mean, logvar)
    noise = torch.randn(mean.shape)
    args = SkeletonVAETrainingArguments(lambda_pos=0.7, lambda_vel=0.3, lambda_kl=0.01)
    out = skeleton_vae_loss(vae, x, mask, args, denormalize=lambda v: 2.0 * v + 1.0, latent_noise=noise)

    # the latent is the reparameterised posterior sample, decoded with the latent frame mask (a latent frame is
    # real when its first frame is)
    torch.testing.assert_close(vae.seen["z"], mean + torch.exp(0.5 * logvar) * noise)
    assert vae.seen["decode_mask"].tolist() == [[True, True], [True, True]]
    # reconstruction terms: means over the 7 real frames (and the 5 pairs of real frames)
    frame_err = delta.abs().mean(-1)
    real = [(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2)]
    loss_m = sum(frame_err[b, t] for b, t in real) / 7
    torch.testing.assert_close(out["loss_m"], loss_m)
    torch.testing.assert_close(out["loss_pos"], 2.0 * loss_m)  # positions of 2x + 1: twice the feature error
    vel_err = (delta[:, 1:] - delta[:, :-1]).abs().mean(-1)
    pairs = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    torch.testing.assert_close(out["loss_vel"], sum(vel_err[b, t] for b, t in pairs) / 5)
    kl = (0.5 * (mean**2 + logvar.exp() - 1.0 - logvar)).flatten(2).mean(-1)  # (2, N'=2)
    torch.testing.assert_close(out["loss_kl"], kl.mean())
    total = out["loss_m"] + 0.7 * out["loss_pos"] + 0.3 * out["loss_vel"] + 0.01 * out["loss_kl"]
    torch.testing.assert_close(out["loss"], total)


@pytest.mark.parametrize(
    "weight, term", [("lambda_pos", "loss_pos"), ("lambda_vel", "loss_vel"), ("lambda_kl", "loss_kl")]
)
def test_every_vae_loss_weight_reaches_the_loss(weight, term):
    x, delta, mask, mean, logvar = _vae_case(1)
    noise = torch.randn(mean.shape)
    args = SkeletonVAETrainingArguments()
    base = skeleton_vae_loss(StubVAE(x + delta, mean, logvar), x, mask, args, latent_noise=noise)
    more = dataclasses.replace(args, **{weight: getattr(args, weight) + 1.5})
    out = skeleton_vae_loss(StubVAE(x + delta, mean, logvar), x, mask, more, latent_noise=noise)
    torch.testing.assert_close(out["loss"] - base["loss"], 1.5 * base[term])
    assert base[term] > 0


def test_vae_loss_ignores_padded_frames():
    x, delta, _, mean, logvar = _vae_case(2)
    mask = torch.tensor([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)  # latent frame mask [[1, 1], [1, 0]]
    noise = torch.randn(mean.shape)
    args = SkeletonVAETrainingArguments()
    out = skeleton_vae_loss(StubVAE(x + delta, mean, logvar), x, mask, args, latent_noise=noise)
    x2, recon2, mean2 = x.clone(), (x + delta).clone(), mean.clone()
    x2[1, 1:], recon2[1, 1:], mean2[1, 1] = 50.0, -50.0, 9.0  # padded frames and the padded latent frame
    out2 = skeleton_vae_loss(StubVAE(recon2, mean2, logvar), x2, mask, args, latent_noise=noise)
    for k in out:
        torch.testing.assert_close(out2[k], out[k], msg=k)


def test_vae_trainer_compute_loss(tmp_path):
    """The Trainer feeds its normalizer's `denormalize` and its loss weights to `skeleton_vae_loss`, and logs the
    terms."""
    x, delta, mask, mean, logvar = _vae_case(3)
    normalizer = PoseNormalizer(feature_dim=FEATURES, representation="holistic")
    normalizer.mean.fill_(1.0)
    normalizer.std.fill_(3.0)
    args = SkeletonVAETrainingArguments(lambda_pos=2.0, lambda_vel=0.0, lambda_kl=0.0)
    vae = StubVAE(x + delta, mean, logvar)
    trainer = SkeletonVAETrainer(model=vae, args=TrainingArguments(str(tmp_path), report_to="none", use_cpu=True),
                                 loss_args=args, normalizer=normalizer)
    loss = trainer.compute_loss(vae, {"poses": x, "attention_mask": mask})
    terms = trainer._loss_terms
    assert set(terms) == {"loss_m", "loss_pos", "loss_vel", "loss_kl"}
    assert terms["loss_pos"][0] == pytest.approx(3.0 * terms["loss_m"][0], rel=1e-5)  # positions of 3x + 1
    assert loss.item() == pytest.approx(terms["loss_m"][0] + 2.0 * terms["loss_pos"][0], rel=1e-5)


# ------------------------------------------------------------------------------------------------ stage `ldm`
class StubDenoiser(nn.Module):
    """Predicts `0.5 * z_t`, a log length and per-token timing that depend (a little) on the text states it is
    given; records what it was given."""

    def __init__(self, prediction_type="epsilon", duration_conditioning=False, text_dim=4, batch=2, seq_len=3):
        super().__init__()
        self.config = SimpleNamespace(prediction_type=prediction_type, duration_conditioning=duration_conditioning,
                                      use_cross_attention=True)
        self.null = nn.Parameter(torch.full((text_dim,), 7.0))
        g = torch.Generator().manual_seed(11)
        self.log_n = torch.randn(batch, generator=g) + 3.0
        self.log_d, self.order = torch.rand(batch, seq_len, generator=g), torch.rand(batch, seq_len, generator=g)
        self.attn = torch.softmax(torch.randn(batch, 2, 3, 2, seq_len, generator=g), -1)  # (B, H, N', J', L)
        self.calls = []
        # the denoiser's duration conditioning: its raw per-token predictor, or None when off
        self.duration_conditioner = (
            SimpleNamespace(predictor=self._timing_predictor) if duration_conditioning else None
        )

    def null_condition(self, batch_size, seq_len=1, device=None, dtype=None):
        states = torch.zeros(batch_size, seq_len, self.null.shape[0], dtype=dtype)
        states[:, 0] = self.null
        mask = torch.zeros(batch_size, seq_len, dtype=torch.bool)
        mask[:, 0] = True
        return states, mask

    def forward(self, zt, t, encoder_hidden_states, encoder_attention_mask, attention_mask,
                output_cross_attentions=False, token_timing=None):
        self.calls.append(dict(zt=zt, t=t, cond=encoder_hidden_states, cond_mask=encoder_attention_mask,
                               mask=attention_mask, timing=token_timing))
        return SimpleNamespace(sample=0.5 * zt, cross_attentions=[self.attn] if output_cross_attentions else None)

    def predict_log_num_frames(self, states, mask):
        return self.log_n + 0.01 * (states * mask[..., None]).sum((1, 2))

    def _timing_predictor(self, states):
        return self.log_d + 0.01 * states.sum(-1), self.order - 0.01 * states.sum(-1)


def _ldm_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    b, n, j, c, length, d = 2, 3, 2, 4, 3, 4
    batch = {
        "latent_mean": torch.randn(b, n, j, c, generator=g),
        "latent_std": torch.rand(b, n, j, c, generator=g) + 0.1,
        "latent_mask": torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool),
        "num_frames": torch.tensor([11.0, 7.0]),
        "text_states": torch.randn(b, length, d, generator=g),
        "text_mask": torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool),
        "token_durations": torch.tensor([[3.0, 0.0, 8.0], [4.0, 3.0, 0.0]]),
        "token_order": torch.tensor([[0.0, 0.5, 1.0], [0.0, 1.0, 0.0]]),
        "attention_target": torch.zeros(b, n, length, dtype=torch.bool),
    }
    batch["attention_target"][:, :, 1] = True
    fixed = {"noise": torch.randn(b, n, j, c, generator=g), "timesteps": torch.tensor([10, 900])}
    return batch, fixed


SCHEDULER = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
PLAIN = LatentDenoiserTrainingArguments(cond_drop_prob=0.0, length_loss_weight=0.0, sample_posterior=False)


def _scale(z):
    return 2.0 * z - 1.0


def _masked_mean_sq(err, mask):
    return float((err**2 * mask[:, :, None, None]).sum() / (mask.sum() * err.shape[2] * err.shape[3]))


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_diffusion_target_per_prediction_type(prediction_type):
    batch, fixed = _ldm_batch()
    denoiser = StubDenoiser(prediction_type)
    out = latent_denoiser_loss(denoiser, batch, PLAIN, SCHEDULER, _scale, **fixed)
    # z_t = sqrt(abar) z0 + sqrt(1 - abar) eps with z0 the scaled posterior mean
    z0, eps = _scale(batch["latent_mean"]), fixed["noise"]
    abar = SCHEDULER.alphas_cumprod[fixed["timesteps"]][:, None, None, None]
    zt = abar.sqrt() * z0 + (1 - abar).sqrt() * eps
    torch.testing.assert_close(denoiser.calls[0]["zt"], zt)
    v = abar.sqrt() * eps - (1 - abar).sqrt() * z0
    target = {"epsilon": eps, "sample": z0, "v_prediction": v}[prediction_type]
    expected = _masked_mean_sq(0.5 * zt - target, batch["latent_mask"])
    assert out["loss_denoise"].item() == pytest.approx(expected, rel=1e-5)
    assert out["loss"].item() == pytest.approx(expected, rel=1e-5)  # no other term weighs
    with pytest.raises(ValueError, match="prediction_type"):
        diffusion_target(SCHEDULER, "x0", z0, eps, fixed["timesteps"])


def test_posterior_sample_only_in_training():
    batch, fixed = _ldm_batch(1)
    args = dataclasses.replace(PLAIN, sample_posterior=True)
    post = torch.randn(batch["latent_mean"].shape)
    denoiser = StubDenoiser("sample")
    latent_denoiser_loss(denoiser, batch, args, SCHEDULER, _scale, posterior_noise=post, **fixed)
    latent_denoiser_loss(denoiser, batch, args, SCHEDULER, _scale, training=False, **fixed)
    abar = SCHEDULER.alphas_cumprod[fixed["timesteps"]][:, None, None, None]
    for call, z0 in zip(denoiser.calls, (_scale(batch["latent_mean"] + batch["latent_std"] * post),
                                         _scale(batch["latent_mean"]))):
        torch.testing.assert_close(call["zt"], abar.sqrt() * z0 + (1 - abar).sqrt() * fixed["noise"])


def test_condition_dropout_at_probability_0_and_1():
    batch, fixed = _ldm_batch(2)
    states, mask = batch["text_states"], batch["text_mask"]
    kept = StubDenoiser()
    latent_denoiser_loss(kept, batch, dataclasses.replace(PLAIN, cond_drop_prob=0.0), SCHEDULER, _scale, **fixed)
    torch.testing.assert_close(kept.calls[0]["cond"], states)
    assert torch.equal(kept.calls[0]["cond_mask"], mask)

    dropped = StubDenoiser()
    latent_denoiser_loss(dropped, batch, dataclasses.replace(PLAIN, cond_drop_prob=1.0), SCHEDULER, _scale, **fixed)
    null_states, null_mask = dropped.null_condition(2, 3)
    torch.testing.assert_close(dropped.calls[0]["cond"], null_states)  # every sample gets the null condition
    assert torch.equal(dropped.calls[0]["cond_mask"], null_mask)
    assert (dropped.calls[0]["cond"][:, 0] == 7.0).all() and (dropped.calls[0]["cond"][:, 1:] == 0).all()

    evaluating = StubDenoiser()  # no dropout outside training, whatever the probability
    args = dataclasses.replace(PLAIN, cond_drop_prob=1.0)
    latent_denoiser_loss(evaluating, batch, args, SCHEDULER, _scale, training=False, **fixed)
    torch.testing.assert_close(evaluating.calls[0]["cond"], states)


def test_condition_dropout_per_sample_and_timing_of_dropped_samples():
    batch, fixed = _ldm_batch(3)
    denoiser = StubDenoiser(duration_conditioning=True)
    args = dataclasses.replace(PLAIN, cond_drop_prob=0.5)
    latent_denoiser_loss(denoiser, batch, args, SCHEDULER, _scale, drop=torch.tensor([True, False]), **fixed)
    call = denoiser.calls[0]
    null_states, _ = denoiser.null_condition(2, 3)
    torch.testing.assert_close(call["cond"][0], null_states[0])
    torch.testing.assert_close(call["cond"][1], batch["text_states"][1])
    # the true word timing (teacher forcing) for the kept sample, none for the null condition
    assert call["timing"].durations.tolist() == [[0.0, 0.0, 0.0], batch["token_durations"][1].tolist()]
    torch.testing.assert_close(call["timing"].order, batch["token_order"])
    # drawn: about `prob` of the samples, reproducibly under a generator
    states, mask = torch.randn(4000, 2, 4), torch.ones(4000, 2, dtype=torch.bool)
    null = StubDenoiser(batch=4000).null_condition
    _, _, drop = drop_condition(states, mask, null, 0.3, generator=torch.Generator().manual_seed(0))
    _, _, again = drop_condition(states, mask, null, 0.3, generator=torch.Generator().manual_seed(0))
    assert 0.27 < drop.float().mean().item() < 0.33 and torch.equal(drop, again)
    with pytest.raises(ValueError, match="cond_drop_prob"):
        LatentDenoiserTrainingArguments(cond_drop_prob=1.5)


def test_length_duration_and_attention_terms_by_value():
    batch, fixed = _ldm_batch(4)
    denoiser = StubDenoiser(duration_conditioning=True)
    args = dataclasses.replace(PLAIN, length_loss_weight=1.0, attention_guidance_weight=1.0, cond_drop_prob=0.5)
    out = latent_denoiser_loss(denoiser, batch, args, SCHEDULER, _scale, drop=torch.tensor([True, False]), **fixed)
    states, mask = batch["text_states"], batch["text_mask"]
    log_n = denoiser.predict_log_num_frames(states, mask)  # on the text, never on a dropped condition
    expected_length = ((log_n - batch["num_frames"].log()) ** 2).mean()
    torch.testing.assert_close(out["loss_length"], expected_length)
    torch.testing.assert_close(log_length_loss(log_n, batch["num_frames"]), expected_length)
    # duration: log1p MSE over the 5 valid tokens, order MSE over the 4 signed ones
    d, o = denoiser.duration_conditioner.predictor(states)
    target = batch["token_durations"]
    valid, signed = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)], [(0, 0), (0, 2), (1, 0), (1, 1)]
    err_d = sum((d[i, k] - math.log1p(target[i, k])) ** 2 for i, k in valid) / 5
    err_o = sum((o[i, k] - batch["token_order"][i, k]) ** 2 for i, k in signed) / 4
    torch.testing.assert_close(out["loss_duration"], err_d + err_o)
    torch.testing.assert_close(duration_loss(d, o, mask, target, batch["token_order"]), err_d + err_o)
    with pytest.raises(ValueError, match="token_order"):
        duration_loss(d, o, mask, target, batch["token_order"][:, :2])
    # attention: -log(mass on the target token 1) over the targeted frames of the samples that kept their text
    mass = denoiser.attn[..., 1]  # (B, H, N', J')
    nll = -mass.log().mean(dim=(1, 3))  # (B, N')
    torch.testing.assert_close(out["loss_attention"], nll[1].mean())
    total = out["loss_denoise"] + out["loss_length"] + out["loss_duration"] + out["loss_attention"]
    torch.testing.assert_close(out["loss"], total)


@pytest.mark.parametrize(
    "weight, terms",
    [("length_loss_weight", ("loss_length", "loss_duration")), ("attention_guidance_weight", ("loss_attention",))],
)
def test_every_ldm_loss_weight_reaches_the_loss(weight, terms):
    batch, fixed = _ldm_batch(5)
    args = dataclasses.replace(PLAIN, length_loss_weight=1.0, attention_guidance_weight=1.0)
    base = latent_denoiser_loss(StubDenoiser(duration_conditioning=True), batch, args, SCHEDULER, _scale, **fixed)
    more = dataclasses.replace(args, **{weight: 3.5})
    out = latent_denoiser_loss(StubDenoiser(duration_conditioning=True), batch, more, SCHEDULER, _scale, **fixed)
    torch.testing.assert_close(out["loss"] - base["loss"], 2.5 * sum(base[t] for t in terms))
    assert all(base[t] > 0 for t in terms)


def test_latent_joint_weights_reach_the_diffusion_loss():
    batch, fixed = _ldm_batch(6)
    weights = torch.tensor([3.0, 1.0])  # normalised to mean 1: 1.5 and 0.5
    out = latent_denoiser_loss(StubDenoiser(), batch, PLAIN, SCHEDULER, _scale, joint_weights=weights, **fixed)
    call = StubDenoiser()
    plain = latent_denoiser_loss(call, batch, PLAIN, SCHEDULER, _scale, **fixed)
    err = 0.5 * call.calls[0]["zt"] - fixed["noise"]
    m = batch["latent_mask"]
    expected = 1.5 * _masked_mean_sq(err[:, :, :1], m) / 2 + 0.5 * _masked_mean_sq(err[:, :, 1:], m) / 2
    assert out["loss_denoise"].item() == pytest.approx(expected, rel=1e-5)
    assert plain["loss_denoise"].item() == pytest.approx(_masked_mean_sq(err, m), rel=1e-5)
    torch.testing.assert_close(masked_mse(err, torch.zeros_like(err), m, weights), out["loss_denoise"])


def test_ldm_trainer_compute_loss(tmp_path):
    """The Trainer passes its loss arguments, scheduler and latent scaling to `latent_denoiser_loss`, draws in
    training mode, and logs the terms."""
    batch, _ = _ldm_batch(7)
    args = LatentDenoiserTrainingArguments(cond_drop_prob=1.0, length_loss_weight=0.25, sample_posterior=True)
    module = LatentDiffusionModule(StubDenoiser())
    training_args = TrainingArguments(str(tmp_path), report_to="none", use_cpu=True)
    trainer = LatentDenoiserTrainer(model=module, args=training_args, loss_args=args, noise_scheduler=SCHEDULER,
                                    scale_latents=_scale)
    module.train()
    torch.manual_seed(3)
    loss = trainer.compute_loss(module, batch)
    torch.manual_seed(3)
    reference = latent_denoiser_loss(StubDenoiser(), batch, args, SCHEDULER, _scale)
    torch.testing.assert_close(loss, reference["loss"])
    null_states, _ = module.denoiser.null_condition(2, 3)
    torch.testing.assert_close(module.denoiser.calls[0]["cond"], null_states)  # cond_drop_prob 1 reached the loss
    assert set(trainer._loss_terms) == {"loss_denoise", "loss_length"}

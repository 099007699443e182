"""Sign-SALD models: `SkeletonVAE` and `SkeletonLatentDenoiser` (tiny configs, CPU, fixed seeds)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler
from model_tester_mixin import ModelTesterMixin
from safetensors.torch import save_file

from hf_sign.models.length_regulator import TokenTiming
from hf_sign.models.sign_sald import SkeletonLatentDenoiser, SkeletonLatentDenoiserOutput, SkeletonVAE
from hf_sign.skeletons.smplx133 import REST_ARMS_DOWN
from hf_sign.training.losses import drop_condition, log_length_loss
from hf_sign.training.sign_sald_losses import skeleton_vae_loss
from hf_sign.training.sign_sald_stages import SkeletonVAETrainingArguments

F_DIM = 133
VAE_TINY = dict(
    skeleton="smplx133", hidden_dims=(16, 16), temporal_downsample=(2, 2), layers_per_stage=1, latent_dim=8,
    kernel_size=3,
)
DEN_TINY = dict(
    num_joints=7, latent_channels=8, hidden_dim=32, num_layers=2, num_heads=2, ff_mult=2, text_dim=16,
    max_frames=64, length_predictor_hidden=16,
)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def motion(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    """Smooth smplx133 motion: rest pose + per-sequence offset + two low-frequency sinusoids (radians)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, frames)[None, :, None]
    base = torch.tensor(REST_ARMS_DOWN)[None, None] + 0.2 * torch.randn(batch, 1, F_DIM, generator=g)
    out = base.clone()
    for k in range(2):
        amp = 0.3 * torch.randn(batch, 1, F_DIM, generator=g)
        phase = 2 * math.pi * torch.rand(batch, 1, 1, generator=g)
        out = out + amp * torch.sin(2 * math.pi * (k + 1) * t + phase)
    return out


def text_states(batch: int, length: int, seed: int = 0, dim: int = 16) -> torch.Tensor:
    return torch.randn(batch, length, dim, generator=torch.Generator().manual_seed(seed))


# =============================================================================================== VAE
class TestSkeletonVAE(ModelTesterMixin):
    model_class = SkeletonVAE

    def get_init_kwargs(self):
        return dict(VAE_TINY)

    def get_inputs(self, seed=0):
        generator = torch.Generator().manual_seed(seed)
        return {"sample": motion(2, 8, seed), "sample_posterior": True, "generator": generator}

    def get_batch_and_singles(self):
        x = motion(2, 16, seed=1)
        mask = torch.ones(2, 16, dtype=torch.bool)
        mask[0, 8:] = False
        x[0, 8:] = 5.0  # padding content must not leak into real frames
        return {"sample": x, "attention_mask": mask}, [{"sample": x[:1, :8]}, {"sample": x[1:]}], [8, 16]

    @pytest.mark.parametrize("num_atomic", [5, 7, 9])
    def test_shapes_skeleton_aware(self, num_atomic):
        model = SkeletonVAE(**{**VAE_TINY, "num_atomic_joints": num_atomic}).eval()
        x = motion(3, 12)
        with torch.no_grad():
            dist = model.encode(x).latent_dist
            assert dist.mean.shape == (3, 3, num_atomic, 8) == dist.std.shape
            assert model.latent_shape(12) == (3, num_atomic, 8) and model.latent_shape(10) == (3, num_atomic, 8)
            z = dist.sample(generator=torch.Generator().manual_seed(0))
            assert z.shape == (3, 3, num_atomic, 8)
            assert model.decode(z).sample.shape == (3, 12, F_DIM)
            assert model.decode(z, num_frames=10).sample.shape == (3, 10, F_DIM)
            assert dist.kl().shape == (3,) and torch.isfinite(dist.kl()).all()

    def test_shapes_without_st_latent(self):
        model = SkeletonVAE(**{**VAE_TINY, "skeleton_aware": False}).eval()
        with torch.no_grad():
            dist = model.encode(motion(2, 8)).latent_dist
            assert dist.mean.shape == (2, 2, 1, 7 * 8)
            assert (model.latent_num_joints, model.latent_channels) == (1, 56)
            assert model.decode(dist.mode()).sample.shape == (2, 8, F_DIM)
        aware = SkeletonVAE(**VAE_TINY)
        assert not any("membership" in n or "skeletal" in n for n, _ in model.named_parameters())
        assert any("skeletal" in n for n, _ in aware.named_parameters())
        assert set(dict(model.named_parameters())) != set(dict(aware.named_parameters()))

    def test_sample_determinism(self):
        model = self.make_model()
        with torch.no_grad():
            dist = model.encode(motion(2, 8)).latent_dist
        a = dist.sample(generator=torch.Generator().manual_seed(7))
        b = dist.sample(generator=torch.Generator().manual_seed(7))
        c = dist.sample(generator=torch.Generator().manual_seed(8))
        torch.testing.assert_close(a, b, atol=0, rtol=0)
        assert not torch.allclose(a, c)
        torch.testing.assert_close(dist.mode(), dist.mean)

    def test_reconstruction_after_training(self):
        torch.manual_seed(0)
        model = SkeletonVAE(**{**VAE_TINY, "hidden_dims": (32, 32)}).train()
        args = SkeletonVAETrainingArguments(lambda_kl=1e-5)
        x = motion(4, 16, seed=2)
        mean_error = (x - x.mean(dim=(0, 1), keepdim=True)).abs().mean()
        with torch.no_grad():
            init_error = (model.eval()(x).sample - x).abs().mean()
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(0)
        losses = []
        for _ in range(100):
            out = skeleton_vae_loss(model, x, None, args, generator=gen)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            losses.append(out["loss"].item())
            assert all(torch.isfinite(v) for v in out.values())
        with torch.no_grad():
            error = (model.eval()(x).sample - x).abs().mean()
        assert sum(losses[-10:]) < 0.4 * sum(losses[:10])
        assert error < 0.35 * init_error and error < 0.5 * mean_error, (
            float(error), float(init_error), float(mean_error)
        )

    def test_scaling_factor(self):
        model = self.make_model()
        x = motion(4, 8)
        mask = torch.ones(4, 8, dtype=torch.bool)
        factor = model.estimate_scaling_factor([x[:2], (x[2:], mask[2:])])
        assert model.config.scaling_factor == pytest.approx(factor)
        with torch.no_grad():
            z = model.encode(x).latent_dist.mode() * factor
        assert float(z.std(unbiased=False)) == pytest.approx(1.0, rel=1e-3)

    def test_per_channel_latent_statistics(self, tmp_path):
        model = self.make_model()
        x = motion(4, 8)
        mask = torch.ones(4, 8, dtype=torch.bool)
        mean, std = model.estimate_latent_statistics([x[:2], (x[2:], mask[2:])])
        assert len(mean) == len(std) == 7 * 8 and min(std) > 0
        assert model.config.latents_mean == mean and model.config.latents_std == std
        # the same pass sets the scalar factor, as estimate_scaling_factor would
        assert model.config.scaling_factor == pytest.approx(self.make_model().estimate_scaling_factor([x]), rel=1e-6)
        with torch.no_grad():
            z = model.encode(x).latent_dist.mode()
        scaled = model.scale_latents(z)  # every (joint, channel) standardised over the frames it was fitted on
        torch.testing.assert_close(scaled.mean((0, 1)), torch.zeros(7, 8), atol=1e-4, rtol=0)
        torch.testing.assert_close(scaled.std((0, 1), unbiased=False), torch.ones(7, 8), atol=1e-3, rtol=0)
        torch.testing.assert_close(model.unscale_latents(scaled), z, atol=1e-5, rtol=1e-5)
        model.save_pretrained(tmp_path)
        loaded = SkeletonVAE.from_pretrained(tmp_path)
        torch.testing.assert_close(loaded.scale_latents(z), scaled)
        # without statistics the scalar factor applies
        plain = self.make_model()
        plain.register_to_config(scaling_factor=0.5)
        torch.testing.assert_close(plain.scale_latents(z), 0.5 * z)
        torch.testing.assert_close(plain.unscale_latents(z), 2.0 * z)
        with pytest.raises(ValueError, match="`latents_mean`/`latents_std` must have 56"):
            SkeletonVAE(**VAE_TINY, latents_mean=[0.0] * 5, latents_std=[1.0] * 5)
        with pytest.raises(ValueError, match="together"):
            SkeletonVAE(**VAE_TINY, latents_mean=[0.0] * 56)
        with pytest.raises(ValueError, match="positive"):
            SkeletonVAE(**VAE_TINY, latents_mean=[0.0] * 56, latents_std=[0.0] * 56)

    def test_bad_inputs_raise(self):
        model = self.make_model()
        with pytest.raises(ValueError, match="`sample`.*133"):
            model.encode(torch.zeros(1, 8, 132))
        with pytest.raises(ValueError, match="`sample`.*multiple of 4"):
            model.encode(torch.zeros(1, 10, F_DIM))
        with pytest.raises(ValueError, match="`sample`.*multiple of 4"):
            model(torch.zeros(1, 6, F_DIM))
        with pytest.raises(ValueError, match="`attention_mask`"):
            model.encode(torch.zeros(1, 8, F_DIM), attention_mask=torch.ones(1, 4))
        with pytest.raises(ValueError, match="`z`"):
            model.decode(torch.zeros(1, 2, 5, 8))
        with pytest.raises(ValueError, match="`num_frames`"):
            model.decode(torch.zeros(1, 2, 7, 8), num_frames=9)
        with pytest.raises(ValueError, match="num_atomic_joints"):
            SkeletonVAE(**{**VAE_TINY, "num_atomic_joints": 6})


class TestSkeletonVAELinearPooling(TestSkeletonVAE):
    """Every SkeletonVAE test again with `skeletal_pooling="linear"` (shapes, masking, save/load, training ...)."""

    def get_init_kwargs(self):
        return {**VAE_TINY, "skeletal_pooling": "linear"}

    def test_linear_pooling_starts_as_the_average(self):
        torch.manual_seed(0)
        average = SkeletonVAE(**VAE_TINY).eval()
        linear = SkeletonVAE(**self.get_init_kwargs()).eval()
        shared = {k: v for k, v in average.state_dict().items() if "skeletal" not in k}  # all but the joint pooling
        missing, _ = linear.load_state_dict(shared, strict=False)
        assert missing and all("skeletal" in k or k.endswith("pools.0.bias") for k in missing)
        x = motion(2, 8)
        with torch.no_grad():
            z = average.encode(x).latent_dist.mean
            torch.testing.assert_close(linear.encode(x).latent_dist.mean, z, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(linear.decode(z).sample, average.decode(z).sample, atol=1e-5, rtol=1e-5)
        # one (D, D) matrix per joint in the first STPool / last STUnpool
        assert linear.encoder_pools[0].skeletal.shape == (average.num_nodes, 16, 16)
        with pytest.raises(ValueError, match="skeletal_pooling"):
            SkeletonVAE(**{**VAE_TINY, "skeletal_pooling": "max"})


# =========================================================================================== denoiser
def denoiser_inputs(seed=0, batch=2, frames=4, text_len=5, joints=7, channels=8):
    g = torch.Generator().manual_seed(seed)
    return {
        "sample": torch.randn(batch, frames, joints, channels, generator=g),
        "timestep": torch.randint(0, 1000, (batch,), generator=g),
        "encoder_hidden_states": torch.randn(batch, text_len, 16, generator=g),
    }


class TestSkeletonLatentDenoiser(ModelTesterMixin):
    model_class = SkeletonLatentDenoiser
    unused_parameters = ("null_text_embedding", "length_predictor")

    def get_init_kwargs(self):
        return dict(DEN_TINY)

    def get_inputs(self, seed=0):
        return denoiser_inputs(seed)

    def get_batch_and_singles(self):
        a, b = denoiser_inputs(1, batch=1, frames=3, text_len=2), denoiser_inputs(2, batch=1, frames=5, text_len=4)
        pad = lambda t, n: torch.cat([t, torch.full((1, n - t.shape[1], *t.shape[2:]), 7.0)], 1)  # noqa: E731
        batch = {
            "sample": torch.cat([pad(a["sample"], 5), b["sample"]]),
            "timestep": torch.cat([a["timestep"], b["timestep"]]),
            "encoder_hidden_states": torch.cat([pad(a["encoder_hidden_states"], 4), b["encoder_hidden_states"]]),
            "encoder_attention_mask": torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool),
            "attention_mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool),
        }
        return batch, [a, b], [3, 5]

    def test_batch_vs_single_without_cross_attention(self):
        kwargs = dict(DEN_TINY, use_cross_attention=False)
        torch.manual_seed(0)
        model = SkeletonLatentDenoiser(**kwargs).eval()
        batch, singles, lengths = self.get_batch_and_singles()
        with torch.no_grad():
            out = model(**batch).sample
            for i, (single, n) in enumerate(zip(singles, lengths)):
                self.assert_close(out[i, :n], model(**single).sample[0])

    @pytest.mark.parametrize("joints,channels", [(5, 8), (7, 8), (9, 8), (1, 56)])
    def test_shapes(self, joints, channels):
        model = SkeletonLatentDenoiser(**{**DEN_TINY, "num_joints": joints, "latent_channels": channels}).eval()
        inputs = denoiser_inputs(0, frames=3, joints=joints, channels=channels)
        with torch.no_grad():
            out = model(**inputs)
        assert isinstance(out, SkeletonLatentDenoiserOutput)
        assert out.sample.shape == (2, 3, joints, channels)

    def test_scalar_timestep(self):
        model = self.make_model()
        inputs = denoiser_inputs(0)
        with torch.no_grad():
            a = model(**{**inputs, "timestep": 10}).sample
            b = model(**{**inputs, "timestep": torch.tensor([10, 10])}).sample
            c = model(**{**inputs, "timestep": torch.tensor(10)}).sample
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, c)

    @pytest.mark.parametrize(
        "flag,missing",
        [("use_temporal_attention", "attns.temporal"), ("use_skeletal_attention", "attns.skeletal"),
         ("use_cross_attention", "attns.cross")],
    )
    def test_ablation_flags(self, flag, missing):
        full = self.make_model()
        torch.manual_seed(0)
        ablated = SkeletonLatentDenoiser(**{**DEN_TINY, flag: False}).eval()
        assert any(missing in n for n in full.state_dict())
        assert not any(missing in n for n in ablated.state_dict())
        if flag == "use_cross_attention":
            assert any("attns.joint" in n for n in ablated.state_dict())
        with torch.no_grad():
            out = ablated(**denoiser_inputs(0)).sample
        assert out.shape == (2, 4, 7, 8) and torch.isfinite(out).all()

    def test_long_skips(self):
        assert len(self.make_model().skip_projs) == 1  # 2 layers, tau 2: input of layer 0 -> output head
        assert len(SkeletonLatentDenoiser(**{**DEN_TINY, "skip_tau": 0}).skip_projs) == 0
        with pytest.raises(ValueError, match="skip_tau"):
            SkeletonLatentDenoiser(**{**DEN_TINY, "skip_tau": 1})

    def test_film_is_identity_at_init(self):
        model = self.make_model()
        inputs = denoiser_inputs(0)
        with torch.no_grad():  # zero-initialised FiLM: the timestep only matters once FiLM has learned
            a = model(**{**inputs, "timestep": 0}).sample
            b = model(**{**inputs, "timestep": 900}).sample
        torch.testing.assert_close(a, b)

    def test_loss_decreases(self):
        torch.manual_seed(0)
        model = SkeletonLatentDenoiser(**DEN_TINY).train()
        scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
        g = torch.Generator().manual_seed(0)
        x0 = torch.randn(4, 4, 7, 8, generator=g)
        text = torch.randn(4, 3, 16, generator=g)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        losses = []
        for _ in range(60):
            noise = torch.randn(x0.shape, generator=g)
            t = torch.randint(0, 1000, (4,), generator=g)
            states, mask, _ = drop_condition(text, torch.ones(4, 3, dtype=torch.bool), model.null_condition, 0.1,
                                             generator=g)
            pred = model(scheduler.add_noise(x0, noise, t), t, states, mask).sample
            loss = torch.nn.functional.mse_loss(pred, noise)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert sum(losses[-10:]) < 0.7 * sum(losses[:10]), losses

    def test_null_condition(self):
        model = self.make_model()
        null, null_mask = model.null_condition(3, 4)
        assert null.shape == (3, 4, 16) and null_mask[:, 0].all() and not null_mask[:, 1:].any()
        torch.testing.assert_close(null[:, 0], model.null_text_embedding.expand(3, -1))
        assert (null[:, 1:] == 0).all()
        # the null condition runs through the model and trains the null embedding
        model.train()
        out = model(denoiser_inputs(0, batch=3)["sample"], 5, null, null_mask).sample
        out.pow(2).mean().backward()
        assert model.null_text_embedding.grad is not None and model.null_text_embedding.grad.abs().sum() > 0

    def test_length_predictor_learns(self):
        torch.manual_seed(0)
        model = SkeletonLatentDenoiser(**DEN_TINY)
        g = torch.Generator().manual_seed(1)
        text = torch.randn(64, 6, 16, generator=g)
        mask = torch.ones(64, 6, dtype=torch.bool)
        mask[::2, 4:] = False
        pooled = (text * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        frames = (10 + 40 * torch.sigmoid(3 * pooled[:, 0])).round()  # a simple function of the text
        opt = torch.optim.Adam(model.length_predictor.parameters(), lr=1e-2)
        first = log_length_loss(model.predict_log_num_frames(text, mask), frames).item()
        for _ in range(150):
            loss = log_length_loss(model.predict_log_num_frames(text, mask), frames)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert loss.item() < 0.1 * first
        pred = model.predict_num_frames(text, mask)
        assert pred.dtype == torch.long and pred.shape == (64,)
        assert (pred - frames).abs().float().mean() < 0.15 * (frames - frames.mean()).abs().mean() + 1.0
        assert int(pred.max()) <= model.config.max_frames

    def test_length_predictor_reads_token_count(self):
        # identical token states, so the masked mean is the same: only the number of tokens differs
        torch.manual_seed(0)
        model = SkeletonLatentDenoiser(**DEN_TINY)
        text = torch.randn(1, 1, 16).expand(32, 12, 16)
        counts = torch.randint(2, 13, (32,), generator=torch.Generator().manual_seed(0))
        mask = torch.arange(12)[None] < counts[:, None]
        frames = 4.0 * counts.float()  # under DEN_TINY max_frames (64)
        opt = torch.optim.Adam(model.length_predictor.parameters(), lr=1e-2)
        for _ in range(200):
            loss = log_length_loss(model.predict_log_num_frames(text, mask), frames)
            opt.zero_grad()
            loss.backward()
            opt.step()
        pred = model.predict_num_frames(text, mask).float()
        assert (pred - frames).abs().mean() < 0.1 * (frames - frames.mean()).abs().mean()

    def test_relative_positions(self):
        # the flag changes the output, and padding still does not leak into valid frames
        torch.manual_seed(0)
        plain = SkeletonLatentDenoiser(**DEN_TINY).eval()
        torch.manual_seed(0)
        model = SkeletonLatentDenoiser(**DEN_TINY, relative_positions=True).eval()
        batch, singles, lengths = self.get_batch_and_singles()
        with torch.no_grad():
            out = model(**batch).sample
            assert not torch.allclose(out, plain(**batch).sample)
            for i, (single, n) in enumerate(zip(singles, lengths)):
                self.assert_close(out[i, :n], model(**single).sample[0])

    def test_cross_attentions_come_from_the_same_pass(self):
        model = self.make_model()
        inputs = denoiser_inputs(0)
        inputs["encoder_attention_mask"] = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
        with torch.no_grad():
            plain = model(**inputs)
            out = model(**inputs, output_cross_attentions=True)
            as_tuple = model(**inputs, output_cross_attentions=True, return_dict=False)
        torch.testing.assert_close(out.sample, plain.sample, atol=0, rtol=0)
        assert plain.cross_attentions is None and len(out.cross_attentions) == len(as_tuple[1]) == 2
        for probs in out.cross_attentions:  # (batch, heads, frames, joints, text tokens)
            assert probs.shape == (2, 2, 4, 7, 5)
            torch.testing.assert_close(probs.sum(-1), torch.ones(2, 2, 4, 7))
            assert (probs[0, ..., 3:] == 0).all()

    def test_checkpoints_with_the_old_weight_names_load(self, tmp_path):
        # the names the first Sign-SALD checkpoints (and the frozen fixtures) were saved with
        def to_old(key):
            key = re.sub(r"^(layers\.\d+\.)ffn\.net\.0\.proj\.", r"\1ffn.0.", key)
            key = re.sub(r"^(layers\.\d+\.)ffn\.net\.2\.", r"\1ffn.3.", key)
            key = re.sub(r"^duration_conditioner\.predictor\.", "duration_predictor.", key)
            return re.sub(r"^duration_conditioner\.proj\.", "duration_proj.", key)

        kwargs = dict(DEN_TINY, duration_conditioning=True, duration_per_joint=True)
        torch.manual_seed(0)
        model = SkeletonLatentDenoiser(**kwargs).eval()
        old = {to_old(k): v.clone() for k, v in model.state_dict().items()}
        assert {"layers.1.ffn.0.weight", "layers.1.ffn.3.bias", "duration_predictor.net.4.weight",
                "duration_proj.weight"} <= set(old)
        inputs = denoiser_inputs(0)
        with torch.no_grad():
            expected = model(**inputs).sample

        def check(loaded):
            with torch.no_grad():
                torch.testing.assert_close(loaded.eval()(**inputs).sample, expected, atol=0, rtol=0)

        torch.manual_seed(1)
        fresh = SkeletonLatentDenoiser(**kwargs)
        assert not fresh.load_state_dict(dict(old), strict=True).missing_keys
        check(fresh)
        torch.manual_seed(1)
        wrapper = torch.nn.Module()  # nested, as in a trainer's checkpoint
        wrapper.denoiser = SkeletonLatentDenoiser(**kwargs)
        wrapper.load_state_dict({f"denoiser.{k}": v for k, v in old.items()}, strict=True)
        check(wrapper.denoiser)
        model.save_config(tmp_path)
        save_file(old, str(tmp_path / "diffusion_pytorch_model.safetensors"))
        for low_cpu_mem_usage in (True, False):
            check(SkeletonLatentDenoiser.from_pretrained(tmp_path, low_cpu_mem_usage=low_cpu_mem_usage))

    def test_bad_inputs_raise(self):
        model = self.make_model()
        inputs = denoiser_inputs(0)
        with pytest.raises(ValueError, match="`sample`"):
            model(**{**inputs, "sample": torch.zeros(2, 4, 7, 9)})
        with pytest.raises(ValueError, match="`sample`"):
            model(**{**inputs, "sample": torch.zeros(2, 4, 56)})
        with pytest.raises(ValueError, match="`encoder_hidden_states`.*16"):
            model(**{**inputs, "encoder_hidden_states": torch.zeros(2, 5, 12)})
        with pytest.raises(ValueError, match="`encoder_hidden_states`.*batch"):
            model(**{**inputs, "encoder_hidden_states": torch.zeros(3, 5, 16)})
        with pytest.raises(ValueError, match="`encoder_attention_mask`"):
            model(**inputs, encoder_attention_mask=torch.ones(2, 4))
        with pytest.raises(ValueError, match="`encoder_attention_mask`"):
            model(**inputs, encoder_attention_mask=torch.zeros(2, 5))
        with pytest.raises(ValueError, match="`attention_mask`"):
            model(**inputs, attention_mask=torch.ones(2, 3))
        with pytest.raises(ValueError, match="`timestep`"):
            model(**{**inputs, "timestep": torch.tensor([1, 2, 3])})


def test_vae_latents_feed_the_denoiser():
    """The VAE's latent shape is what the denoiser expects, for both the ST-latent and the flat ablation."""
    for aware in (True, False):
        vae = SkeletonVAE(**{**VAE_TINY, "skeleton_aware": aware}).eval()
        shape = {"num_joints": vae.latent_num_joints, "latent_channels": vae.latent_channels}
        den = SkeletonLatentDenoiser(**{**DEN_TINY, **shape}).eval()
        with torch.no_grad():
            z = vae.encode(motion(2, 8)).latent_dist.sample(generator=torch.Generator().manual_seed(0))
            z = z * vae.config.scaling_factor
            eps = den(z, 10, text_states(2, 3)).sample
            x = vae.decode(eps / vae.config.scaling_factor, num_frames=7).sample
        assert eps.shape == z.shape and x.shape == (2, 7, F_DIM)


class TestSkeletonLatentDenoiserWithOptions(ModelTesterMixin):
    """The model tester on the options that `small` turns on: relative positions and per-joint word timing."""

    model_class = SkeletonLatentDenoiser
    unused_parameters = ("null_text_embedding", "length_predictor", "duration_conditioner.predictor")

    def get_init_kwargs(self):
        return dict(DEN_TINY, relative_positions=True, duration_conditioning=True, duration_per_joint=True)

    def get_inputs(self, seed=0):
        g = torch.Generator().manual_seed(seed + 100)
        timing = TokenTiming(6.0 * torch.rand(2, 5, generator=g), torch.rand(2, 5, generator=g))
        return {**denoiser_inputs(seed), "token_timing": timing}

    def get_batch_and_singles(self):
        batch, (a, b), lengths = TestSkeletonLatentDenoiser.get_batch_and_singles(self)
        a["token_timing"] = TokenTiming(torch.tensor([[3.0, 1.0]]), torch.tensor([[0.5, 0.1]]))
        b["token_timing"] = TokenTiming(torch.tensor([[1.0, 2.0, 0.0, 4.0]]), torch.tensor([[0.1, 0.2, 0.3, 0.0]]))
        # padded tokens get no time and any order key
        batch["token_timing"] = TokenTiming(
            torch.tensor([[3.0, 1.0, 0.0, 0.0], [1.0, 2.0, 0.0, 4.0]]),
            torch.tensor([[0.5, 0.1, 0.0, 0.0], [0.1, 0.2, 0.3, 0.0]]),
        )
        return batch, [a, b], lengths


@pytest.mark.parametrize("name", ["sign_sald_tiny", "sign_sald_tiny_small_options"])
def test_frozen_models_denoise_and_decode_in_bfloat16(name):
    """`from_pretrained(..., torch_dtype=torch.bfloat16)` of trained models: the denoiser runs and the VAE decodes."""
    folder = FIXTURES / name
    g = torch.Generator().manual_seed(0)

    def run(dtype):
        vae = SkeletonVAE.from_pretrained(folder / "vae", torch_dtype=dtype)
        den = SkeletonLatentDenoiser.from_pretrained(folder / "denoiser", torch_dtype=dtype)
        g.manual_seed(0)
        text = torch.randn(2, 4, den.config.text_dim, generator=g).to(dtype)
        z = torch.randn(2, 3, vae.latent_num_joints, vae.latent_channels, generator=g).to(dtype)
        with torch.no_grad():
            timing = den.predict_token_timing(text) if den.config.duration_conditioning else None
            eps = den(z, 500, text, token_timing=timing).sample
            return vae.decode(vae.unscale_latents(eps)).sample

    full, half = run(torch.float32), run(torch.bfloat16)
    assert half.dtype == torch.bfloat16 and half.shape == full.shape == (2, 12, F_DIM)
    assert float((half.float() - full).norm() / full.norm()) < 0.05

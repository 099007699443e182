"""`SignSALDPipeline` on tiny untrained components (CPU, one thread): the shared pipeline tests
(`PipelineTesterMixin`: determinism, batch vs single, every scheduler, save/load, components, dtype, output types,
shared bad inputs, the hand-written reference loop), then what only Sign-SALD has: predicted lengths, word timing,
given latents, prompt embeddings, negative prompts, step callbacks, several sequences per prompt, latent output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from pipeline_tester_mixin import DiffusionPipelineTesterMixin, assert_differ, assert_same, gen

from hf_sign.data.normalization import PoseNormalizer
from hf_sign.models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from hf_sign.models.text_encoders import TextEncoderSettings, build_text_encoder, encode_prompts
from hf_sign.pipelines.pipeline_sign_sald import SignSALDPipeline
from hf_sign.pipelines.pipeline_utils import SignPipelineOutput
from hf_sign.pipelines.remote_code import entry_file_path

TEXTS = ["where was the brother yesterday?", "i do not wash three computers today", "hello.", "my sister is tall."]
STEPS = 2


def make_components(seed: int = 0, scaling_factor: float = 0.5, **denoiser_kwargs) -> dict:
    torch.manual_seed(seed)
    settings = TextEncoderSettings(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=12
    )
    text_encoder, tokenizer = build_text_encoder(settings, texts=TEXTS)
    vae = SkeletonVAE(
        hidden_dims=(16, 16), temporal_downsample=(2, 2), layers_per_stage=1, latent_dim=4, kernel_size=3,
        scaling_factor=scaling_factor,
    ).eval()
    denoiser = SkeletonLatentDenoiser(
        num_joints=7, latent_channels=4, hidden_dim=32, num_layers=2, num_heads=2, ff_mult=2, text_dim=16,
        max_frames=64, length_predictor_hidden=16, **denoiser_kwargs,
    ).eval()
    rng = np.random.default_rng(seed)
    normalizer = PoseNormalizer.fit([rng.normal(0, 0.2, (30, 133))], representation="smplx133")
    scheduler = DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, steps_offset=1, set_alpha_to_one=False
    )
    return dict(vae=vae, denoiser=denoiser, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                normalizer=normalizer)


def make_pipe(seed: int = 0, **denoiser_kwargs) -> SignSALDPipeline:
    pipe = SignSALDPipeline(**make_components(seed, **denoiser_kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


class TestSignSALDPipeline(DiffusionPipelineTesterMixin):
    pipeline_class = SignSALDPipeline

    def get_dummy_components(self):
        return make_components()

    def get_inputs(self, num_prompts=1, seed=0, **overrides):
        inputs = {"prompt": TEXTS[:num_prompts] if num_prompts > 1 else TEXTS[0], "num_inference_steps": STEPS}
        inputs.update(overrides)
        return inputs

    def reference_call(self, pipe, inputs):
        """Each prompt alone, unpadded: encode, guide against the learned null embedding, step DDIM, divide by the
        VAE's scaling factor, decode, de-standardise."""
        vae, denoiser, norm = pipe.vae, pipe.denoiser, pipe.normalizer
        assert vae.config.scaling_factor != 1.0
        w = inputs["guidance_scale"]
        out = []
        for prompt, n, g in zip(inputs["prompt"], inputs["num_frames"], inputs["generator"]):
            ids = pipe.tokenizer([prompt], return_tensors="pt")
            states = pipe.text_encoder(**ids).last_hidden_state
            null = denoiser.null_text_embedding[None, None, :]
            scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
            scheduler.set_timesteps(inputs["num_inference_steps"])
            z = torch.randn((1, math.ceil(n / 4), 7, 4), generator=g) * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                eps_text = denoiser(z, t, encoder_hidden_states=states).sample
                eps_null = denoiser(z, t, encoder_hidden_states=null).sample
                z = scheduler.step(eps_null + w * (eps_text - eps_null), t, z).prev_sample
            x = vae.decode(z / vae.config.scaling_factor).sample[0, :n]
            out.append((x * norm.std + norm.mean).detach().numpy())
        return out


class TestSignSALDPipelineWithWordTiming(TestSignSALDPipeline):
    """The same with duration conditioning: the prompt's predicted word timing reaches the conditional branch only."""

    def get_dummy_components(self):
        components = make_components(duration_conditioning=True, duration_per_joint=True)
        with torch.no_grad():  # untrained, every word would get under a frame (no timing at all): ~6 frames each
            components["denoiser"].duration_conditioner.predictor.net[-1].bias[0] = math.log(7.0)
        return components

    def reference_call(self, pipe, inputs):
        vae, denoiser, norm = pipe.vae, pipe.denoiser, pipe.normalizer
        w = inputs["guidance_scale"]
        out = []
        for prompt, n, g in zip(inputs["prompt"], inputs["num_frames"], inputs["generator"]):
            states = pipe.text_encoder(**pipe.tokenizer([prompt], return_tensors="pt")).last_hidden_state
            timing = denoiser.predict_token_timing(states)
            assert (timing.durations > 1).all()
            null = denoiser.null_text_embedding[None, None, :]
            scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
            scheduler.set_timesteps(inputs["num_inference_steps"])
            z = torch.randn((1, math.ceil(n / 4), 7, 4), generator=g) * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                eps_text = denoiser(z, t, encoder_hidden_states=states, token_timing=timing).sample
                eps_null = denoiser(z, t, encoder_hidden_states=null).sample
                z = scheduler.step(eps_null + w * (eps_text - eps_null), t, z).prev_sample
            x = vae.decode(z / vae.config.scaling_factor).sample[0, :n]
            out.append((x * norm.std + norm.mean).detach().numpy())
        return out


@pytest.fixture(scope="module")
def pipe():
    return make_pipe()


def run(pipe, prompt=TEXTS[0], **kw):
    kw.setdefault("num_inference_steps", STEPS)
    kw.setdefault("generator", gen(0))
    return pipe(prompt, **kw)


def pipe_states(pipe, prompts):
    return encode_prompts(pipe.text_encoder, pipe.tokenizer, prompts)


# ------------------------------------------------------------------------------------------------ lengths
def test_predicted_length(pipe):
    out = run(pipe, TEXTS[:2])
    assert isinstance(out, SignPipelineOutput)
    expected = pipe.denoiser.predict_num_frames(*pipe_states(pipe, TEXTS[:2])).tolist()
    assert out.num_frames == expected and out.fps == 24.0
    assert [p.shape for p in out.poses] == [(n, 133) for n in expected]
    assert out.joints is None and out.pose is None


def test_num_frames_and_duration_overrides(pipe):
    out = run(pipe, num_frames=10)  # not a multiple of the VAE's factor 4: latent rounded up, output cropped
    assert out.num_frames == [10] and out.poses[0].shape == (10, 133)
    out = run(pipe, TEXTS[:2], duration_s=0.5)
    assert out.num_frames == [12, 12]  # round(0.5 s * 24 fps)


def test_given_latents_match_generator(pipe):
    noise = torch.randn(1, 3, 7, 4, generator=gen(5))
    out = run(pipe, latents=noise, generator=None)
    assert out.num_frames == [12]
    np.testing.assert_allclose(out.poses[0], run(pipe, num_frames=12, generator=gen(5)).poses[0], atol=1e-5)


def test_guidance_changes_output(pipe):
    assert_differ(run(pipe, num_frames=8, guidance_scale=1.0).poses, run(pipe, num_frames=8, guidance_scale=4.0).poses)


def test_scheduler_prediction_type_must_match():
    bad = make_pipe()
    bad.scheduler = DDIMScheduler.from_config(bad.scheduler.config, prediction_type="sample")
    with pytest.raises(ValueError, match="prediction_type"):
        run(bad)


# ------------------------------------------------------------------------------------------ diffusers call conventions
def test_prompt_embeds_equal_prompt(pipe):
    embeds, mask, neg, neg_mask = pipe.encode_prompt(TEXTS[:2], do_classifier_free_guidance=True)
    assert neg.shape == embeds.shape and neg_mask[:, 0].all() and not neg_mask[:, 1:].any()  # the learned null
    by_text = run(pipe, TEXTS[:2], num_frames=[6, 9], guidance_scale=2.0, generator=[gen(0), gen(1)]).poses
    by_embeds = pipe(
        prompt_embeds=embeds, prompt_attention_mask=mask, num_frames=[6, 9], guidance_scale=2.0,
        num_inference_steps=STEPS, generator=[gen(0), gen(1)],
    ).poses
    assert_same(by_embeds, by_text, atol=1e-6)


def test_negative_prompt(pipe):
    base = run(pipe, num_frames=8, guidance_scale=3.0).poses
    neg = run(pipe, num_frames=8, guidance_scale=3.0, negative_prompt="hello.").poses
    assert_differ(base, neg)
    _, _, neg_embeds, neg_mask = pipe.encode_prompt(TEXTS[0], negative_prompt="hello.")
    by_embeds = run(pipe, num_frames=8, guidance_scale=3.0, negative_prompt_embeds=neg_embeds,
                    negative_prompt_attention_mask=neg_mask).poses
    assert_same(by_embeds, neg, atol=1e-6)
    with pytest.raises(ValueError, match="at most one"):
        run(pipe, negative_prompt="hello.", negative_prompt_embeds=neg_embeds)
    with pytest.raises(ValueError, match="negative_prompt` has 1 entries for 2 prompt"):
        run(pipe, TEXTS[:2], negative_prompt=["hello."])


def test_num_sequences_per_prompt(pipe):
    out = run(pipe, TEXTS[:2], num_frames=[6, 9], num_sequences_per_prompt=2, generator=[gen(i) for i in range(4)])
    assert out.num_frames == [6, 6, 9, 9]
    assert_differ(out.poses[:1], out.poses[1:2])  # two different samples of prompt 0
    alone = run(pipe, TEXTS[1], num_frames=9, generator=gen(3)).poses
    assert_same(out.poses[3:], alone, atol=1e-4)
    with pytest.raises(ValueError, match="one per sequence"):
        run(pipe, TEXTS[:2], num_sequences_per_prompt=2, generator=[gen(0), gen(1)])


def test_callback_on_step_end(pipe):
    seen = []

    def callback(p, step, t, kwargs):
        seen.append((step, int(t), tuple(kwargs)))
        return {"latents": torch.zeros_like(kwargs["latents"])} if step == STEPS - 1 else {}

    out = run(pipe, num_frames=8, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"])
    assert [s[0] for s in seen] == list(range(STEPS)) and all(s[2] == ("latents",) for s in seen)
    zero = pipe.vae.decode(pipe.vae.unscale_latents(torch.zeros(1, 2, 7, 4))).sample[0, :8]
    np.testing.assert_allclose(out.poses[0], pipe.normalizer.denormalize(zero).detach().numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="callback_on_step_end_tensor_inputs"):
        run(pipe, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["noise"])


def test_latent_output_decodes_to_poses(pipe):
    latent = run(pipe, TEXTS[:2], num_frames=[6, 9], output_type="latent", generator=[gen(0), gen(1)])
    assert [tuple(z.shape) for z in latent.poses] == [(2, 7, 4), (3, 7, 4)] and latent.num_frames == [6, 9]
    poses = run(pipe, TEXTS[:2], num_frames=[6, 9], generator=[gen(0), gen(1)]).poses
    for z, n, p in zip(latent.poses, [6, 9], poses):
        x = pipe.vae.decode(pipe.vae.unscale_latents(z[None])).sample[0, :n]
        np.testing.assert_allclose(pipe.normalizer.denormalize(x).detach().numpy(), p, atol=1e-5)


def test_duration_conditioned_pipeline(tmp_path):
    """Predicted word timing reaches the denoiser; batch == single and save/load hold with it."""
    pipe = make_pipe(duration_conditioning=True)
    states, mask = pipe_states(pipe, TEXTS[:2])
    # untrained, no word gets a frame: the length predictor decides the length
    assert (pipe.denoiser.predict_token_timing(states, mask).durations == 0).all()
    assert run(pipe, TEXTS[:2]).num_frames == pipe.denoiser.predict_num_frames(states, mask).tolist()
    with torch.no_grad():  # untrained, the predictor gives under a frame per token; make every word last ~6 frames
        pipe.denoiser.duration_conditioner.predictor.net[-1].bias[0] = math.log(7.0)
    timing = pipe.denoiser.predict_token_timing(states, mask)
    durations, order = timing.durations, timing.order
    assert (durations[mask] > 1.0).all() and order.shape == durations.shape
    # the default length is the sum of the words' durations
    assert run(pipe, TEXTS[:2]).num_frames == durations.sum(1).round().long().tolist()

    batch = run(pipe, TEXTS[:3], num_frames=[9, 16, 4], generator=[gen(1), gen(2), gen(3)], guidance_scale=2.0)
    for i, (text, n) in enumerate(zip(TEXTS[:3], [9, 16, 4])):
        single = run(pipe, text, num_frames=n, generator=gen(i + 1), guidance_scale=2.0)
        np.testing.assert_allclose(batch.poses[i], single.poses[0], atol=1e-4, rtol=1e-4)

    expected = run(pipe, TEXTS[:2], num_frames=[12, 10], guidance_scale=2.0).poses
    pipe.save_pretrained(tmp_path)
    loaded = SignSALDPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    for a, b in zip(expected, run(loaded, TEXTS[:2], num_frames=[12, 10], guidance_scale=2.0).poses):
        np.testing.assert_allclose(a, b, atol=1e-6)
    with torch.no_grad():  # reversing the predicted signing order changes the signing
        loaded.denoiser.duration_conditioner.predictor.net[-1].weight[1].neg_()
        loaded.denoiser.duration_conditioner.predictor.net[-1].bias[1].neg_()
    reordered = run(loaded, TEXTS[:2], num_frames=[12, 10], guidance_scale=2.0).poses
    assert np.abs(expected[0] - reordered[0]).max() > 1e-4


def test_saved_folder_layout(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_sign_sald", "SignSALDPipeline"]
    assert index["vae"] == ["skeleton_vae", "SkeletonVAE"] and (tmp_path / "vae" / "skeleton_vae.py").is_file()
    assert index["denoiser"] == ["latent_denoiser", "SkeletonLatentDenoiser"]
    assert index["normalizer"] == ["normalization", "PoseNormalizer"]
    assert index["tokenizer"] == ["transformers", "PreTrainedTokenizerFast"]
    assert (tmp_path / "pipeline_sign_sald.py").read_text() == Path(entry_file_path("pipeline_sign_sald")).read_text()
    assert index["fps"] == 24.0 and index["default_guidance_scale"] == 2.5 and index["skeleton"] == "smplx133"


def test_remote_code_needs_trust(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(tmp_path)


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(prompt=[]), "non-empty"),
        (dict(prompt=["hello.", 3]), r"prompt\[1\]` must be a string"),
        (dict(prompt="where was the brother yesterday? " * 3), "tokens long"),
        (dict(duration_s=0.0), "duration_s"),
        (dict(duration_s=float("nan")), "duration_s"),
        (dict(guidance_scale=-1.0), "guidance_scale"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(generator=[torch.Generator(), torch.Generator()]), "one per sequence"),
        (dict(prompt=None), "exactly one of `prompt` and `prompt_embeds`"),
        (dict(prompt=None, prompt_embeds=torch.zeros(1, 3, 5)), "prompt_embeds` must be a tensor"),
        (dict(prompt=None, prompt_embeds=torch.zeros(1, 3, 16), prompt_attention_mask=torch.zeros(1, 3)), "no valid"),
        (dict(num_sequences_per_prompt=0), "num_sequences_per_prompt"),
        (dict(latents=torch.zeros(3, 7, 4)), "4-D"),
        (dict(num_frames=16, latents=torch.zeros(1, 3, 7, 4)), r"expected \(1, 4, 7, 4\)"),
    ],
)
def test_bad_inputs(pipe, kwargs, match):
    kwargs = {"prompt": TEXTS[0], "num_inference_steps": STEPS, **kwargs}
    with pytest.raises(ValueError, match=match):
        pipe(**kwargs)

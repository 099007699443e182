"""`SignSALDPipeline`: shapes, lengths, determinism, batch vs single, save/load (own class and remote code),
scheduler swap, output types and input errors, on tiny untrained components (CPU, one thread)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DiffusionPipeline, DPMSolverMultistepScheduler

from hf_sign.data.normalization import PoseNormalizer
from hf_sign.models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from hf_sign.models.text_encoders import TextEncoderSettings, build_text_encoder
from hf_sign.pipelines.pipeline_sign_sald import SignSALDPipeline, SignSALDPipelineOutput
from hf_sign.pipelines.remote_code import entry_file_path

TEXTS = ["where was the brother yesterday?", "i do not wash three computers today", "hello.", "my sister is tall."]
STEPS = 2




def make_pipe(seed: int = 0, **denoiser_kwargs) -> SignSALDPipeline:
    torch.manual_seed(seed)
    settings = TextEncoderSettings(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=12)
    text_encoder, tokenizer = build_text_encoder(settings, texts=TEXTS)
    vae = SkeletonVAE(hidden_dims=(16, 16), temporal_downsample=(2, 2), layers_per_stage=1, latent_dim=4, kernel_size=3).eval()
    denoiser = SkeletonLatentDenoiser(
        num_joints=7, latent_channels=4, hidden_dim=32, num_layers=2, num_heads=2, ff_mult=2, text_dim=16,
        max_frames=64, length_predictor_hidden=16, **denoiser_kwargs,
    ).eval()
    rng = np.random.default_rng(seed)
    normalizer = PoseNormalizer.fit([rng.normal(0, 0.2, (30, 133))], representation="smplx133")
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False, steps_offset=1, set_alpha_to_one=False)
    pipe = SignSALDPipeline(vae=vae, denoiser=denoiser, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler, normalizer=normalizer)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def pipe():
    return make_pipe()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def run(pipe, prompt=TEXTS[0], **kw):
    kw.setdefault("num_inference_steps", STEPS)
    kw.setdefault("generator", gen())
    return pipe(prompt, **kw)


# ------------------------------------------------------------------------------------------------ outputs
def test_shapes_and_predicted_length(pipe):
    out = run(pipe, TEXTS[:2])
    assert isinstance(out, SignSALDPipelineOutput)
    expected = pipe.denoiser.predict_num_frames(*pipe_states(pipe, TEXTS[:2])).tolist()
    assert out.num_frames == expected and out.fps == 24.0
    assert [p.shape for p in out.poses] == [(n, 133) for n in expected]
    assert all(p.dtype == np.float32 and np.isfinite(p).all() for p in out.poses)
    assert out.joints is None and out.pose is None


def pipe_states(pipe, prompts):
    from hf_sign.models.text_encoders import encode_prompts

    return encode_prompts(pipe.text_encoder, pipe.tokenizer, prompts)


def test_num_frames_and_duration_overrides(pipe):
    out = run(pipe, num_frames=10)  # not a multiple of the VAE's factor 4: latent rounded up, output cropped
    assert out.num_frames == [10] and out.poses[0].shape == (10, 133)
    out = run(pipe, TEXTS[:2], num_frames=[5, 13])
    assert [p.shape[0] for p in out.poses] == [5, 13]
    out = run(pipe, TEXTS[:2], duration_s=0.5)
    assert out.num_frames == [12, 12]  # round(0.5 s * 24 fps)
    out = run(pipe, duration_s=[1.0])
    assert out.poses[0].shape == (24, 133)


def test_output_types(pipe):
    np_out = run(pipe, num_frames=8)
    pt_out = run(pipe, num_frames=8, output_type="pt")
    assert torch.is_tensor(pt_out.poses[0]) and pt_out.poses[0].shape == (8, 133)
    np.testing.assert_allclose(pt_out.poses[0].numpy(), np_out.poses[0], atol=1e-6)
    joints = run(pipe, num_frames=8, output_type="joints")
    assert joints.joints[0].shape == (8, 54, 3) and np.isfinite(joints.joints[0]).all()
    np.testing.assert_allclose(joints.poses[0], np_out.poses[0], atol=1e-6)
    pose = run(pipe, num_frames=8, output_type="pose")
    p = pose.pose[0]
    assert type(p).__name__ == "Pose" and p.body.data.shape == (8, 1, 54, 3) and p.body.fps == 24.0
    (poses,) = run(pipe, num_frames=8, return_dict=False)
    np.testing.assert_allclose(poses[0], np_out.poses[0], atol=1e-6)


def test_determinism_and_seed_dependence(pipe):
    a, b = run(pipe, num_frames=12, generator=gen(3)), run(pipe, num_frames=12, generator=gen(3))
    np.testing.assert_array_equal(a.poses[0], b.poses[0])
    c = run(pipe, num_frames=12, generator=gen(4))
    assert np.abs(a.poses[0] - c.poses[0]).max() > 1e-4


def test_batch_equals_single(pipe):
    """Padded batch with different lengths == each prompt alone (per-prompt generators)."""
    batch = run(pipe, TEXTS[:3], num_frames=[9, 16, 4], generator=[gen(1), gen(2), gen(3)], guidance_scale=2.0)
    for i, (text, n) in enumerate(zip(TEXTS[:3], [9, 16, 4])):
        single = run(pipe, text, num_frames=n, generator=gen(i + 1), guidance_scale=2.0)
        np.testing.assert_allclose(batch.poses[i], single.poses[0], atol=1e-4, rtol=1e-4)


def test_given_latents_match_generator(pipe):
    noise = torch.randn(1, 3, 7, 4, generator=gen(5))
    out = run(pipe, latents=noise, generator=None)
    assert out.num_frames == [12]
    ref = run(pipe, num_frames=12, generator=gen(5))
    np.testing.assert_allclose(out.poses[0], ref.poses[0], atol=1e-5)


def test_guidance_changes_output(pipe):
    a = run(pipe, num_frames=8, guidance_scale=1.0)
    b = run(pipe, num_frames=8, guidance_scale=4.0)
    assert np.abs(a.poses[0] - b.poses[0]).max() > 1e-5


def test_scheduler_swap_dpm_solver(pipe):
    swapped = make_pipe()
    swapped.scheduler = DPMSolverMultistepScheduler.from_config(swapped.scheduler.config)
    out = swapped(TEXTS[:2], num_inference_steps=3, num_frames=[8, 6], generator=gen())
    assert [p.shape for p in out.poses] == [(8, 133), (6, 133)]
    assert all(np.isfinite(p).all() for p in out.poses)


def test_scheduler_prediction_type_must_match():
    bad = make_pipe()
    bad.scheduler = DDIMScheduler.from_config(bad.scheduler.config, prediction_type="sample")
    with pytest.raises(ValueError, match="prediction_type"):
        run(bad)


# ------------------------------------------------------------------------------------------------ save / load
def test_save_load_round_trip(pipe, tmp_path):
    expected = run(pipe, TEXTS[:2], num_frames=[7, 10], guidance_scale=2.0).poses
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_sign_sald", "SignSALDPipeline"]
    assert index["vae"] == ["skeleton_vae", "SkeletonVAE"] and (tmp_path / "vae" / "skeleton_vae.py").is_file()
    assert index["denoiser"] == ["latent_denoiser", "SkeletonLatentDenoiser"]
    assert index["normalizer"] == ["normalization", "PoseNormalizer"]
    assert index["tokenizer"] == ["transformers", "PreTrainedTokenizerFast"]
    assert (tmp_path / "pipeline_sign_sald.py").read_text() == Path(entry_file_path("pipeline_sign_sald")).read_text()
    assert index["fps"] == 24.0 and index["default_guidance_scale"] == 2.5

    for loaded in (
        SignSALDPipeline.from_pretrained(tmp_path),  # no remote code executed
        DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True),
    ):
        assert isinstance(loaded, SignSALDPipeline) and isinstance(loaded.vae, SkeletonVAE)
        assert isinstance(loaded.scheduler, DDIMScheduler) and isinstance(loaded.normalizer, PoseNormalizer)
        loaded.set_progress_bar_config(disable=True)
        got = run(loaded, TEXTS[:2], num_frames=[7, 10], guidance_scale=2.0).poses
        for a, b in zip(expected, got):
            np.testing.assert_allclose(a, b, atol=1e-6)


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


def test_remote_code_needs_trust(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="trust_remote_code"):
        DiffusionPipeline.from_pretrained(tmp_path)


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(prompt=""), "empty"),
        (dict(prompt="   "), "empty"),
        (dict(prompt=[]), "non-empty"),
        (dict(prompt=["hello.", 3]), r"prompt\[1\]` must be a string"),
        (dict(prompt="where was the brother yesterday? " * 3), "tokens long"),
        (dict(num_frames=0), "num_frames"),
        (dict(num_frames=-3), "num_frames"),
        (dict(num_frames=[4, 5]), "entries for 1 prompt"),
        (dict(duration_s=0.0), "duration_s"),
        (dict(duration_s=float("nan")), "duration_s"),
        (dict(num_frames=8, duration_s=1.0), "not both"),
        (dict(guidance_scale=-1.0), "guidance_scale"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(output_type="mp4"), "output_type"),
        (dict(generator=[torch.Generator(), torch.Generator()]), "one per prompt"),
        (dict(latents=torch.zeros(3, 7, 4)), "4-D"),
        (dict(num_frames=16, latents=torch.zeros(1, 3, 7, 4)), r"expected \(1, 4, 7, 4\)"),
    ],
)
def test_bad_inputs(pipe, kwargs, match):
    kwargs = {"prompt": TEXTS[0], "num_inference_steps": STEPS, **kwargs}
    with pytest.raises(ValueError, match=match):
        pipe(**kwargs)

"""`SignVideoPipeline`: frame shape and count, shared noise, determinism, output types, save/load (own class and
remote code), settings through `components`, the video file, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DiffusionPipeline
from PIL import Image

from hf_sign.pipelines.pipeline_sign_video import SignVideoPipeline
from hf_sign.render.avatar import draw_avatar_frames
from hf_sign.skeletons.smplx133 import pose_features, rest_pose_features
from hf_sign.skeletons.spec import get_skeleton
from hf_sign.training.stable_signer_renderer import build_renderer
from hf_sign.training.stable_signer_trainer import full_config

SPEC = get_skeleton("smplx133")
TINY = full_config("tiny")["renderer"]  # the tiny config's renderer


def _poses(num_frames: int = 5) -> np.ndarray:
    rest = rest_pose_features()
    chest = pose_features(left_shoulder=(0, -0.5, -1.2), left_elbow=(0, -2.0, 0))
    w = np.linspace(0, 1, num_frames, dtype=np.float32)[:, None]
    return ((1 - w) * rest + w * chest).astype(np.float32)


def _components(**settings):
    torch.manual_seed(0)
    parts = build_renderer({"renderer": {**TINY, **settings}})
    scheduler = DDIMScheduler.from_config(parts.pop("scheduler").config)
    return dict(parts, scheduler=scheduler)


@pytest.fixture(scope="module")
def pipe():
    p = SignVideoPipeline(**_components(), image_size=32)
    p.set_progress_bar_config(disable=True)
    return p


def _call(pipe, seed=0, **kwargs):
    kwargs.setdefault("poses", _poses())
    kwargs.setdefault("num_inference_steps", 2)
    return pipe(generator=torch.Generator().manual_seed(seed), **kwargs)


def test_frame_shape_and_count(pipe):
    out = _call(pipe, style="teal")
    assert out.frames.shape == out.control_frames.shape == (5, 32, 32, 3)
    assert out.frames.dtype == np.uint8 and out.reference_image.shape == (32, 32, 3)
    assert out.fps == 24.0 and out.video_path is None
    assert _call(pipe, frames=[4, 0]).frames.shape == (2, 32, 32, 3)


def test_determinism_and_seed(pipe):
    a, b = _call(pipe, seed=3).frames, _call(pipe, seed=3).frames
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - _call(pipe, seed=4).frames.astype(int)).max() > 0


def test_frames_share_their_noise(pipe):
    # every frame starts from the same noise with the same reference: equal poses give equal frames, whatever the
    # batching, and a frame rendered alone equals the same frame of the whole video
    still = np.repeat(_poses()[2:3], 4, axis=0)
    out = _call(pipe, poses=still, frame_batch_size=3).frames
    for frame in out[1:]:
        np.testing.assert_array_equal(frame, out[0])
    full = _call(pipe, frame_batch_size=2, output_type="pt").frames
    alone = _call(pipe, frames=[3], output_type="pt").frames
    torch.testing.assert_close(alone[0], full[3], atol=1e-5, rtol=0)


def test_output_types_and_inputs_agree(pipe):
    as_np = _call(pipe).frames
    as_pt = _call(pipe, output_type="pt").frames
    assert as_pt.shape == (5, 3, 32, 32) and as_pt.dtype == torch.float32
    assert 0.0 <= float(as_pt.min()) and float(as_pt.max()) <= 1.0
    np.testing.assert_array_equal((as_pt.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8), as_np)
    pil = _call(pipe, output_type="pil").frames
    assert len(pil) == 5 and isinstance(pil[0], Image.Image) and pil[0].size == (32, 32)
    positions = np.asarray(SPEC.to_positions(_poses()))
    np.testing.assert_array_equal(_call(pipe, poses=None, positions=positions).frames, as_np)
    # the default style is config.default_style; a style draws its reference from the first pose
    reference = draw_avatar_frames(positions, SPEC, pipe.config.default_style, 32, frames=[0])[0]
    np.testing.assert_array_equal(_call(pipe, reference_image=reference).frames, as_np)
    np.testing.assert_array_equal(_call(pipe, reference_image=Image.fromarray(reference)).frames, as_np)
    assert np.abs(_call(pipe, style="night").frames.astype(int) - as_np.astype(int)).max() > 0


def test_strength_starts_from_the_reference(pipe):
    # strength < 1: every frame starts from the reference noised part of the way down, and fewer steps run
    steps = []
    pipe.unet.register_forward_hook(lambda *args: steps.append(1))
    full = _call(pipe, num_inference_steps=10, frames=[0]).frames
    n_full = len(steps)
    partial = _call(pipe, num_inference_steps=10, strength=0.3, frames=[0]).frames
    pipe.unet._forward_hooks.clear()
    assert n_full == 10 and len(steps) - n_full == 3
    assert np.abs(full.astype(int) - partial.astype(int)).max() > 0
    # a smaller strength keeps the frame closer to the reference it starts from
    reference = _call(pipe, frames=[0]).reference_image.astype(int)
    near = _call(pipe, num_inference_steps=10, strength=0.05, frames=[0]).frames[0].astype(int)
    assert np.abs(near - reference).mean() < np.abs(full[0].astype(int) - reference).mean()


def test_writes_a_video(pipe, tmp_path):
    import imageio.v3 as iio

    out = _call(pipe, output_path=tmp_path / "sign.mp4", fps=12)
    assert out.video_path == str(tmp_path / "sign.mp4") and out.fps == 12.0
    assert iio.imread(out.video_path, plugin="pyav" if _has_pyav() else None).shape[0] == 5


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def test_save_load_round_trips(pipe, tmp_path):
    expected = _call(pipe, style="warm").frames
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_sign_video", "SignVideoPipeline"]
    assert (tmp_path / "pipeline_sign_video.py").is_file()
    own = SignVideoPipeline.from_pretrained(tmp_path)
    remote = DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(remote).__name__ == "SignVideoPipeline"
    for loaded in (own, remote):
        loaded.set_progress_bar_config(disable=True)
        assert loaded.config.image_size == 32 and loaded.config.skeleton == "smplx133"
        np.testing.assert_array_equal(_call(loaded, style="warm").frames, expected)


def test_components_keep_the_settings():
    pipe = SignVideoPipeline(**_components(), image_size=32, fps=30.0, default_style="night")
    rebuilt = SignVideoPipeline(**pipe.components)
    for name in SignVideoPipeline._settings:
        assert rebuilt.config[name] == pipe.config[name], name
    assert rebuilt.config.default_style == "night" and rebuilt.fps == 30.0 and rebuilt.patch_size == 2


def test_renderer_folder(pipe, tmp_path):
    for name in ("unet", "controlnet", "reference_encoder"):
        getattr(pipe, name).save_pretrained(tmp_path / name)
    pipe.scheduler.save_pretrained(tmp_path / "renderer_scheduler")
    loaded = SignVideoPipeline.from_renderer_folder(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.image_size == 32
    np.testing.assert_array_equal(_call(loaded).frames, _call(pipe).frames)
    with pytest.raises(ValueError, match="renderer_scheduler"):
        SignVideoPipeline.from_renderer_folder(tmp_path / "unet")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"poses": np.zeros((4, 120), np.float32)}, "poses"),
        ({"poses": np.zeros((0, 133), np.float32)}, "poses"),
        ({"poses": None, "positions": np.zeros((3, 50, 3))}, "positions"),
        ({"positions": np.zeros((3, 54, 3))}, "exactly one"),
        ({"style": "nope"}, "style"),
        ({"style": "warm", "reference_image": np.zeros((32, 32, 3), np.uint8)}, "reference_image"),
        ({"reference_image": np.zeros((32, 32), np.uint8)}, "reference_image"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"strength": 0.0}, "strength"),
        ({"strength": 1.5}, "strength"),
        ({"frame_batch_size": 0}, "frame_batch_size"),
        ({"output_type": "latent"}, "output_type"),
        ({"frames": [5]}, "frames"),
        ({"fps": 0}, "fps"),
        ({"latents": torch.zeros(2, 3, 32, 32)}, "latents"),
    ],
)
def test_bad_inputs(pipe, kwargs, field):
    with pytest.raises(ValueError, match=field):
        _call(pipe, **kwargs)


@pytest.mark.parametrize("concat", [False, True])
def test_conditioning_layouts(concat):
    # ControlNet + cross attention only (the paper's), or with the control and reference concatenated to the input
    parts = _components(concat_conditioning=concat)
    assert parts["unet"].config.in_channels == (36 if concat else 12)
    pipe = SignVideoPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    frames = _call(pipe, style="teal").frames
    assert frames.shape == (5, 32, 32, 3)
    # the reference image reaches the output through every path the layout has
    assert np.abs(frames.astype(int) - _call(pipe, style="night").frames.astype(int)).max() > 0


def test_image_size_follows_the_unet():
    pipe = SignVideoPipeline(**_components())
    assert pipe.config.image_size == 32 and pipe.patch_size == 2
    pipe.set_progress_bar_config(disable=True)
    _call(pipe, show_progress=True)
    assert pipe._progress_bar_config == {"disable": True}  # a per-call progress bar leaves the configuration alone


def test_bad_settings():
    with pytest.raises(ValueError, match="style"):
        SignVideoPipeline(**_components(), image_size=32, default_style="nope")
    with pytest.raises(ValueError, match="image_size"):
        SignVideoPipeline(**_components(), image_size=48)

"""The tests every hf-sign generation system gets by subclassing `PipelineTesterMixin` (in the spirit of diffusers'
own `PipelineTesterMixin`, which does not ship in its wheel).

A subclass sets `pipeline_class`, defines `get_dummy_components()` (tiny, seeded, untrained modules: one thread, a
few frames) and `get_inputs()`. `PipelineTesterMixin` holds what every generator shares (the baselines included);
`HubPipelineTesterMixin` adds what every hf-sign `DiffusionPipeline` does (remote code, components, dtype);
`DiffusionPipelineTesterMixin` adds what a diffusers Gaussian-diffusion pipeline must also do, and such a pipeline
defines `reference_call`: a hand-written loop over its own components (two steps, guidance > 1, a latent scale other
than 1) that the pipeline must match to 1e-5.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr
from dataclasses import fields
from typing import Any, Dict, List

import diffusers
import numpy as np
import pytest
import torch

from hf_sign.pipelines.pipeline_utils import SignPipelineOutput

# every diffusers scheduler that runs a Gaussian-diffusion pipeline trained with DDPM's discrete schedule
GAUSSIAN_SCHEDULERS = (
    "DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "DPMSolverMultistepScheduler", "UniPCMultistepScheduler",
    "DEISMultistepScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
    "LMSDiscreteScheduler", "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler", "LCMScheduler",
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def as_arrays(poses) -> List[np.ndarray]:
    return [p.detach().float().cpu().numpy() if torch.is_tensor(p) else np.asarray(p) for p in poses]


def assert_same(a, b, atol=1e-5):
    a, b = as_arrays(a), as_arrays(b)
    assert [x.shape for x in a] == [y.shape for y in b]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol, rtol=0)


def assert_differ(a, b, tol=1e-5):
    assert max(np.abs(x - y).max() for x, y in zip(as_arrays(a), as_arrays(b))) > tol


class PipelineTesterMixin:
    pipeline_class: Any = None
    feature_dim = 133
    # `get_inputs(n)` returns n prompts' inputs; systems conditioned on glosses name theirs `gloss`
    input_name = "prompt"
    # the arguments `get_inputs` takes as overrides (a system without steps or guidance drops those)
    input_keys = ("num_frames", "duration_s", "num_inference_steps", "guidance_scale")

    # ------------------------------------------------------------------------------------------ to define
    def get_dummy_components(self) -> Dict[str, Any]:
        raise NotImplementedError

    def get_inputs(self, num_prompts: int = 1, seed: int = 0, **overrides) -> Dict[str, Any]:
        raise NotImplementedError

    def reference_call(self, pipe, inputs: Dict[str, Any]) -> List[np.ndarray]:
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ helpers
    def get_pipe(self, **settings):
        pipe = self.pipeline_class(**self.get_dummy_components(), **settings)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def generators(self, n: int, seed: int = 0):
        return [gen(seed + i) for i in range(n)]

    def call(self, pipe, num_prompts: int = 1, seed: int = 0, **kwargs):
        """`pipe(**get_inputs(num_prompts), **kwargs)` with one seeded generator per prompt unless one is given."""
        inputs = self.get_inputs(num_prompts, **{k: kwargs.pop(k) for k in list(kwargs) if k in self.input_keys})
        kwargs.setdefault("generator", self.generators(num_prompts, seed) if num_prompts > 1 else gen(seed))
        return pipe(**inputs, **kwargs)

    # ------------------------------------------------------------------------------------------ outputs
    def test_output_types_agree(self):
        pipe = self.get_pipe()
        ref = self.call(pipe, 2, num_frames=[6, 9], output_type="np")
        assert isinstance(ref, SignPipelineOutput) and ref.num_frames == [6, 9] and ref.fps == pipe.fps
        assert [p.shape for p in ref.poses] == [(6, self.feature_dim), (9, self.feature_dim)]
        assert all(p.dtype == np.float32 and np.isfinite(p).all() for p in ref.poses)
        pt = self.call(pipe, 2, num_frames=[6, 9], output_type="pt")
        assert all(torch.is_tensor(p) for p in pt.poses)
        assert_same(pt.poses, ref.poses, atol=1e-6)
        joints = self.call(pipe, 2, num_frames=[6, 9], output_type="joints")
        spec = pipe.skeleton
        assert_same(joints.poses, ref.poses, atol=1e-6)
        for p, j in zip(ref.poses, joints.joints):
            np.testing.assert_allclose(j, spec.to_positions(p), atol=1e-5)
        pose = self.call(pipe, 2, num_frames=[6, 9], output_type="pose")
        assert [type(p).__name__ for p in pose.pose] == ["Pose", "Pose"]
        assert pose.pose[1].body.data.shape[0] == 9 and pose.pose[1].body.fps == pipe.fps

    def test_dict_vs_tuple(self):
        pipe = self.get_pipe()
        out = self.call(pipe, 2, num_frames=[5, 7])
        tup = self.call(pipe, 2, num_frames=[5, 7], return_dict=False)
        assert isinstance(tup, tuple) and len(tup) == len(fields(type(out)))
        for f, value in zip(fields(type(out)), tup):
            expected = getattr(out, f.name)
            if f.name == "poses":
                assert_same(value, expected, atol=0)
            elif f.name in ("num_frames", "fps"):
                assert value == expected
            else:
                assert (value is None) == (expected is None), f.name

    # ------------------------------------------------------------------------------------------ randomness
    def test_determinism_and_seed(self):
        pipe = self.get_pipe()
        a = pipe(**self.get_inputs(1, num_frames=8), generator=gen(3)).poses
        b = pipe(**self.get_inputs(1, num_frames=8), generator=gen(3)).poses
        assert_same(a, b, atol=0)

    def test_batch_equals_single(self):
        """A padded batch of different lengths gives what each prompt gives alone (per-prompt generators)."""
        pipe = self.get_pipe()
        lengths = [9, 16, 4]
        batch = pipe(**self.get_inputs(3, num_frames=lengths), generator=self.generators(3, 1)).poses
        for i, n in enumerate(lengths):
            inputs = self.get_inputs(3, num_frames=lengths)
            inputs[self.input_name] = inputs[self.input_name][i : i + 1]
            inputs["num_frames"] = n
            single = pipe(**inputs, generator=gen(1 + i)).poses
            assert_same([batch[i]], single, atol=1e-4)

    # ------------------------------------------------------------------------------------------ save / load
    def test_save_load_own_class(self, tmp_path):
        pipe = self.get_pipe()
        expected = pipe(**self.get_inputs(2, num_frames=[7, 10]), generator=self.generators(2)).poses
        pipe.save_pretrained(tmp_path)
        loaded = self.pipeline_class.from_pretrained(tmp_path)
        if hasattr(loaded, "set_progress_bar_config"):
            loaded.set_progress_bar_config(disable=True)
        assert_same(
            loaded(**self.get_inputs(2, num_frames=[7, 10]), generator=self.generators(2)).poses, expected, 1e-6
        )

    # ------------------------------------------------------------------------------------------ bad inputs
    @pytest.mark.parametrize(
        "change, match",
        [
            (dict(empty=True), "empty|non-empty"),
            (dict(whitespace=True), "empty"),
            (dict(output_type="mp4"), "output_type"),
            (dict(num_frames=0), "num_frames"),
            (dict(num_frames=-2), "num_frames"),
            (dict(num_frames=[4, 5, 6]), "entries for 2 prompt"),
            (dict(duration_s=[1.0]), "entries for 2 prompt"),
            (dict(num_frames=4, duration_s=1.0), "not both"),
        ],
    )
    def test_shared_bad_inputs(self, change, match):
        pipe = self.get_pipe()
        inputs = self.get_inputs(2)
        change = {
            k: v for k, v in change.items() if k in self.input_keys or k in ("empty", "whitespace", "output_type")
        }
        if change.pop("empty", False):
            inputs[self.input_name] = ""
        if change.pop("whitespace", False):
            inputs[self.input_name] = [inputs[self.input_name][0], "   "]
        with pytest.raises(ValueError, match=match):
            pipe(**inputs, **change)


class HubPipelineTesterMixin(PipelineTesterMixin):
    """What every hf-sign `DiffusionPipeline` must also do: load through remote code, rebuild from `components`
    with its settings, and load in another `torch_dtype`."""

    def test_save_load_remote_code(self, tmp_path):
        pipe = self.get_pipe()
        expected = pipe(**self.get_inputs(2, num_frames=[7, 10]), generator=self.generators(2)).poses
        pipe.save_pretrained(tmp_path)
        index = json.loads((tmp_path / "model_index.json").read_text())
        entry = index["_class_name"][0]
        assert (tmp_path / f"{entry}.py").is_file() and index["_class_name"][1] == self.pipeline_class.__name__
        loaded = diffusers.DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True)
        assert type(loaded).__name__ == self.pipeline_class.__name__
        loaded.set_progress_bar_config(disable=True)
        assert_same(
            loaded(**self.get_inputs(2, num_frames=[7, 10]), generator=self.generators(2)).poses, expected, 1e-6
        )

    def test_components_rebuild_keeps_settings(self):
        pipe = self.get_pipe(fps=30.0)
        rebuilt = self.pipeline_class(**pipe.components)
        rebuilt.set_progress_bar_config(disable=True)
        assert rebuilt.fps == 30.0 and rebuilt.skeleton.name == pipe.skeleton.name
        for name in self.pipeline_class._settings:
            assert rebuilt.config[name] == pipe.config[name], name
        a, b = self.call(pipe, 1, duration_s=0.5), self.call(rebuilt, 1, duration_s=0.5)
        assert a.num_frames == b.num_frames == [15]  # 0.5 s at 30 fps
        assert_same(a.poses, b.poses, atol=0)

    def test_torch_dtype_loading(self, tmp_path):
        self.get_pipe().save_pretrained(tmp_path)
        pipe = self.pipeline_class.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
        pipe.set_progress_bar_config(disable=True)
        assert pipe.dtype == torch.bfloat16
        out = pipe(**self.get_inputs(2, num_frames=[6, 9]), generator=self.generators(2))
        assert [p.shape for p in out.poses] == [(6, self.feature_dim), (9, self.feature_dim)]
        assert all(p.dtype == np.float32 and np.isfinite(p).all() for p in out.poses)


class DiffusionPipelineTesterMixin(HubPipelineTesterMixin):
    """The shared tests plus those of a diffusers Gaussian-diffusion pipeline: seeds, stochastic schedulers, every
    compatible scheduler, the reference loop, remote-code loading, components, `torch_dtype`, progress bars."""

    # a scheduler whose `step` draws noise (for the list-of-generators test)
    stochastic_scheduler = "DDPMScheduler"

    def test_seed_changes_output(self):
        pipe = self.get_pipe()
        a = pipe(**self.get_inputs(1, num_frames=8), generator=gen(3)).poses
        assert_differ(a, pipe(**self.get_inputs(1, num_frames=8), generator=gen(4)).poses)

    def test_generator_list_reaches_stochastic_steps(self):
        """With a stochastic scheduler, a list of generators decides the step noise too (not the global RNG)."""
        pipe = self.get_pipe()
        pipe.scheduler = getattr(diffusers, self.stochastic_scheduler).from_config(pipe.scheduler.config)
        lengths = [8, 12]
        torch.manual_seed(0)
        a = pipe(**self.get_inputs(2, num_frames=lengths), generator=self.generators(2, 1)).poses
        torch.manual_seed(123)  # the global RNG must not matter
        b = pipe(**self.get_inputs(2, num_frames=lengths), generator=self.generators(2, 1)).poses
        assert_same(a, b, atol=0)
        for i, n in enumerate(lengths):
            inputs = self.get_inputs(2, num_frames=lengths)
            inputs[self.input_name] = inputs[self.input_name][i : i + 1]
            inputs["num_frames"] = n
            assert_same([a[i]], pipe(**inputs, generator=gen(1 + i)).poses, atol=1e-4)

    def test_repeated_calls_after_another_step_count(self):
        """A call does not inherit the previous call's schedule (Euler's `init_noise_sigma` depends on it)."""
        # "leading" spacing: the largest sigma, and so `init_noise_sigma`, depends on the number of steps
        pipe = self.get_pipe()
        pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(
            pipe.scheduler.config, timestep_spacing="leading"
        )
        fresh = self.get_pipe()
        fresh.scheduler = diffusers.EulerDiscreteScheduler.from_config(
            fresh.scheduler.config, timestep_spacing="leading"
        )
        pipe(**self.get_inputs(1, num_frames=8, num_inference_steps=5), generator=gen(0))
        again = pipe(**self.get_inputs(1, num_frames=8, num_inference_steps=2), generator=gen(0)).poses
        assert_same(again, fresh(**self.get_inputs(1, num_frames=8, num_inference_steps=2), generator=gen(0)).poses)

    @pytest.mark.parametrize("scheduler_name", GAUSSIAN_SCHEDULERS)
    def test_scheduler_swap(self, scheduler_name):
        pipe = self.get_pipe()
        pipe.scheduler = getattr(diffusers, scheduler_name).from_config(pipe.scheduler.config)
        # 4 steps: PNDM's Runge-Kutta warm-up needs at least 4
        a = pipe(**self.get_inputs(2, num_frames=[8, 6], num_inference_steps=4), generator=self.generators(2)).poses
        assert [p.shape for p in a] == [(8, self.feature_dim), (6, self.feature_dim)]
        assert all(np.isfinite(p).all() for p in a)
        b = pipe(**self.get_inputs(2, num_frames=[8, 6], num_inference_steps=4), generator=self.generators(2)).poses
        assert_same(a, b, atol=0)

    # ------------------------------------------------------------------------------------------ arithmetic
    def test_matches_reference_loop(self):
        pipe = self.get_pipe()
        inputs = self.get_inputs(2, num_frames=[8, 11], num_inference_steps=2, guidance_scale=2.5)
        expected = self.reference_call(pipe, dict(inputs, generator=self.generators(2, 5)))
        got = pipe(**inputs, generator=self.generators(2, 5)).poses
        assert_same(got, expected, atol=1e-5)

    def test_progress_bar_config(self):
        pipe = self.get_pipe()
        pipe.set_progress_bar_config(disable=False)
        err = io.StringIO()
        with redirect_stderr(err):
            self.call(pipe, 1, num_frames=6, num_inference_steps=2)
        assert "2/2" in err.getvalue()
        pipe.set_progress_bar_config(disable=True)
        err = io.StringIO()
        with redirect_stderr(err):
            self.call(pipe, 1, num_frames=6, num_inference_steps=2)
        assert "2/2" not in err.getvalue()


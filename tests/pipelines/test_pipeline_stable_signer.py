"""`StableSignerPipeline` through the shared pipeline tests, plus its own behaviour: gloss input, unknown glosses
replaced and reported, expert sampling, language tags, and its bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pipeline_tester_mixin import HubPipelineTesterMixin, assert_differ, assert_same, gen

from hf_sign.data.io import split_rows
from hf_sign.data.pose_bank import PoseBank
from hf_sign.data.synthsign import build_synthsign
from hf_sign.evaluation.baseline_utils import load_split
from hf_sign.models.stable_signer import PoseExpertGate
from hf_sign.pipelines.pipeline_stable_signer import StableSignerPipeline, StableSignerPipelineOutput
from hf_sign.training.stable_signer_linker import LinkerSettings, build_linker

_ROWS = {}


def train_rows():
    if "train" not in _ROWS:
        import tempfile

        folder = tempfile.mkdtemp(prefix="synthsign-stable-signer-")
        build_synthsign(folder, seed=0, num_train=12, num_validation=2, num_test=2, show_progress=False)
        _ROWS["train"] = split_rows(load_split(folder, "train"), "train")
    return _ROWS["train"]


def tiny_components():
    rows = train_rows()
    torch.manual_seed(0)
    settings = LinkerSettings(
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        dropout_rate=0.0,
        max_gloss_length=6,
    )
    linker, tokenizer = build_linker(settings, rows, ["synth"])
    gate = PoseExpertGate(query_dim=32, num_experts=2)
    bank = PoseBank.from_rows(rows, num_experts=2, fps=24.0, show_progress=False)
    return {"linker": linker.eval(), "tokenizer": tokenizer, "gate": gate, "pose_bank": bank}


class TestStableSignerPipeline(HubPipelineTesterMixin):
    pipeline_class = StableSignerPipeline
    input_keys = ("num_frames", "duration_s")

    def get_dummy_components(self):
        return tiny_components()

    def get_inputs(self, num_prompts=1, seed=0, **overrides):
        inputs = {"prompt": [r["text"] for r in train_rows()[:num_prompts]]}
        inputs.update({k: v for k, v in overrides.items() if k in self.input_keys})
        return inputs

    # ------------------------------------------------------------------------------------------ own behaviour
    def test_output_is_the_joined_top_expert_clips(self):
        pipe = self.get_pipe()
        out = pipe(gloss=[["YESTERDAY", "BROTHER"]], prompt=["where was the brother yesterday?"])
        assert isinstance(out, StableSignerPipelineOutput)
        info = out.info[0]
        assert info["glosses"] == ["YESTERDAY", "BROTHER"] and info["replaced_glosses"] == []
        weights = np.array(info["gate_weights"])
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-6)
        assert info["experts"] == weights.argmax(-1).tolist()
        bank = pipe.pose_bank
        expected = bank.join([bank.candidates(g)[k] for g, k in zip(info["glosses"], info["experts"])])
        np.testing.assert_allclose(out.poses[0], expected, atol=0)

    def test_unknown_gloss_is_replaced_and_reported(self):
        pipe = self.get_pipe()
        out = pipe(gloss="YESTERDAY ZEPPELIN")
        info = out.info[0]
        assert info["linked_glosses"] == ["YESTERDAY", "ZEPPELIN"]
        (rep,) = info["replaced_glosses"]
        assert rep["index"] == 1 and rep["gloss"] == "ZEPPELIN" and rep["replacement"] in pipe.pose_bank
        assert info["glosses"] == ["YESTERDAY", rep["replacement"]] and -1.0 <= rep["similarity"] <= 1.0 + 1e-6

    def test_linker_glosses_are_in_the_bank(self):
        pipe = self.get_pipe()
        out = pipe(["hello there brother", "who will visit the hotel tomorrow?"])
        for info in out.info:
            assert info["glosses"] and all(g in pipe.pose_bank for g in info["glosses"])

    def test_sampled_experts_follow_the_generator(self):
        pipe = self.get_pipe()
        pipe.gate.proj.bias.data[:] = 0.0
        pipe.gate.proj.weight.data[:] = 0.0  # a uniform gate: every expert as likely
        prompt = "who will visit the hotel tomorrow? " * 3
        glosses = "YESTERDAY BROTHER WHERE TODAY ME " * 2
        a = pipe(prompt, gloss=glosses, sample_experts=True, generator=gen(0))
        b = pipe(prompt, gloss=glosses, sample_experts=True, generator=gen(0))
        assert a.info[0]["experts"] == b.info[0]["experts"]
        draws = {
            tuple(pipe(prompt, gloss=glosses, sample_experts=True, generator=gen(s)).info[0]["experts"])
            for s in range(6)
        }
        assert len(draws) > 1
        top = pipe(prompt, gloss=glosses, num_sequences_per_prompt=2)
        assert len(top.poses) == 2
        assert_same([top.poses[0]], [top.poses[1]], atol=0)
        two = pipe(prompt, gloss=glosses, num_sequences_per_prompt=2, sample_experts=True, generator=[gen(0), gen(1)])
        assert two.info[0]["experts"] != two.info[1]["experts"]  # 10 draws from a uniform gate, fixed seeds
        assert_differ([two.poses[0]], [two.poses[1]])

    def test_video_frames_follow_the_poses(self, tmp_path):
        from diffusers import DDIMScheduler

        from hf_sign.training.stable_signer_renderer import build_renderer
        from hf_sign.training.stable_signer_trainer import full_config

        torch.manual_seed(0)
        parts = build_renderer(full_config("tiny"))  # the tiny config's renderer
        pipe = self.pipeline_class(
            **self.get_dummy_components(), unet=parts["unet"], controlnet=parts["controlnet"],
            reference_encoder=parts["reference_encoder"],
            renderer_scheduler=DDIMScheduler.from_config(parts["scheduler"].config),
        )
        pipe.set_progress_bar_config(disable=True)
        kwargs = dict(prompt=["hello there brother", "where was the brother yesterday?"], num_frames=[5, 3],
                      output_type="video", num_inference_steps=2)
        out = pipe(**kwargs, generator=[gen(0), gen(1)])
        assert [f.shape for f in out.frames] == [(5, 32, 32, 3), (3, 32, 32, 3)]
        assert all(f.dtype == np.uint8 for f in out.frames) and [p.shape[0] for p in out.poses] == [5, 3]
        again = pipe(**kwargs, generator=[gen(0), gen(1)])
        assert all(np.array_equal(a, b) for a, b in zip(out.frames, again.frames))
        other = pipe(**kwargs, generator=[gen(2), gen(1)])
        assert not np.array_equal(out.frames[0], other.frames[0])
        pipe.save_pretrained(tmp_path)
        loaded = self.pipeline_class.from_pretrained(tmp_path)
        loaded.set_progress_bar_config(disable=True)
        assert np.array_equal(loaded(**kwargs, generator=[gen(0), gen(1)]).frames[1], out.frames[1])
        with pytest.raises(ValueError, match="num_inference_steps"):
            pipe(prompt="hello", output_type="video", num_inference_steps=0)

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(prompt=""), "empty|non-empty"),
            (dict(prompt="hello", language="dgs"), "language"),
            (dict(prompt=None), "prompt"),
            (dict(prompt="hello", gloss=["A", "B"]), "gloss"),
            (dict(gloss=[[]]), "gloss"),
            (dict(prompt="hello", output_type="video"), "renderer"),
            (dict(prompt="hello", output_type="latent"), "output_type"),
        ],
    )
    def test_bad_inputs(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            self.get_pipe()(**kwargs)

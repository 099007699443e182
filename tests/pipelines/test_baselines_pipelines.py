"""The three baselines through the shared pipeline tests (`PipelineTesterMixin`): output types, dict vs tuple,
determinism, batch vs single, save/load through their own class, the shared bad inputs. They are not diffusers
pipelines (no scheduler, no randomness), so they take the shared tests only, not `DiffusionPipelineTesterMixin`'s."""

from __future__ import annotations

import pytest
from pipeline_tester_mixin import PipelineTesterMixin

from hf_sign.data.io import split_rows
from hf_sign.data.synthsign import build_synthsign
from hf_sign.evaluation.baseline_utils import load_split
from hf_sign.evaluation.baselines import GlossConcatenationBaseline, MeanPoseBaseline, NearestSentenceBaseline

_ROWS = {}


def train_rows():
    if "train" not in _ROWS:
        import tempfile

        folder = tempfile.mkdtemp(prefix="synthsign-baselines-")
        build_synthsign(folder, seed=0, num_train=12, num_validation=2, num_test=2, show_progress=False)
        _ROWS["train"] = split_rows(load_split(folder, "train"), "train")
    return _ROWS["train"]


class _BaselineTester(PipelineTesterMixin):
    input_keys = ("num_frames", "duration_s")

    def get_pipe(self, **settings):
        return self.pipeline_class.from_rows(train_rows(), split="train")

    def get_inputs(self, num_prompts=1, seed=0, **overrides):
        rows = train_rows()[:num_prompts]
        inputs = {"prompt": [r["text"] for r in rows]}
        inputs.update({k: v for k, v in overrides.items() if k in self.input_keys})
        return inputs


class TestMeanPoseBaseline(_BaselineTester):
    pipeline_class = MeanPoseBaseline


class TestNearestSentenceBaseline(_BaselineTester):
    pipeline_class = NearestSentenceBaseline


class TestGlossConcatenationBaseline(_BaselineTester):
    pipeline_class = GlossConcatenationBaseline
    input_name = "gloss"

    def get_inputs(self, num_prompts=1, seed=0, **overrides):
        rows = train_rows()[:num_prompts]
        inputs = {"gloss": [list(r["gloss"]) for r in rows]}
        inputs.update({k: v for k, v in overrides.items() if k in self.input_keys})
        return inputs


def test_concat_reports_unknown_glosses_and_reads_no_text():
    concat = GlossConcatenationBaseline.from_rows(train_rows(), split="train")
    known = list(train_rows()[0]["gloss"])
    out = concat(gloss=[known + ["NOT-A-GLOSS"]])
    assert out.info[0]["unknown_glosses"] == ["NOT-A-GLOSS"]
    assert concat.conditioning == ("gloss",)
    with pytest.raises(ValueError, match="gloss"):
        concat(prompt="hello")

"""Trained Sign-SALD pipelines frozen in `tests/fixtures/` keep loading and keep producing the same poses (1e-5).

The folders and their `expected.npz` were written by `tests/fixtures/make_sign_sald_fixtures.py` with the code of
the time; a refactor that renames weights must load them through a documented key mapping, and one that changes the
arithmetic fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from diffusers import DiffusionPipeline

from hf_sign.pipelines.pipeline_sign_sald import SignSALDPipeline

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(FIXTURES))
from make_sign_sald_fixtures import VARIANTS, generate  # noqa: E402

sys.path.remove(str(FIXTURES))


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("loader", ["own_class", "remote_code"])
def test_frozen_pipeline_reproduces_its_poses(name, loader):
    folder = FIXTURES / name
    if loader == "own_class":
        pipe = SignSALDPipeline.from_pretrained(str(folder))
    else:
        pipe = DiffusionPipeline.from_pretrained(str(folder), trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    expected = dict(np.load(folder / "expected.npz"))
    got = generate(pipe)
    assert sorted(got) == sorted(expected)
    for key in expected:
        assert got[key].shape == expected[key].shape, key
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5, rtol=0, err_msg=key)


def test_fixture_outputs_are_not_trivial():
    # a frozen output that a broken model could also produce (zeros, the mean pose) would test nothing
    for name in VARIANTS:
        expected = np.load(FIXTURES / name / "expected.npz")
        for key in expected.files:
            poses = expected[key]
            assert np.isfinite(poses).all() and poses.std(0).mean() > 1e-3, (name, key)

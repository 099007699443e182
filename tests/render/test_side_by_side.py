"""The nearest-training-example lookup and the side-by-side video: the lookup finds a training sequence from its own
poses (and from a sped-up copy), reads the corpus a pipeline folder's card names, and the video has both panels."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from hf_sign.data.io import load_corpus, split_rows
from hf_sign.data.resample import resample_to_length, resampled_length
from hf_sign.render.side_by_side import (
    NearestExample,
    TrainingExampleIndex,
    render_side_by_side,
    training_corpus_of,
)
from hf_sign.skeletons import get_skeleton


@pytest.fixture(scope="module")
def corpus(tiny_synthsign):
    return tiny_synthsign


@pytest.fixture(scope="module")
def rows(corpus):
    return split_rows(load_corpus(corpus)["train"], "train")


@pytest.fixture(scope="module")
def index(corpus):
    return TrainingExampleIndex.from_corpus(corpus, split="train", num_samples=16)


def test_a_training_sequence_finds_itself(index, rows):
    for i in (0, 5, len(rows) - 1):
        found = index.nearest(rows[i]["poses"])
        assert isinstance(found, NearestExample)
        assert found.index == i and found.id == rows[i]["id"] and found.text == rows[i]["text"]
        assert found.gloss == rows[i]["gloss"] and found.fps == rows[i]["fps"]
        np.testing.assert_array_equal(found.poses, rows[i]["poses"])
        assert found.distance == pytest.approx(0.0, abs=1e-6)


def test_the_distance_ignores_speed_but_not_motion(index, rows):
    poses = rows[3]["poses"]
    slower = resample_to_length(poses, 2 * len(poses)).astype(np.float32)
    found = index.nearest(slower)
    assert found.index == 3 and found.distance < 1e-3
    dist = index.distances(poses)
    assert dist.shape == (len(rows),) and dist[3] < 1e-6 and (np.delete(dist, 3) > 1e-3).all()


def test_the_index_refuses_bad_input(rows, corpus):
    with pytest.raises(ValueError, match="num_samples"):
        TrainingExampleIndex(rows, num_samples=0)
    with pytest.raises(ValueError, match="empty"):
        TrainingExampleIndex([])
    with pytest.raises(ValueError, match="representation"):
        TrainingExampleIndex([dict(rows[0]), dict(rows[1], representation="pt50")])
    with pytest.raises(ValueError, match="split"):
        TrainingExampleIndex.from_corpus(corpus, split="nope")


def test_training_corpus_of_reads_the_model_card(tmp_path):
    assert training_corpus_of(tmp_path) is None
    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\n---\n# model\n")
    assert training_corpus_of(tmp_path) is None
    (tmp_path / "README.md").write_text("---\ndatasets:\n- hf-sign/synthsign\n- other/corpus\n---\n# model\n")
    assert training_corpus_of(tmp_path) == "hf-sign/synthsign"


def test_side_by_side_video_has_both_panels(index, rows, tmp_path):
    spec = get_skeleton("smplx133")
    generated = rows[0]["poses"][:30]
    nearest = index.nearest(rows[1]["poses"])
    path = render_side_by_side(generated, nearest, spec, tmp_path / "pair.mp4", fps=24.0, text="hello", size=(96, 96))
    frames = iio.imread(path)
    # the longer sequence sets the length; two 96-pixel panels
    assert frames.shape == (max(30, len(nearest.poses)), 96, 192, 3)
    # a reference at half the rate is resampled to the video's rate: twice as many frames
    path = render_side_by_side(
        generated, rows[1]["poses"][:20], spec, tmp_path / "half.mp4", fps=24.0, reference_fps=12.0, size=(64, 64)
    )
    assert iio.imread(path).shape == (max(30, resampled_length(20, 12.0, 24.0)), 64, 128, 3)
    with pytest.raises(ValueError, match="out_path"):
        render_side_by_side(generated, nearest, spec, tmp_path / "pair.pose", fps=24.0)
    with pytest.raises(ValueError, match="reference"):
        render_side_by_side(generated, np.zeros((5, 7), np.float32), spec, tmp_path / "bad.mp4", fps=24.0)

"""Benchmark baselines on a tiny SynthSign corpus: shapes and units, retrieval, span-based concatenation,
unknown glosses, safetensors + JSON round trips and clear errors."""

import json

import numpy as np
import pytest
import torch

from hf_sign.data.io import load_corpus, split_rows
from hf_sign.data.pose_bank import most_typical
from hf_sign.data.resample import minimum_jerk, resample_to_length as resample_sequence
from hf_sign.data.synthsign import build_synthsign
from hf_sign.evaluation.baselines import (
    GlossConcatenationBaseline,
    MeanPoseBaseline,
    NearestSentenceBaseline,
    load_baseline,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # a folder name of its own: `datasets` caches local folders by name (see `load_corpus`)
    path = tmp_path_factory.mktemp("baselines") / "synthsign_baselines_16_2_4"
    build_synthsign(path, seed=0, num_train=16, num_validation=2, num_test=4, show_progress=False)
    dd = load_corpus(path)
    return path, dd, split_rows(dd["train"], "train"), split_rows(dd["test"], "test")


def test_mean_pose_is_the_mean_training_frame_held_for_the_mean_length(corpus):
    path, _, train, _ = corpus
    base = MeanPoseBaseline.from_dataset(path)
    frames = np.concatenate([r["poses"] for r in train]).astype(np.float64)
    out = base("anything at all")
    assert len(out.poses) == 1 and out.poses[0].dtype == np.float32
    assert out.poses[0].shape == (round(np.mean([len(r["poses"]) for r in train])), 133)
    np.testing.assert_allclose(out.poses[0], np.repeat(frames.mean(0)[None], out.poses[0].shape[0], 0), atol=1e-5)
    assert out.fps == 24.0 and base.config["representation"] == "smplx133"
    two = base(["a", "b"], num_frames=[5, 9], output_type="joints")
    assert [p.shape for p in two.poses] == [(5, 133), (9, 133)]
    assert [j.shape for j in two.joints] == [(5, 54, 3), (9, 54, 3)]
    pt = base("a", output_type="pt", return_dict=False)
    assert isinstance(pt, tuple) and isinstance(pt[0][0], torch.Tensor)


def test_nearest_sentence_returns_the_exact_training_poses(corpus):
    _, dd, train, _ = corpus
    base = NearestSentenceBaseline.from_dataset(dd, split="train")
    for k in (0, 7, len(train) - 1):
        out = base(train[k]["text"].upper() + "!")  # case and punctuation do not matter
        np.testing.assert_array_equal(out.poses[0], train[k]["poses"])
        assert out.info[0]["retrieved_id"] == train[k]["id"] and out.info[0]["similarity"] == 1.0
    # TF-IDF: a partial sentence (and an unseen word, which carries no weight) retrieves its source
    out = base(" ".join(train[3]["text"].split()[:-1]) + " zebra")
    assert out.info[0]["retrieved_id"] == train[3]["id"] and 0.5 < out.info[0]["similarity"] < 1.0
    # no shared n-gram: all similarities 0, the first training sample (documented tie rule)
    assert base("qqq xyzzy").info[0]["retrieved_id"] == train[0]["id"]
    sims = base.similarities(train[5]["text"])
    assert sims.shape == (len(train),) and np.argmax(sims) == 5 and sims.max() == pytest.approx(1.0)
    # num_frames resamples in time, keeping the first and last frames
    out = base(train[2]["text"], num_frames=10)
    assert out.poses[0].shape == (10, 133)
    np.testing.assert_allclose(out.poses[0][[0, -1]], train[2]["poses"][[0, -1]], atol=1e-6)


def test_gloss_concatenation_cuts_clips_with_spans_and_adds_transitions(corpus):
    path, _, train, test = corpus
    base = GlossConcatenationBaseline.from_dataset(path, transition_frames=3, lead_in=0, lead_out=0)
    by_id = {r["id"]: r for r in train}
    # every lexicon clip is a span of a training sample, frame for frame
    for g, (sid, a, b) in zip(base.config["glosses"], base.config["clip_sources"]):
        row = by_id[sid]
        assert (a, b) in row["gloss_spans"] and row["gloss"][row["gloss_spans"].index((a, b))] == g
        np.testing.assert_array_equal(base.clip(g), row["poses"][a:b])
    gloss = test[0]["gloss"]
    out = base(test[0]["text"], gloss=gloss)
    seq = out.poses[0]
    clips = [base.clip(g) for g in gloss]
    assert seq.shape == (sum(len(c) for c in clips) + 3 * (len(gloss) - 1), 133)
    assert out.info[0]["unknown_glosses"] == []
    start = 0
    for i, c in enumerate(clips):
        np.testing.assert_array_equal(seq[start : start + len(c)], c)
        start += len(c)
        if i + 1 < len(clips):  # minimum-jerk in-betweens strictly between the boundary frames
            x0, x1 = c[-1], clips[i + 1][0]
            s = minimum_jerk(np.arange(1, 4) / 4.0)
            np.testing.assert_allclose(seq[start : start + 3], x0 + s[:, None] * (x1 - x0), atol=1e-5)
            start += 3
    # lead-in / lead-out from and to the rest pose add their frames; the defaults come from the train spans
    auto = GlossConcatenationBaseline.from_dataset(path)
    cfg = auto.config
    assert cfg["transition_frames"] > 0 and cfg["lead_in"] > 0 and cfg["lead_out"] > 0
    seq = auto(test[0]["text"], gloss=" ".join(gloss)).poses[0]  # a gloss string works too
    assert (
        len(seq)
        == cfg["lead_in"] + sum(len(c) for c in clips) + cfg["transition_frames"] * (len(gloss) - 1) + cfg["lead_out"]
    )
    np.testing.assert_allclose(seq[0], auto.arrays["rest_start"], atol=1e-6)
    np.testing.assert_allclose(seq[-1], auto.arrays["rest_end"], atol=1e-6)


def test_most_typical_instance_is_the_one_nearest_the_template():
    base = np.zeros((6, 4), np.float32)
    clips = [base + 0.0, base + 1.0, base + 0.4, base[:4] + 0.5]
    # mean template ~0.47 after resampling to the median length: 0.5 (4 frames) is nearest
    assert most_typical(clips) == 3
    assert most_typical(clips[:1]) == 0


def test_unknown_glosses_are_held_and_reported_or_raise(corpus):
    path, dd, train, _ = corpus
    rows = split_rows(dd["train"], "train")
    hold = GlossConcatenationBaseline.from_rows(rows, transition_frames=2, lead_in=0, lead_out=0)
    known = hold.vocabulary[0]
    out = hold("x", gloss=[known, "NOT-A-SIGN", known])
    assert out.info[0]["unknown_glosses"] == ["NOT-A-SIGN"]
    clip = hold.clip(known)
    assert len(out.poses[0]) == 2 * len(clip) + hold.config["hold_frames"] + 2 * 2
    held = out.poses[0][len(clip) + 2 : len(clip) + 2 + hold.config["hold_frames"]]
    np.testing.assert_array_equal(held, np.repeat(clip[-1:], len(held), 0))
    strict = GlossConcatenationBaseline.from_rows(rows, unknown_gloss="error")
    with pytest.raises(ValueError, match="NOT-A-SIGN"):
        strict("x", gloss=[known, "NOT-A-SIGN"])
    with pytest.raises(ValueError, match="gloss"):
        hold("a sentence without glosses")
    with pytest.raises(ValueError, match="unknown_gloss"):
        GlossConcatenationBaseline.from_rows(rows, unknown_gloss="skip")
    no_spans = [dict(r, gloss_spans=[]) for r in rows]
    with pytest.raises(ValueError, match="gloss_spans"):
        GlossConcatenationBaseline.from_rows(no_spans)


def test_save_load_round_trip_without_pickle(corpus, tmp_path):
    path, _, _, test = corpus
    gloss = test[1]["gloss"]
    for cls in (MeanPoseBaseline, NearestSentenceBaseline, GlossConcatenationBaseline):
        base = cls.from_dataset(path)
        out_dir = base.save_pretrained(tmp_path / cls.__name__)
        assert sorted(p.name for p in out_dir.iterdir()) == ["baseline.safetensors", "baseline_config.json"]
        assert json.loads((out_dir / "baseline_config.json").read_text())["_class_name"] == cls.__name__
        for loaded in (load_baseline(out_dir), cls.from_pretrained(out_dir)):
            assert type(loaded) is cls and loaded.config == base.config
            a = base([test[1]["text"], test[2]["text"]], gloss=[gloss, test[2]["gloss"]])
            b = loaded([test[1]["text"], test[2]["text"]], gloss=[gloss, test[2]["gloss"]])
            for x, y in zip(a.poses, b.poses):
                np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="not a NearestSentenceBaseline"):
        NearestSentenceBaseline.from_pretrained(tmp_path / "MeanPoseBaseline")
    with pytest.raises(ValueError, match="holds no baseline"):
        load_baseline(tmp_path / "missing")


def test_bad_inputs_raise_naming_the_field(corpus):
    path, dd, _, _ = corpus
    with pytest.raises(ValueError, match="`split`='nope'.*available splits"):
        MeanPoseBaseline.from_dataset(path, split="nope")
    with pytest.raises(ValueError, match="does not exist"):
        MeanPoseBaseline.from_dataset(path / "missing")
    base = MeanPoseBaseline.from_dataset(dd)
    with pytest.raises(ValueError, match="num_frames"):
        base("a", num_frames=0)
    with pytest.raises(ValueError, match="num_frames"):
        base(["a", "b"], num_frames=[3])
    with pytest.raises(ValueError, match="output_type"):
        base("a", output_type="video")
    with pytest.raises(ValueError, match="prompt"):
        base([])
    with pytest.raises(ValueError, match="gloss"):
        base(["a", "b"], gloss=[["A"]])
    with pytest.raises(ValueError, match="max_ngram"):
        NearestSentenceBaseline.from_dataset(dd, max_ngram=0)
    with pytest.raises(ValueError, match="transition_frames"):
        GlossConcatenationBaseline.from_dataset(dd, transition_frames=-1)


def test_resample_sequence_keeps_endpoints():
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = resample_sequence(x, 11)
    np.testing.assert_allclose(y[[0, -1]], x[[0, -1]])
    np.testing.assert_allclose(y[1], (x[0] + x[1]) / 2)
    assert resample_sequence(x[:1], 3).shape == (3, 2) and resample_sequence(x, 1).shape == (1, 2)
    with pytest.raises(ValueError, match="num_frames"):
        resample_sequence(x, 0)

"""The pose prior bank: candidates per expert by tempo quantile, duplicates, joining, and its HF-dataset storage."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from hf_sign.data.pose_bank import PoseBank, join_clips
from hf_sign.data.resample import minimum_jerk


def clip(n, value):
    return np.full((n, 4), value, dtype=np.float32)


def rows():
    # gloss A: 4 instances of lengths 2, 3, 5, 8 (values tell them apart); gloss B: one instance; C: three
    lengths = [5, 2, 8, 3]
    out = []
    for i, n in enumerate(lengths):
        poses = np.concatenate([clip(1, 0), clip(n, 10 + n), clip(2, 0), clip(3, 1)])
        out.append(
            {
                "id": f"s{i}",
                "gloss": ["A", "B" if i == 0 else "C"],
                "gloss_spans": [[1, 1 + n], [3 + n, 6 + n]],
                "poses": poses,
            }
        )
    return out


def test_experts_are_tempo_quantiles_and_short_glosses_repeat():
    bank = PoseBank.from_rows(rows(), num_experts=2, show_progress=False)
    assert bank.glosses == ["A", "B", "C"]
    a = bank.candidates("A")
    # lengths sorted 2, 3, 5, 8 -> groups {2, 3} and {5, 8}; expert 0 the shorter group
    assert [c.shape[0] for c in a][0] in (2, 3) and [c.shape[0] for c in a][1] in (5, 8)
    assert np.all(a[0] == 10 + a[0].shape[0])  # a real instance with its original frames
    b = bank.candidates("B")
    assert len(b) == 2 and [r["duplicate"] for r in bank.records if r["gloss"] == "B"] == [False, True]
    assert bank.config.lead_in == 1 and bank.config.transition_frames == 2 and bank.config.lead_out == 0
    with pytest.raises(ValueError, match="not in the pose bank"):
        bank.candidates("D")


def test_join_lengths_and_minimum_jerk_blends():
    start, end = np.zeros(2, np.float32), np.ones(2, np.float32) * 4
    c1, c2 = np.ones((3, 2), np.float32), np.full((2, 2), 2.0, np.float32)
    out = join_clips([c1, c2], start, end, lead_in=2, transition_frames=3, lead_out=2)
    assert out.shape == (2 + 3 + 3 + 2 + 2, 2)
    np.testing.assert_allclose(out[:2, 0], minimum_jerk(np.arange(2) / 2) * 1.0, atol=1e-6)
    np.testing.assert_allclose(out[5:8, 0], 1 + minimum_jerk(np.arange(1, 4) / 4), atol=1e-6)
    np.testing.assert_allclose(out[-1], end)
    with pytest.raises(ValueError, match="empty"):
        join_clips([], start, end, 1, 1, 1)


def test_save_load_round_trip_is_an_hf_dataset(tmp_path):
    bank = PoseBank.from_rows(rows(), num_experts=3, show_progress=False)
    bank.save_pretrained(tmp_path / "pose_bank")
    loaded = PoseBank.from_pretrained(tmp_path, subfolder="pose_bank")
    assert loaded.config == bank.config and loaded.glosses == bank.glosses
    for g in bank.glosses:
        for x, y in zip(bank.candidates(g), loaded.candidates(g)):
            np.testing.assert_array_equal(x, y)
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "pose_bank" / "data"), split="train")
    assert len(ds) == 3 * 3 and set(ds["gloss"]) == {"A", "B", "C"}
    with pytest.raises(ValueError, match="pose bank folder"):
        PoseBank.from_pretrained(tmp_path / "nothing")


def test_rows_without_spans_are_refused():
    bad = [{"id": "x", "gloss": ["A"], "gloss_spans": [], "poses": clip(4, 0)}]
    with pytest.raises(ValueError, match="gloss_spans"):
        PoseBank.from_rows(bad, show_progress=False)
    bad = [{"id": "x", "gloss": ["A", "B"], "gloss_spans": [[0, 2]], "poses": clip(4, 0)}]
    with pytest.raises(ValueError, match="spans for 2 glosses"):
        PoseBank.from_rows(bad, show_progress=False)
    bad = [{"id": "x", "gloss": ["A"], "gloss_spans": [[2, 9]], "poses": clip(4, 0)}]
    with pytest.raises(ValueError, match="outside"):
        PoseBank.from_rows(bad, show_progress=False)

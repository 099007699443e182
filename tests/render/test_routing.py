"""Routing maps (Sign-MExD's Fig. 3): the active expert frequency per gloss from per-frame counts, and its heatmap."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hf_sign.render.routing import (
    CELL_HEIGHT,
    CELL_WIDTH,
    HEADER_HEIGHT,
    LABEL_WIDTH,
    TITLE_HEIGHT,
    gloss_expert_frequency,
    heatmap_size,
    routing_heatmap,
    save_routing_heatmap,
)


def test_frequency_counts_each_glosss_frames_over_the_steps():
    # 6 frames, 3 experts, 4 steps; gloss A = frames 0-1, gloss B = frames 2-4, frame 5 belongs to no gloss
    counts = np.array([[4, 0, 4], [4, 2, 2], [0, 4, 4], [0, 4, 4], [1, 3, 4], [4, 4, 4]])
    freq = gloss_expert_frequency(counts, 4, [[0, 2], [2, 5]])
    np.testing.assert_allclose(freq, [[8 / 8, 2 / 8, 6 / 8], [1 / 12, 11 / 12, 12 / 12]])
    assert gloss_expert_frequency(counts.tolist(), 4, [[5, 5]]).shape == (1, 3)
    assert np.isnan(gloss_expert_frequency(counts, 4, [[5, 5]])).all()  # a gloss without frames


@pytest.mark.parametrize(
    "counts, steps, spans, match",
    [
        (np.zeros(6), 4, [[0, 2]], "num_frames, num_experts"),
        (np.zeros((6, 2)), 0, [[0, 2]], "num_steps"),
        (np.full((6, 2), 5), 4, [[0, 2]], r"\[0, num_steps=4\]"),
        (np.zeros((6, 2)), 4, [[4, 8]], r"gloss_spans\[0\]"),
    ],
)
def test_frequency_rejects_bad_input(counts, steps, spans, match):
    with pytest.raises(ValueError, match=match):
        gloss_expert_frequency(counts, steps, spans)


def test_heatmap_draws_one_cell_per_gloss_and_expert(tmp_path):
    freq = np.array([[1.0, 0.0, 0.5, 0.25], [0.0, 1.0, np.nan, 0.75], [0.5, 0.5, 0.5, 0.5]])
    glosses = ["TOMORROW", "ZEPPELIN", "RAIN"]
    path = save_routing_heatmap(freq, glosses, tmp_path / "maps" / "routing.png", unknown=["ZEPPELIN"])
    image = Image.open(path)
    expected = (LABEL_WIDTH + 4 * CELL_WIDTH + 70, 30 + 24 + 3 * CELL_HEIGHT + 26)
    assert image.format == "PNG" and image.size == heatmap_size(3, 4) == expected
    rgb = np.asarray(image.convert("RGB"))

    def corner(g, e):  # a pixel inside the cell, away from its printed value
        return rgb[TITLE_HEIGHT + HEADER_HEIGHT + g * CELL_HEIGHT + 3, LABEL_WIDTH + e * CELL_WIDTH + 3]

    assert tuple(corner(0, 0)) == (8, 48, 107) and tuple(corner(0, 1)) == (255, 255, 255)  # 1 dark, 0 white
    assert 8 < corner(0, 2)[0] < 255 and corner(0, 3)[0] > corner(0, 2)[0]  # darker with the frequency
    assert tuple(corner(1, 2)) == (200, 200, 200)  # no frames: grey
    bigger = routing_heatmap(np.zeros((5, 8)), ["A"] * 5)
    assert bigger.size == heatmap_size(5, 8) and bigger.size[0] > image.size[0] and bigger.size[1] > image.size[1]


def test_heatmap_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"num_glosses=2"):
        routing_heatmap(np.zeros((3, 4)), ["A", "B"])
    with pytest.raises(ValueError, match=r"\.png"):
        save_routing_heatmap(np.zeros((1, 2)), ["A"], tmp_path / "map.gif")

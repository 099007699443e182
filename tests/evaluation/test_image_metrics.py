"""SSIM and hand-region SSIM against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_sign.evaluation.image_metrics import gaussian_window, hand_ssim, ssim, ssim_map


def _reference_ssim(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> float:
    """Wang et al.'s SSIM written out window by window (grey images, 11x11 Gaussian, sigma 1.5, valid positions)."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mu_a, mu_b = (w * a).sum(), (w * b).sum()
            var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
            cov = (w * (a - mu_a) * (b - mu_b)).sum()
            values.append(
                ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
            )
    return float(np.mean(values))


def test_identical_images_score_one():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (3, 20, 20, 3)).astype(np.uint8)
    np.testing.assert_allclose(ssim(img, img), 1.0, atol=1e-12)
    boxes = np.tile(np.array([[2, 3, 8, 9], [10, 10, 20, 20]]), (3, 1, 1))
    np.testing.assert_allclose(hand_ssim(img, img, boxes), 1.0, atol=1e-12)


def test_constant_images_give_the_luminance_term():
    # no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 255)^2
    a, b = np.full((16, 16), 100.0), np.full((16, 16), 50.0)
    c1 = 2.55**2
    assert ssim(a, b)[0] == pytest.approx((2 * 100 * 50 + c1) / (100**2 + 50**2 + c1), rel=1e-12)


def test_matches_the_window_by_window_definition():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (14, 13))
    y = np.clip(x + rng.normal(0, 40, x.shape), 0, 255)
    expected = _reference_ssim(x, y)
    assert 0.2 < expected < 0.95
    assert ssim(x, y)[0] == pytest.approx(expected, rel=1e-9)
    assert ssim(torch.tensor(y), torch.tensor(x))[0] == pytest.approx(expected, rel=1e-9)  # symmetric, torch input
    # colour: the mean over channels
    rgb_x, rgb_y = np.stack([x, x, 255 - x], -1), np.stack([y, y, 255 - y], -1)
    both = (2 * expected + _reference_ssim(255 - x, 255 - y)) / 3
    assert ssim(rgb_x, rgb_y)[0] == pytest.approx(both, rel=1e-9)


def test_window_and_map_shapes():
    assert gaussian_window().sum().item() == pytest.approx(1.0)
    img = np.zeros((2, 32, 24, 3))
    assert ssim_map(img, img).shape == (2, 22, 14)
    assert ssim_map(img, img, padding="same").shape == (2, 32, 24)


def test_hand_ssim_reads_only_the_boxes():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (1, 40, 40, 3)).astype(np.float64)
    b = a.copy()
    b[:, 25:, 25:] = 255 - b[:, 25:, 25:]  # changed far (> 5 px, the window radius) from the box
    box = np.array([[[2, 2, 12, 12]]])
    assert hand_ssim(a, b, box)[0] == pytest.approx(1.0)
    assert ssim(a, b)[0] < 0.9
    changed_box = np.array([[[28, 28, 38, 38]]])
    assert hand_ssim(a, b, changed_box)[0] < 0.5
    # two boxes: the mean of the two box means
    both = hand_ssim(a, b, np.concatenate([box, changed_box], 1))[0]
    assert both == pytest.approx((1.0 + hand_ssim(a, b, changed_box)[0]) / 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        ssim(np.zeros((16, 16, 3)), np.zeros((16, 17, 3)))
    with pytest.raises(ValueError, match="window"):
        ssim(np.zeros((8, 8)), np.zeros((8, 8)))
    with pytest.raises(ValueError, match="boxes"):
        hand_ssim(np.zeros((2, 16, 16)), np.zeros((2, 16, 16)), np.zeros((3, 1, 4), dtype=int))
    with pytest.raises(ValueError, match="empty box"):
        hand_ssim(np.zeros((1, 16, 16)), np.zeros((1, 16, 16)), np.array([[[5, 5, 5, 9]]]))

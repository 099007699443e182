"""Stable Signer's loss terms on hand-made inputs (values worked out by hand)."""

from __future__ import annotations

import math

import pytest
import torch

from hf_sign.training.stable_signer_losses import (
    contrastive_linking,
    expert_nll,
    gate_entropy,
    gloss_cross_entropy,
    hand_fidelity_loss,
    mask_gloss_inputs,
    posterior_kl,
    smoothness_loss,
    velocity_loss,
)


def test_kl_is_zero_for_identical_posteriors_and_matches_hand_value():
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[1, 2, -100], [3, -100, -100]])
    assert posterior_kl(logits, logits, labels).item() == pytest.approx(0.0, abs=1e-7)
    p = torch.tensor([[[math.log(0.5), math.log(0.5)]]])
    q = torch.tensor([[[math.log(0.25), math.log(0.75)]]])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert posterior_kl(p, q, torch.tensor([[0]])).item() == pytest.approx(expected, rel=1e-6)
    # positions with label -100 do not count
    q2 = torch.cat([q, torch.zeros(1, 1, 2)], dim=1)
    p2 = torch.cat([p, torch.tensor([[[5.0, -5.0]]])], dim=1)
    assert posterior_kl(p2, q2, torch.tensor([[0, -100]])).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_ignores_padding():
    logits = torch.zeros(1, 2, 4)
    assert gloss_cross_entropy(logits, torch.tensor([[1, -100]])).item() == pytest.approx(math.log(4))


def test_mask_rate_zero_and_one():
    ids = torch.tensor([[0, 5, 6, 7], [0, 8, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    assert torch.equal(mask_gloss_inputs(ids, mask, 3, 0.0), ids)
    full = mask_gloss_inputs(ids, mask, 3, 1.0)
    # the start token and padding are never masked, every gloss token is
    assert full.tolist() == [[0, 3, 3, 3], [0, 3, 0, 0]]
    g = torch.Generator().manual_seed(0)
    half = mask_gloss_inputs(torch.zeros(1, 2001, dtype=torch.long), torch.ones(1, 2001), 3, 0.3, generator=g)
    assert 0.25 < (half[0, 1:] == 3).float().mean().item() < 0.35
    with pytest.raises(ValueError, match="mask_rate"):
        mask_gloss_inputs(ids, mask, 3, 1.5)


def test_contrastive_linking_hand_value_and_same_gloss_mask():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    g = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    tau = 0.5
    # row 0: logits [2, 2] -> -log(1/2); row 1: logits [0, 0] -> -log(1/2)
    assert contrastive_linking(x, g, tau).item() == pytest.approx(math.log(2), rel=1e-6)
    same = torch.tensor([[True, True], [True, True]])
    assert contrastive_linking(x, g, tau, same).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        contrastive_linking(x, g, 0.0)


def test_gate_terms():
    w = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.7, 0.1, 0.1, 0.1]])
    assert expert_nll(w, torch.tensor([0, 0])).item() == pytest.approx(-(math.log(0.25) + math.log(0.7)) / 2)
    uniform = gate_entropy(w[:1]).item()
    assert uniform == pytest.approx(-math.log(4), rel=1e-6)
    assert gate_entropy(w[1:]).item() > uniform  # a peaked gate is penalised more


def test_smoothness_is_zero_for_constant_velocity_and_matches_hand_value():
    t = torch.arange(6, dtype=torch.float32)
    line = torch.stack([t, 2 * t, -t], dim=-1)[None, :, None, :]  # (1, 6, 1, 3)
    assert smoothness_loss(line).item() == pytest.approx(0.0, abs=1e-10)
    assert velocity_loss(line).item() == pytest.approx(1 + 4 + 1)
    bump = torch.zeros(1, 3, 1, 3)
    bump[0, 1, 0, 0] = 1.0  # acceleration 0 - 2 + 0 = -2 -> squared 4
    assert smoothness_loss(bump).item() == pytest.approx(4.0)
    # a masked frame removes every difference it takes part in
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert smoothness_loss(bump, mask).item() == pytest.approx(0.0)
    assert velocity_loss(bump, mask).item() == pytest.approx(1.0)


def test_hand_fidelity():
    hands = torch.zeros(1, 2, 2, 3)
    target = torch.zeros(1, 2, 2, 3)
    target[0, 0, 0] = torch.tensor([3.0, 4.0, 0.0])
    # frame 0: joints 25 and 0 -> 12.5; frame 1: 0 -> mean 6.25
    assert hand_fidelity_loss(hands, target).item() == pytest.approx(6.25)
    assert hand_fidelity_loss(hands, target, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(0.0)

"""Shared embeddings: sinusoids of any shape, relative positions, FiLM."""

from __future__ import annotations

import torch
from diffusers.models.embeddings import Timesteps

from hf_sign.models.embeddings import FiLM, relative_position_embedding, sinusoidal_embedding


def test_sinusoidal_embedding_is_diffusers_timestep_embedding_for_any_shape():
    values = torch.tensor([[0.0, 1.0, 7.0], [3.0, 250.0, 999.0]])
    emb = sinusoidal_embedding(values, 8)
    assert emb.shape == (2, 3, 8)
    torch.testing.assert_close(emb.reshape(6, 8), Timesteps(8, True, 0)(values.flatten()))
    # by value: cosines first, frequencies 10000^(-k / 4)
    freqs = torch.tensor([10000 ** (-k / 4) for k in range(4)])
    t = 7.0
    expected = torch.cat([torch.cos(t * freqs), torch.sin(t * freqs)])
    torch.testing.assert_close(emb[0, 2], expected)
    # `scale` multiplies the values first
    torch.testing.assert_close(sinusoidal_embedding(values / 100.0, 8, scale=100.0), emb, atol=1e-4, rtol=0)


def test_relative_positions_run_from_zero_to_one_over_the_valid_tokens():
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    emb = relative_position_embedding(mask, 8)
    assert emb.shape == (2, 5, 8)
    ends = sinusoidal_embedding(torch.tensor([0.0, 100.0]), 8)
    for b, last in ((0, 2), (1, 4)):  # first valid token -> 0, last valid token -> 1 (x scale)
        torch.testing.assert_close(emb[b, 0], ends[0])
        torch.testing.assert_close(emb[b, last], ends[1])
    torch.testing.assert_close(emb[0, 1], emb[1, 2])  # both half way
    torch.testing.assert_close(emb[1, 1], sinusoidal_embedding(torch.tensor(25.0), 8))  # a quarter of the way
    torch.testing.assert_close(emb[0, 3:], ends[1].expand(2, 8))  # padding is clamped to the end
    single = relative_position_embedding(torch.tensor([[True, False]]), 4)  # one valid token sits at 0
    torch.testing.assert_close(single[0, 0], sinusoidal_embedding(torch.tensor(0.0), 4))


def test_film_is_the_identity_at_initialisation():
    film = FiLM(6, 4)
    h = torch.randn(2, 3, 5, 4)
    cond = torch.randn(2, 6)
    torch.testing.assert_close(film(h, cond), h, atol=0, rtol=0)


def test_film_scales_and_shifts_per_sample_broadcast_over_the_middle_axes():
    film = FiLM(2, 3)
    with torch.no_grad():
        film.proj.weight.copy_(torch.arange(12.0).reshape(6, 2) / 10)
        film.proj.bias.copy_(torch.linspace(-1, 1, 6))
    cond = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    silu = cond * torch.sigmoid(cond)
    params = silu @ film.proj.weight.T + film.proj.bias
    scale, shift = params[:, :3], params[:, 3:]
    for shape in ((2, 4, 3), (2, 4, 5, 3)):  # (B, L, D) and (B, N, J, D)
        h = torch.randn(shape)
        view = (2,) + (1,) * (len(shape) - 2) + (3,)
        expected = (1 + scale.reshape(view)) * h + shift.reshape(view)
        torch.testing.assert_close(film(h, cond), expected)

"""The length regulator (`align_frames_to_tokens`), `TokenTiming`, `DurationConditioning` and `LengthPredictor`."""

from __future__ import annotations

import math

import pytest
import torch

from hf_sign.models.embeddings import sinusoidal_embedding
from hf_sign.models.length_regulator import (
    DurationConditioning,
    LengthPredictor,
    TokenTiming,
    align_frames_to_tokens,
)


def _ones(*shape):
    return torch.ones(*shape, dtype=torch.bool)


# ------------------------------------------------------------------------------------------------ frame -> token
def test_frames_follow_durations_in_text_order():
    durations = torch.tensor([[2.0, 0.0, 4.0, 2.0]])  # token 1 is not signed
    index, phase, length = align_frames_to_tokens(durations, _ones(1, 4), _ones(1, 8))
    assert index.tolist() == [[0, 0, 2, 2, 2, 2, 3, 3]]
    torch.testing.assert_close(phase[0], torch.tensor([0.25, 0.75, 0.125, 0.375, 0.625, 0.875, 0.25, 0.75]))
    assert length.tolist() == [[2.0, 2.0, 4.0, 4.0, 4.0, 4.0, 2.0, 2.0]]


def test_segments_that_do_not_divide_the_frames():
    # 3 tokens share 4 frames: segments end at 4/3, 8/3, 4; frame centres 0.5, 1.5, 2.5, 3.5
    index, phase, length = align_frames_to_tokens(None, _ones(1, 3), _ones(1, 4))
    assert index.tolist() == [[0, 1, 1, 2]]
    third = 4.0 / 3.0
    expected = [0.5 / third, (1.5 - third) / third, (2.5 - third) / third, (3.5 - 2 * third) / third]
    torch.testing.assert_close(phase[0], torch.tensor(expected))  # 0.375, 0.125, 0.875, 0.625
    torch.testing.assert_close(length[0], torch.full((4,), third))


def test_a_centre_on_a_boundary_belongs_to_the_segment_that_starts_there():
    # segments [0, 1.5), an empty one at 1.5, [1.5, 4): the centre 1.5 is the first frame of token 2, never of the
    # empty token 1 nor the last of token 0
    durations = torch.tensor([[1.5, 0.0, 2.5]])
    index, phase, length = align_frames_to_tokens(durations, _ones(1, 3), _ones(1, 4))
    assert index.tolist() == [[0, 2, 2, 2]]
    torch.testing.assert_close(phase[0], torch.tensor([1 / 3, 0.0, 0.4, 0.8]))
    torch.testing.assert_close(length[0], torch.tensor([1.5, 2.5, 2.5, 2.5]))


def test_durations_are_rescaled_and_order_keys_reorder():
    durations = torch.tensor([[1.0, 1.0, 2.0]])  # any unit: rescaled to the 8 valid frames (2, 2, 4)
    order = torch.tensor([[0.9, 0.1, 0.5]])  # signed as token 1, token 2, token 0
    frames = torch.tensor([[1] * 8 + [0] * 2], dtype=torch.bool)
    index, phase, length = align_frames_to_tokens(durations, _ones(1, 3), frames, order)
    assert index.tolist() == [[1, 1, 2, 2, 2, 2, 0, 0, 0, 0]]  # padded frames repeat the last valid frame
    expected = [0.25, 0.75, 0.125, 0.375, 0.625, 0.875, 0.25, 0.75, 0.75, 0.75]
    torch.testing.assert_close(phase[0], torch.tensor(expected))
    assert length.tolist() == [[2.0, 2.0, 4.0, 4.0, 4.0, 4.0, 2.0, 2.0, 2.0, 2.0]]


def test_no_durations_masked_tokens_and_null_samples_share_evenly():
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    durations = torch.tensor([[0.0, 0.0, 5.0, 5.0], [3.0, 1.0, 0.0, 0.0]])  # row 0: only masked tokens have time
    index, _, _ = align_frames_to_tokens(durations, mask, _ones(2, 4))
    assert index.tolist() == [[0, 0, 1, 1], [0, 0, 0, 1]]
    index, _, _ = align_frames_to_tokens(None, mask, _ones(2, 4))
    assert index.tolist() == [[0, 0, 1, 1], [0, 1, 2, 3]]
    with pytest.raises(ValueError, match="token_order"):
        align_frames_to_tokens(durations, mask, _ones(2, 4), torch.zeros(2, 3))


# ------------------------------------------------------------------------------------------------ TokenTiming
def test_token_timing_empty_and_cat():
    timing = TokenTiming(torch.tensor([[2.0, 3.0]]), torch.tensor([[0.7, 0.1]]))
    empty = timing.empty_like()
    assert empty.durations.tolist() == [[0.0, 0.0]] and empty.order.tolist() == [[0.0, 0.0]]
    both = TokenTiming.cat([empty, timing])  # the [unconditional; conditional] batch of guidance
    assert both.durations.tolist() == [[0.0, 0.0], [2.0, 3.0]]
    torch.testing.assert_close(both.order, torch.tensor([[0.0, 0.0], [0.7, 0.1]]))
    with pytest.raises(ValueError, match="`TokenTiming.durations` and `TokenTiming.order`"):
        TokenTiming(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="`TokenTiming.durations` and `TokenTiming.order`"):
        TokenTiming(torch.ones(3), torch.ones(3))


# ------------------------------------------------------------------------------------------------ DurationConditioning
def test_duration_conditioning_embeds_the_token_state_phase_and_length_of_each_frame():
    torch.manual_seed(0)
    cond = DurationConditioning(text_dim=5, hidden_dim=4, predictor_hidden=8, num_groups=1)
    text = torch.randn(1, 3, 4)
    timing = TokenTiming(torch.tensor([[2.0, 0.0, 6.0]]), torch.tensor([[0.0, 0.0, 0.0]]))
    frames = torch.tensor([[1] * 8 + [0] * 2], dtype=torch.bool)
    with torch.no_grad():
        cond.proj.weight.zero_()
        cond.proj.bias.zero_()
        cond.proj.weight[:, :4] = torch.eye(4)  # output = the state of the frame's token
        picked = cond(text, _ones(1, 3), frames, timing)
    assert picked.shape == (1, 10, 1, 4)
    torch.testing.assert_close(picked[0, :, 0], text[0, [0, 0, 2, 2, 2, 2, 2, 2, 2, 2]])
    with torch.no_grad():  # the phase embedding and the log length, by value
        full = cond.proj
        full.weight.zero_()
        full.weight[:, 4:8] = torch.eye(4)
        phase_part = cond(text, _ones(1, 3), frames, timing)[0, :8, 0]
        full.weight.zero_()
        full.weight[0, 8] = 1.0
        length_part = cond(text, _ones(1, 3), frames, timing)[0, :8, 0, 0]
    phases = torch.tensor([0.25, 0.75] + [(k + 0.5) / 6 for k in range(6)])
    torch.testing.assert_close(phase_part, sinusoidal_embedding(phases, 4, scale=100.0))
    torch.testing.assert_close(length_part, torch.tensor([math.log(2.0)] * 2 + [math.log(6.0)] * 6))


def test_duration_conditioning_without_timing_is_the_empty_timing_and_groups_per_joint():
    torch.manual_seed(0)
    cond = DurationConditioning(text_dim=5, hidden_dim=4, predictor_hidden=8, num_groups=3)
    text, mask = torch.randn(2, 3, 4), torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    timing = TokenTiming(torch.rand(2, 3) * 5, torch.rand(2, 3))
    with torch.no_grad():
        none = cond(text, mask, _ones(2, 6), None)
        empty = cond(text, mask, _ones(2, 6), timing.empty_like())
        timed = cond(text, mask, _ones(2, 6), timing)
    assert none.shape == (2, 6, 3, 4)
    torch.testing.assert_close(none, empty, atol=0, rtol=0)
    assert not torch.allclose(none, timed)
    with pytest.raises(ValueError, match="`token_timing` must have shape"):
        cond(text, mask, _ones(2, 6), TokenTiming(torch.ones(2, 2), torch.ones(2, 2)))


def test_duration_conditioning_predicts_whole_frames_on_valid_tokens():
    torch.manual_seed(0)
    cond = DurationConditioning(text_dim=5, hidden_dim=4, predictor_hidden=8)
    states = torch.randn(2, 4, 5)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        last = cond.predictor.net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([math.log(1.0 + 6.0), 0.3]))  # 6 frames per token, order key 0.3
        timing = cond.predict(states, mask)
        torch.testing.assert_close(timing.durations, torch.tensor([[6.0, 6.0, 6.0, 0.0], [6.0] * 4]))
        torch.testing.assert_close(timing.order, torch.full((2, 4), 0.3))
        last.bias[0] = math.log(1.0 + 0.6)  # under one frame: the word is not signed
        assert (cond.predict(states, mask).durations == 0).all()


# ------------------------------------------------------------------------------------------------ LengthPredictor
def test_length_predictor_reads_the_masked_mean_and_the_token_count():
    torch.manual_seed(0)
    predictor = LengthPredictor(text_dim=4, hidden=8, init_frames=30.0)
    text = torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    features = torch.stack([
        torch.cat([text[0, :2].mean(0), torch.tensor([math.log(2.0)])]),
        torch.cat([text[1].mean(0), torch.tensor([math.log(5.0)])]),
    ])
    with torch.no_grad():
        torch.testing.assert_close(predictor(text, mask), predictor.net(features)[:, 0])
        predictor.net[-1].weight.zero_()  # the output bias starts at log(init_frames)
        torch.testing.assert_close(predictor(text, mask), torch.full((2,), math.log(30.0)))

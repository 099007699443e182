"""Duration conditioning of Sign-SALD's denoiser: the per-token timing targets from `gloss_spans`
(`gloss_token_timing`), the duration predictor, and the denoiser's use of a `TokenTiming`. The length regulator
itself is tested in `test_length_regulator.py`."""

from __future__ import annotations

import pytest
import torch

from hf_sign.models.length_regulator import TokenTiming, align_frames_to_tokens
from hf_sign.models.sign_sald import SkeletonLatentDenoiser
from hf_sign.models.text_encoders import build_word_tokenizer
from hf_sign.training.gloss_alignment import gloss_token_timing
from hf_sign.training.sign_sald_losses import duration_loss

DEN = dict(num_joints=3, latent_channels=4, hidden_dim=32, num_layers=2, num_heads=2, ff_mult=2, text_dim=8,
           relative_positions=True, length_predictor_hidden=32, duration_conditioning=True)
TEXT = "i went to the store yesterday"  # YESTERDAY ME STORE GO


def _ones(*shape):
    return torch.ones(*shape, dtype=torch.bool)


# ------------------------------------------------------------------------------------------------ timing targets
@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer([TEXT])


def test_timing_targets_partition_the_frames_in_signing_order(tokenizer):
    row = {"id": "s0", "text": TEXT, "num_frames": 52, "gloss_spans": [[4, 12], [16, 24], [28, 36], [40, 48]]}
    durations, order = gloss_token_timing(row, tokenizer)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(TEXT)["input_ids"])
    got = dict(zip(tokens, durations.tolist()))
    # cuts at the transition midpoints 14, 26, 38; rest before the first / after the last gloss to the special tokens
    assert got == {tokens[0]: 4.0, "i": 12.0, "went": 10.0, "to": 0.0, "the": 0.0, "store": 12.0, "yesterday": 10.0,
                   tokens[-1]: 4.0}
    assert float(durations.sum()) == 52.0
    keys = dict(zip(tokens, order.tolist()))
    assert keys[tokens[0]] == 0.0 and keys[tokens[-1]] == 1.0
    assert keys["yesterday"] < keys["i"] < keys["store"] < keys["went"]  # YESTERDAY ME STORE GO
    # laid out by the keys, the frames come back in signing order
    index, _, _ = align_frames_to_tokens(durations[None], _ones(1, len(tokens)), _ones(1, 13), order[None])
    signed = [tokens[k] for k in index[0].tolist()]
    assert [w for k, w in enumerate(signed) if k == 0 or w != signed[k - 1]] == [
        tokens[0], "yesterday", "i", "store", "went", tokens[-1]]


def test_timing_targets_need_gloss_spans(tokenizer):
    with pytest.raises(ValueError, match="Duration conditioning needs `gloss_spans`"):
        gloss_token_timing({"id": "a", "text": TEXT, "num_frames": 10}, tokenizer)


# ------------------------------------------------------------------------------------------------ the denoiser
def _inputs(seed=0, batch=2, frames=6, text_len=5):
    g = torch.Generator().manual_seed(seed)
    return dict(sample=torch.randn(batch, frames, 3, 4, generator=g), timestep=torch.tensor([10, 500][:batch]),
                encoder_hidden_states=torch.randn(batch, text_len, 8, generator=g))


@pytest.mark.parametrize("per_joint", [False, True])
def test_denoiser_reads_the_timing(per_joint):
    torch.manual_seed(0)
    model = SkeletonLatentDenoiser(**DEN, duration_per_joint=per_joint).eval()
    assert model.duration_conditioner.proj.out_features == 32 * (3 if per_joint else 1)
    inputs = _inputs()
    text_order = torch.zeros(2, 5)
    with torch.no_grad():
        even = model(**inputs).sample
        same = model(**inputs, token_timing=TokenTiming(torch.ones(2, 5), text_order)).sample
        empty = model(**inputs, token_timing=TokenTiming(torch.ones(2, 5), text_order).empty_like()).sample
        skewed = model(**inputs, token_timing=TokenTiming(torch.tensor([[5.0, 1, 1, 1, 1]] * 2), text_order)).sample
        backwards = TokenTiming(torch.ones(2, 5), torch.tensor([[4.0, 3, 2, 1, 0]] * 2))
        reordered = model(**inputs, token_timing=backwards).sample
    torch.testing.assert_close(even, same)  # None = an equal share per token, in text order
    torch.testing.assert_close(even, empty)
    assert not torch.allclose(even, skewed) and not torch.allclose(even, reordered)
    with pytest.raises(ValueError, match="`token_timing` must have shape"):
        model(**inputs, token_timing=TokenTiming(torch.ones(2, 4), torch.zeros(2, 4)))
    plain = SkeletonLatentDenoiser(**{**DEN, "duration_conditioning": False})
    assert plain.duration_conditioner is None
    with pytest.raises(ValueError, match="duration_conditioning=True"):
        plain(**inputs, token_timing=TokenTiming(torch.ones(2, 5), text_order))
    with pytest.raises(ValueError, match="no duration predictor"):
        plain.predict_token_timing(inputs["encoder_hidden_states"])


def test_duration_predictor_learns_durations_and_order():
    torch.manual_seed(0)
    model = SkeletonLatentDenoiser(**DEN)
    g = torch.Generator().manual_seed(1)
    text = torch.randn(32, 6, 8, generator=g)
    mask = torch.ones(32, 6, dtype=torch.bool)
    mask[::2, 5:] = False
    durations = torch.where(text[..., 0] > 0, 4.0 + 8.0 * torch.sigmoid(text[..., 1]), torch.zeros(32, 6)) * mask
    order = torch.sigmoid(2 * text[..., 2])
    opt = torch.optim.Adam(model.duration_conditioner.predictor.parameters(), lr=1e-2)
    predictor = model.duration_conditioner.predictor
    first = duration_loss(*predictor(text), mask, durations, order).item()
    for _ in range(400):
        loss = duration_loss(*predictor(text), mask, durations, order)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first
    timing = model.predict_token_timing(text, mask)
    assert isinstance(timing, TokenTiming)
    pred, keys = timing.durations, timing.order
    assert pred.shape == keys.shape == (32, 6) and (pred[~mask] == 0).all()
    assert ((pred > 0) == (durations > 0))[mask].float().mean() > 0.95  # unsigned words get no frames
    signed = durations > 0
    baseline = (durations[signed] - durations[signed].mean()).abs().mean()  # one duration for every signed word
    assert (pred - durations)[signed].abs().mean() < 0.5 * baseline
    assert (keys - order)[signed].abs().mean() < 0.5 * (order[signed] - order[signed].mean()).abs().mean()
    with pytest.raises(ValueError, match="token_order"):
        duration_loss(*predictor(text), mask, durations, order[:, :3])

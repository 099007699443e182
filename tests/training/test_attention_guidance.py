"""Guided cross-attention: the denoiser's attention probabilities, the frame -> token targets, the loss, and that the
loss teaches a denoiser to attend to the words being signed."""

from __future__ import annotations

import math

import pytest
import torch

from hf_sign.models.sign_sald import SkeletonLatentDenoiser
from hf_sign.models.text_encoders import build_word_tokenizer
from hf_sign.training.attention_guidance import attention_guidance_loss, gloss_token_targets

DEN = dict(num_joints=3, latent_channels=4, hidden_dim=32, num_layers=2, num_heads=2, ff_mult=2, text_dim=8,
           relative_positions=True)
TEXT = "i went to the store yesterday"  # YESTERDAY ME STORE GO


@pytest.fixture(scope="module")
def tokenizer():
    return build_word_tokenizer([TEXT, "the weather tomorrow will be rainy"])


def _tokens(tokenizer, text):
    return tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])


def test_targets_follow_gloss_spans_and_words(tokenizer):
    row = {"id": "s0", "text": TEXT, "gloss_spans": [[4, 12], [16, 24], [28, 36], [40, 48]]}
    target = gloss_token_targets(row, tokenizer, num_latent_frames=13, downsample=4)
    tokens = _tokens(tokenizer, TEXT)
    assert target.shape == (13, len(tokens))
    picked = [[tokens[k] for k in torch.nonzero(target[n]).flatten().tolist()] for n in range(13)]
    # latent frame n covers frames [4n, 4n + 4), centre 4n + 2: inside a span or in a transition
    assert picked == [[], ["yesterday"], ["yesterday"], [], ["i"], ["i"], [], ["store"], ["store"], [],
                      ["went"], ["went"], []]


def test_explicit_text_spans_override_the_grammar(tokenizer):
    row = {"id": "s1", "text": TEXT, "gloss_spans": [[0, 8]], "gloss_text_spans": [[2, 6]]}  # "went"
    target = gloss_token_targets(row, tokenizer, num_latent_frames=3, downsample=4)
    tokens = _tokens(tokenizer, TEXT)
    assert [tokens[k] for k in torch.nonzero(target[0]).flatten().tolist()] == ["went"] and not target[2].any()


@pytest.mark.parametrize(
    "row, match",
    [
        ({"id": "a", "text": TEXT}, "gloss_spans"),
        ({"id": "b", "text": TEXT, "gloss_spans": [[0, 4]]}, "1 `gloss_spans` but 4 glosses"),
        ({"id": "c", "text": "bonjour tout le monde", "gloss_spans": [[0, 4]]}, "not SynthSign grammar"),
    ],
)
def test_targets_reject_rows_without_an_alignment(tokenizer, row, match):
    with pytest.raises(ValueError, match=match):
        gloss_token_targets(row, tokenizer, num_latent_frames=4, downsample=4)


def test_denoiser_returns_cross_attention_probabilities():
    torch.manual_seed(0)
    model = SkeletonLatentDenoiser(**DEN).eval()
    g = torch.Generator().manual_seed(0)
    sample, states = torch.randn(2, 5, 3, 4, generator=g), torch.randn(2, 6, 8, generator=g)
    text_mask = torch.tensor([[1] * 6, [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    frames = torch.ones(2, 5, dtype=torch.bool)
    kwargs = dict(encoder_hidden_states=states, encoder_attention_mask=text_mask, attention_mask=frames)
    with torch.no_grad():
        plain = model(sample, torch.tensor([10, 900]), **kwargs)
        out = model(sample, torch.tensor([10, 900]), output_cross_attentions=True, **kwargs)
    assert plain.cross_attentions is None
    torch.testing.assert_close(out.sample, plain.sample, atol=1e-5, rtol=1e-5)  # same maths as the fused kernel
    assert len(out.cross_attentions) == 2
    for probs in out.cross_attentions:
        assert probs.shape == (2, 2, 5, 3, 6)
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, 2, 5, 3))
        assert probs[1, ..., 3:].abs().max() == 0  # padded text tokens get no attention
    with pytest.raises(ValueError, match="use_cross_attention"):
        without = SkeletonLatentDenoiser(**{**DEN, "use_cross_attention": False})
        without(sample, 5, output_cross_attentions=True, **kwargs)


def test_loss_values_heads_and_kept_samples():
    targets = torch.zeros(2, 3, 4, dtype=torch.bool)
    targets[:, 0, 1] = True  # frame 0 signs token 1; frames 1-2 are transitions
    targets[:, 1, 2:] = True  # frame 1 signs tokens 2 and 3
    uniform = torch.full((2, 2, 3, 5, 4), 0.25)
    # uniform attention: -log(1/4) on frame 0, -log(2/4) on frame 1
    expected = (math.log(4) + math.log(2)) / 2
    assert attention_guidance_loss([uniform], targets, None, 0).item() == pytest.approx(expected, rel=1e-5)
    perfect = torch.zeros(2, 2, 3, 5, 4)
    perfect[:, :, 0, :, 1] = 1.0
    perfect[:, :, 1, :, 2] = 1.0
    perfect[:, 1] = 0.25  # the second head is free when only one head is guided
    assert attention_guidance_loss([perfect], targets, None, 1).item() == pytest.approx(0.0, abs=1e-6)
    assert attention_guidance_loss([perfect], targets, None, 0).item() > 0.4
    # samples whose text was dropped are left out; none kept gives a zero loss with a gradient path
    mixed = torch.stack([perfect[0], uniform[0]]).requires_grad_()
    loss = attention_guidance_loss([mixed], targets, torch.tensor([True, False]), 1)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    none = attention_guidance_loss([mixed], targets, torch.tensor([False, False]), 1)
    assert none.item() == 0.0 and none.requires_grad
    with pytest.raises(ValueError, match="use_cross_attention"):
        attention_guidance_loss([], targets, None, 0)
    with pytest.raises(ValueError, match="targets"):
        attention_guidance_loss([uniform], targets[:, :2], None, 0)


def test_guidance_loss_teaches_the_alignment():
    """On random noisy latents, 60 steps of the loss alone move the guided head's attention onto the targets."""
    torch.manual_seed(0)
    model = SkeletonLatentDenoiser(**DEN)
    g = torch.Generator().manual_seed(1)
    states = torch.randn(4, 6, 8, generator=g)
    targets = torch.zeros(4, 8, 6, dtype=torch.bool)
    for b in range(4):  # a different, non-monotonic word order per sample: 2 frames per word
        for k, tok in enumerate(torch.randperm(6, generator=g)[:4].tolist()):
            targets[b, 2 * k : 2 * k + 2, tok] = True

    def mass():
        with torch.no_grad():
            out = model(torch.randn(4, 8, 3, 4, generator=torch.Generator().manual_seed(2)), torch.full((4,), 500),
                        encoder_hidden_states=states, output_cross_attentions=True)
        return float((out.cross_attentions[-1][:, :1] * targets[:, None, :, None, :]).sum(-1).mean())

    before = mass()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(60):
        z = torch.randn(4, 8, 3, 4, generator=torch.Generator().manual_seed(100 + step))
        out = model(z, torch.randint(0, 1000, (4,)), encoder_hidden_states=states, output_cross_attentions=True)
        loss = attention_guidance_loss(out.cross_attentions, targets, None, 1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert before < 0.25 and mass() > 0.6, (before, mass())

"""`MaskedAttention`: values against a hand-written reference, returned probabilities, masks and padding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hf_sign.models.attention import MaskedAttention


def reference_attention(attn: MaskedAttention, x, context=None, key_mask=None):
    """softmax(Q K^T / sqrt(d_head)) V, one sample and one head at a time, masked keys dropped before the softmax."""
    context = x if context is None else context
    q, k, v = attn.to_q(x), attn.to_k(context), attn.to_v(context)
    heads = attn.heads
    d_head = q.shape[-1] // heads
    outs, all_probs = [], []
    for b in range(x.shape[0]):
        head_outs, head_probs = [], []
        for h in range(heads):
            sl = slice(h * d_head, (h + 1) * d_head)
            scores = q[b, :, sl] @ k[b, :, sl].T / math.sqrt(d_head)  # (Lq, Lk)
            if key_mask is not None:
                keep = key_mask[b] if key_mask.ndim == 2 else None
                full = keep[None, :].expand_as(scores) if keep is not None else key_mask[b]
                scores = torch.where(full, scores, torch.tensor(float("-inf")))
            probs = torch.exp(scores - scores.max(-1, keepdim=True).values)
            probs = probs / probs.sum(-1, keepdim=True)
            head_outs.append(probs @ v[b, :, sl])
            head_probs.append(probs)
        outs.append(torch.cat(head_outs, -1))
        all_probs.append(torch.stack(head_probs))
    return attn.to_out(torch.stack(outs)), torch.stack(all_probs)


def make(query_dim=8, heads=2, cross_dim=None, seed=0):
    torch.manual_seed(seed)
    return MaskedAttention(query_dim, heads, cross_attention_dim=cross_dim).eval()


def test_self_attention_matches_the_reference_with_a_key_padding_mask():
    attn = make()
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        out, probs = attn(x, attention_mask=mask, output_attentions=True)
        ref_out, ref_probs = reference_attention(attn, x, key_mask=mask)
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(probs, ref_probs, atol=1e-6, rtol=1e-5)


def test_cross_attention_matches_the_reference_and_a_full_mask():
    attn = make(query_dim=8, heads=4, cross_dim=6)
    g = torch.Generator().manual_seed(2)
    x, context = torch.randn(2, 3, 8, generator=g), torch.randn(2, 4, 6, generator=g)
    key_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    full = torch.rand(2, 3, 4, generator=g) > 0.4
    full[..., 0] = True  # every query keeps a key
    with torch.no_grad():
        for mask in (key_mask, full, None):
            out, probs = attn(x, context, attention_mask=mask, output_attentions=True)
            ref_out, ref_probs = reference_attention(attn, x, context, key_mask=mask)
            torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(probs, ref_probs, atol=1e-6, rtol=1e-5)
        # integer 0/1 masks mean the same as boolean ones
        torch.testing.assert_close(attn(x, context, attention_mask=key_mask.long())[0], attn(x, context, key_mask)[0])


def test_returned_probabilities_sum_to_one_over_valid_keys_and_are_zero_on_masked_keys():
    attn = make()
    x = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(3))
    mask = torch.tensor([[1, 0, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    with torch.no_grad():
        _, probs = attn(x, attention_mask=mask, output_attentions=True)
        _, none = attn(x, attention_mask=mask)
    assert none is None
    assert probs.shape == (2, 2, 6, 6)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 2, 6))
    masked = (~mask)[:, None, None, :].expand_as(probs)
    assert (probs[masked] == 0).all()
    assert (probs[~masked] > 0).all()


def test_padded_queries_and_keys_do_not_affect_valid_ones():
    attn = make()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 6, 8, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    changed = x.clone()
    changed[:, 4:] = 100.0 * torch.randn(1, 2, 8, generator=g)  # new content in the padding only
    with torch.no_grad():
        out = attn(x, attention_mask=mask)[0]
        out_changed = attn(changed, attention_mask=mask)[0]
        alone = attn(x[:, :4])[0]  # the valid tokens without any padding
    torch.testing.assert_close(out[:, :4], out_changed[:, :4], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[:, :4], alone, atol=1e-6, rtol=1e-5)


def test_matches_torch_scaled_dot_product_attention():
    # the kernel the Sign-SALD checkpoints were trained with: the same numbers, up to rounding
    attn = make(query_dim=16, heads=4)
    x = torch.randn(3, 7, 16, generator=torch.Generator().manual_seed(5))
    mask = torch.arange(7)[None] < torch.tensor([[7], [3], [1]])
    with torch.no_grad():
        q, k, v = (t.unflatten(-1, (4, -1)).transpose(1, 2) for t in (attn.to_q(x), attn.to_k(x), attn.to_v(x)))
        sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        expected = attn.to_out(sdpa.transpose(1, 2).flatten(2))
        torch.testing.assert_close(attn(x, attention_mask=mask)[0], expected, atol=1e-6, rtol=1e-5)


def test_dropout_acts_on_the_probabilities_in_training_only():
    torch.manual_seed(0)
    attn = MaskedAttention(8, 2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    attn.eval()
    with torch.no_grad():
        a, b = attn(x)[0], attn(x)[0]
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    attn.train()
    with torch.no_grad():
        out, probs = attn(x, output_attentions=True)
    assert not torch.allclose(out, a)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 2, 5))  # returned before the dropout


def test_bfloat16():
    attn = make().to(torch.bfloat16)
    x = torch.randn(2, 5, 8).to(torch.bfloat16)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out, probs = attn(x, attention_mask=mask, output_attentions=True)
    assert out.dtype == probs.dtype == torch.bfloat16 and torch.isfinite(out).all()
    assert (probs[0, :, :, 3:] == 0).all()


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="`query_dim` \\(10\\) must be divisible by `heads` \\(4\\)"):
        MaskedAttention(10, 4)
    attn = make()
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match="`attention_mask` must be boolean"):
        attn(x, attention_mask=torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"`attention_mask` must have shape \(2, 5\)"):
        attn(x, attention_mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="`encoder_hidden_states` has batch size 3"):
        attn(x, torch.randn(3, 4, 8))

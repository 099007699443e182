"""`MoEFeedForward`: expert-choice (Sign-MExD eqs. 5-8) and token-choice routing against naive references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hf_sign.models.moe import MoEFeedForward, expert_capacity

DIM, FFN = 8, 16


def tokens(batch: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, seq_len, DIM, generator=torch.Generator().manual_seed(seed))


def padding_mask(lengths, seq_len: int) -> torch.Tensor:
    return torch.arange(seq_len)[None, :] < torch.tensor(lengths)[:, None]


def make_moe(num_experts=4, seed=0, **kwargs) -> MoEFeedForward:
    torch.manual_seed(seed)
    return MoEFeedForward(DIM, FFN, num_experts, **kwargs).eval()


def naive_expert(moe: MoEFeedForward, e: int, x: torch.Tensor) -> torch.Tensor:
    """Expert `e` on one token `(DIM,)`, written out: GeLU(x W1 + b1) W2 + b2."""
    return F.gelu(x @ moe.w1[e] + moe.b1[e]) @ moe.w2[e] + moe.b2[e]


def naive_expert_choice(moe: MoEFeedForward, x: torch.Tensor, mask: torch.Tensor):
    """Eqs. 5-8 with loops over batch items, experts and tokens: `(out, dispatch (B, S, E))`."""
    batch, seq_len, _ = x.shape
    num_experts = moe.num_experts
    out = torch.zeros_like(x)
    dispatch = torch.zeros(batch, seq_len, num_experts, dtype=torch.bool)
    for b in range(batch):
        real = [s for s in range(seq_len) if mask[b, s]]
        capacity = min(math.floor(len(real) * moe.capacity_factor / num_experts), len(real))
        affinity = [torch.softmax(x[b, s] @ moe.router.weight.T, dim=0) for s in range(seq_len)]  # eq. 5
        for e in range(num_experts):
            chosen = sorted(real, key=lambda s: -float(affinity[s][e]))[:capacity]  # eq. 6: top-C over the sequence
            for s in chosen:  # eqs. 7-8
                out[b, s] += affinity[s][e] * naive_expert(moe, e, x[b, s])
                dispatch[b, s, e] = True
    return out, dispatch


def naive_token_choice(moe: MoEFeedForward, x: torch.Tensor, mask: torch.Tensor):
    batch, seq_len, _ = x.shape
    out = torch.zeros_like(x)
    dispatch = torch.zeros(batch, seq_len, moe.num_experts, dtype=torch.bool)
    for b in range(batch):
        for s in range(seq_len):
            if not mask[b, s]:
                continue
            affinity = torch.softmax(x[b, s] @ moe.router.weight.T, dim=0)
            top = sorted(range(moe.num_experts), key=lambda e: -float(affinity[e]))[: moe.top_k]
            norm = sum(affinity[e] for e in top) if moe.top_k > 1 else 1.0
            for e in top:
                out[b, s] += affinity[e] / norm * naive_expert(moe, e, x[b, s])
                dispatch[b, s, e] = True
    return out, dispatch


# ------------------------------------------------------------------------------------------------ expert choice
@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("num_experts, capacity_factor", [(4, 2.0), (3, 2.0), (8, 1.5), (2, 0.5)])
def test_expert_choice_equals_naive_reference(num_experts, capacity_factor, padded):
    moe = make_moe(num_experts, capacity_factor=capacity_factor)
    x, mask = tokens(3, 11, seed=1), padding_mask([11, 7, 9] if padded else [11] * 3, 11)
    with torch.no_grad():
        out, info = moe(x, mask if padded else None)
        expected, dispatch = naive_expert_choice(moe, x, mask)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(info.dispatch, dispatch)
    torch.testing.assert_close(info.combine_weights, info.router_probs * dispatch)


def test_every_expert_takes_exactly_capacity_tokens():
    moe = make_moe(4, capacity_factor=2.0)
    mask = padding_mask([10, 6, 3], 10)
    _, info = moe(tokens(3, 10), mask)
    # C = floor(S_real * 2 / 4): 5, 3 and 1 tokens per expert
    assert info.capacity_per_sample.tolist() == [5, 3, 1] and info.capacity == 5
    assert info.tokens_per_expert.tolist() == [[5] * 4, [3] * 4, [1] * 4]
    assert torch.equal(info.dispatch.sum(1), info.tokens_per_expert)
    assert info.routing == "expert_choice" and info.top_k is None
    _, unpadded = moe(tokens(3, 10))
    assert unpadded.capacity == 5 and unpadded.tokens_per_expert.tolist() == [[5] * 4] * 3
    assert torch.equal(unpadded.dispatch.sum(1), unpadded.tokens_per_expert)


def test_routing_statistics_can_be_skipped():
    for moe in (make_moe(4), make_moe(4, routing="token_choice")):
        x, mask = tokens(2, 8), padding_mask([8, 5], 8)
        out, info = moe(x, mask, return_routing=False)
        assert info is None
        torch.testing.assert_close(out, moe(x, mask)[0], atol=0, rtol=0)


def test_capacity_rounding_and_cap():
    assert expert_capacity(torch.tensor([10, 11, 6]), 3, 2.0).tolist() == [6, 7, 4]  # floor(20/3), floor(22/3)
    assert expert_capacity(torch.tensor([6]), 3, 0.5).tolist() == [1]  # exactly 1, not 0.999...
    assert expert_capacity(torch.tensor([5]), 1, 2.0).tolist() == [5]  # f_c > E: every real token, no more


def test_padding_is_never_routed_and_does_not_leak():
    moe = make_moe(4)
    x, mask = tokens(2, 9, seed=2), padding_mask([9, 5], 9)
    out, info = moe(x, mask)
    assert not info.dispatch[~mask].any()
    assert torch.equal(out[~mask], torch.zeros_like(out[~mask]))
    # large padded values would win every top-C if they were scored: the real tokens' outputs stay the same
    x2 = x.clone()
    x2[1, 5:] = 100.0
    out2, info2 = moe(x2, mask)
    torch.testing.assert_close(out2[mask], out[mask], atol=0, rtol=0)
    assert torch.equal(info2.dispatch, info.dispatch)
    # and a padded sequence is routed exactly as it is alone
    alone, _ = moe(x[1:, :5])
    torch.testing.assert_close(out[1, :5], alone[0], atol=1e-6, rtol=1e-5)


def test_one_expert_with_spare_capacity_is_the_dense_ffn():
    moe = make_moe(1, capacity_factor=2.0)  # C = min(2 S, S) = S, gate softmax over one expert = 1
    x = tokens(2, 5)
    out, _ = moe(x)
    dense = F.gelu(x @ moe.w1[0] + moe.b1[0]) @ moe.w2[0] + moe.b2[0]
    torch.testing.assert_close(out, dense, atol=1e-6, rtol=1e-5)


def test_gradients_reach_the_router_and_every_expert():
    moe = make_moe(4).train()
    out, _ = moe(tokens(2, 8), padding_mask([8, 6], 8))
    out.pow(2).sum().backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
    for name in ("w1", "b1", "w2", "b2"):
        grad = getattr(moe, name).grad
        assert (grad.flatten(1).abs().sum(1) > 0).all(), f"an expert's {name} got no gradient"


# ------------------------------------------------------------------------------------------------ token choice
@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_token_choice_equals_naive_reference(top_k):
    moe = make_moe(4, routing="token_choice", top_k=top_k)
    x, mask = tokens(2, 7, seed=3), padding_mask([7, 4], 7)
    with torch.no_grad():
        out, info = moe(x, mask)
        expected, dispatch = naive_token_choice(moe, x, mask)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(info.dispatch, dispatch)
    assert (info.dispatch.sum(-1)[mask] == top_k).all() and not info.dispatch[~mask].any()
    assert torch.equal(info.tokens_per_expert, dispatch.sum(1))
    assert info.routing == "token_choice" and info.top_k == top_k and info.capacity is None


def test_token_choice_router_gets_gradients():
    moe = make_moe(4, routing="token_choice", top_k=1).train()
    out, _ = moe(tokens(1, 6))
    out.sum().backward()
    assert moe.router.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(num_experts=4, capacity_factor=0.0), "capacity_factor"),
        (dict(num_experts=4, capacity_factor=-1.0), "capacity_factor"),
        (dict(num_experts=0), "num_experts"),
        (dict(num_experts=4, routing="token_choice", top_k=5), "top_k"),
        (dict(num_experts=4, routing="token_choice", top_k=0), "top_k"),
        (dict(num_experts=4, routing="switch"), "routing"),
        (dict(num_experts=4, activation="tanh"), "activation"),
    ],
)
def test_bad_config_is_refused(kwargs, field):
    with pytest.raises(ValueError, match=field):
        MoEFeedForward(DIM, FFN, **kwargs)


def test_more_experts_than_tokens_is_refused():
    moe = make_moe(8, capacity_factor=2.0)
    moe(tokens(1, 4))  # C = floor(4 * 2 / 8) = 1: fine
    with pytest.raises(ValueError, match=r"num_experts`=8.*capacity_factor`=2.0"):
        moe(tokens(1, 3))  # C = floor(6 / 8) = 0
    with pytest.raises(ValueError, match="3 real token"):
        moe(tokens(2, 6), padding_mask([6, 3], 6))  # only the padded sequence is too short


def test_bad_token_mask_shape_is_refused():
    with pytest.raises(ValueError, match="token_mask"):
        make_moe(2)(tokens(2, 5), torch.ones(2, 4, dtype=torch.bool))

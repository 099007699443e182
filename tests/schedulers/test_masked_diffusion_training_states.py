"""`MaskedDiffusionScheduler.add_noise_with_checkpoints`: the training states of UTC fine-tuning are states the
checkpoint sampler reaches, with a masked fraction of about `t`, deterministic under a generator."""

import pytest
import torch

from hf_sign.schedulers import MaskedDiffusionScheduler

MASK, M = 0, 32
CLEAN = torch.arange(1, M + 1).expand(4000, M)  # no position holds the mask id


def kept_sets(scheduler, t, length=M, rows=4000, seed=0):
    """Unmasked positions of each row at noise level `t` (as a bool tensor) from one seeded draw."""
    g = torch.Generator().manual_seed(seed)
    noisy = scheduler.add_noise_with_checkpoints(CLEAN[:rows, :length], t, generator=g)
    return noisy != MASK


@pytest.mark.parametrize("t, before, entering", [(0.9, [], 0), (0.6, [0], 1), (0.3, [0, 1], 2)])
def test_uniform_states_hold_the_checkpoint_sets(t, before, entering):
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK)
    quarter, half = scheduler.pivot_positions(M)
    assert quarter.tolist() == list(range(0, M, 4)) and half.tolist() == list(range(0, M, 2))
    kept = kept_sets(scheduler, t)
    sets = [set(quarter.tolist()), set(half.tolist()) - set(quarter.tolist()), set(range(M)) - set(half.tolist())]
    for k in before:  # the previous checkpoint's positions are always unmasked
        assert bool(kept[:, sorted(sets[k])].all())
    for k in range(entering + 1, 3):  # positions of later stages are always masked
        assert not bool(kept[:, sorted(sets[k])].any())
    # this stage's positions are unmasked with probability (hi - t) / (hi - lo)
    hi, lo = [(1.0, 0.75), (0.75, 0.5), (0.5, 0.0)][entering]
    rate = kept[:, sorted(sets[entering])].float().mean()
    assert abs(float(rate) - (hi - t) / (hi - lo)) < 0.02


def test_the_checkpoint_states_themselves():
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK)
    quarter, half = scheduler.pivot_positions(M)
    for t, pivots in ((0.75, quarter), (0.5, half)):
        kept = kept_sets(scheduler, t, rows=10)
        assert all(row.nonzero().flatten().tolist() == pivots.tolist() for row in kept)
    assert not bool(kept_sets(scheduler, 1.0, rows=10).any()) and bool(kept_sets(scheduler, 0.0, rows=10).all())


@pytest.mark.parametrize("mode", ["uniform", "contiguous", "none"])
@pytest.mark.parametrize("t", [0.1, 0.45, 0.7, 0.8, 0.95])
def test_expected_masked_fraction_is_t(mode, t):
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK, pivot_mode=mode)
    assert abs(float((~kept_sets(scheduler, t)).float().mean()) - t) < 0.01


def test_contiguous_states_grow_from_the_start():
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK, pivot_mode="contiguous")
    kept = kept_sets(scheduler, 0.6)
    assert bool(kept[:, : M // 4].all()) and not bool(kept[:, M // 2 :].any())


def test_per_row_lengths_and_part_wise_samples():
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK, pivot_mode="contiguous")
    clean = torch.arange(1, 3 * 16 + 1).view(1, 16, 3).repeat(2, 1, 1)
    noisy = scheduler.add_noise_with_checkpoints(clean, torch.tensor([0.75, 0.75]), sequence_lengths=[8, 16])
    # the parts of a position are masked together; padding after a row's length is left as it is
    assert bool(((noisy == MASK).all(-1) | (noisy != MASK).all(-1)).all())
    assert (noisy[0, :, 0] != MASK).nonzero().flatten().tolist() == [0, 1] + list(range(8, 16))
    assert (noisy[1, :, 0] != MASK).nonzero().flatten().tolist() == [0, 1, 2, 3]


def test_deterministic_under_a_generator():
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK)
    t = torch.rand(64, generator=torch.Generator().manual_seed(1))
    a, b, c = (
        scheduler.add_noise_with_checkpoints(CLEAN[:64], t, generator=torch.Generator().manual_seed(s))
        for s in (3, 3, 4)
    )
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_input_names_the_field():
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK)
    with pytest.raises(ValueError, match="mask_ratio"):
        scheduler.add_noise_with_checkpoints(CLEAN[:2], 1.5)
    with pytest.raises(ValueError, match="sequence_lengths"):
        scheduler.add_noise_with_checkpoints(CLEAN[:2], 0.5, sequence_lengths=[M + 1, 4])
    with pytest.raises(ValueError, match="original_samples"):
        scheduler.add_noise_with_checkpoints(CLEAN[0], 0.5)

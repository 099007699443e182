import math

import pytest
import torch

from hf_sign.schedulers import MaskedDiffusionScheduler, log10_unmasking_orders

MASK, VOCAB, M, STEPS = 0, 10, 32, 8  # k = M / STEPS = 4 tokens per step


def run(scheduler, logits_fn, batch=2, length=M, steps=STEPS, generator=None):
    """Runs the reverse process from a fully masked sample; returns the states before each step and the last."""
    scheduler.set_timesteps(steps, sequence_length=length)
    sample = torch.full((batch, length), MASK, dtype=torch.long)
    states = [sample]
    for t in scheduler.timesteps:
        sample = scheduler.step(logits_fn(), t, sample, generator=generator).prev_sample
        states.append(sample)
    return states


def ramp_logits(batch=2, length=M):
    """Token 7 everywhere, confidence rising with the position: vanilla unmasking goes right to left."""
    logits = torch.zeros(batch, length, VOCAB)
    logits[..., 7] = torch.linspace(1.0, 5.0, length)
    return logits


def checkpoint_positions(scheduler, states):
    """Unmasked positions of row 0 at the states with noise levels 0.75 and 0.5."""
    ratios = scheduler.mask_ratios.tolist()
    return [(states[ratios.index(t)][0] != MASK).nonzero().flatten().tolist() for t in (0.75, 0.5)]


def test_set_timesteps_lengths():
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK)
    scheduler.set_timesteps(25, sequence_length=100)
    assert scheduler.timesteps.tolist() == list(range(24, -1, -1))
    assert len(scheduler.unmasked_counts) == 25 and int(scheduler.unmasked_counts[-1]) == 100
    assert scheduler.unmasked_counts.diff().min() >= 1
    with pytest.raises(ValueError, match="num_inference_steps"):
        scheduler.set_timesteps(101, sequence_length=100)
    with pytest.raises(ValueError, match="num_inference_steps"):
        scheduler.set_timesteps(0)


@pytest.mark.parametrize("mode", ["uniform", "contiguous", "none"])
def test_k_per_step_and_nothing_masked_at_the_end(mode):
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK, pivot_mode=mode)
    states = run(scheduler, lambda: torch.randn(2, M, VOCAB), generator=torch.Generator().manual_seed(0))
    masked = [int((s == MASK).sum(dim=1).max()) for s in states]
    assert masked == list(range(M, -1, -M // STEPS)) and int((states[-1] == MASK).sum()) == 0
    assert all(int((s == MASK).sum(dim=1).min()) == n for s, n in zip(states, masked))


def test_checkpoint_states_hold_the_right_number_of_masked_tokens():
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK)
    states = run(scheduler, lambda: ramp_logits(length=100), length=100, steps=25)
    ratios = scheduler.mask_ratios.tolist()
    assert 0.75 in ratios and 0.5 in ratios
    assert int((states[ratios.index(0.75)] == MASK).sum(dim=1).min()) == 75
    assert int((states[ratios.index(0.5)] == MASK).sum(dim=1).max()) == 50


def test_uniform_pivots_are_spread_over_the_sequence():
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK, temperature=0.0)
    quarter, half = checkpoint_positions(scheduler, run(scheduler, ramp_logits))
    assert quarter == list(range(0, M, 4)) and half == list(range(0, M, 2))
    # M not a multiple of 4: still nested, and the points added at t = 0.5 are those farthest from the first set
    assert [p.tolist() for p in scheduler.pivot_positions(10)] == [[0, 5], [0, 2, 4, 5, 8]]
    # within the first stage the most confident pivots come first (right to left under the ramp)
    scheduler.set_timesteps(STEPS, sequence_length=M)
    first = scheduler.step(ramp_logits(), scheduler.timesteps[0], torch.full((2, M), MASK)).prev_sample
    assert (first[0] != MASK).nonzero().flatten().tolist() == [16, 20, 24, 28]


def test_contiguous_pivots_and_vanilla_follow_their_rule():
    contiguous = MaskedDiffusionScheduler(mask_token_id=MASK, pivot_mode="contiguous", temperature=0.0)
    quarter, half = checkpoint_positions(contiguous, run(contiguous, ramp_logits))
    assert quarter == list(range(M // 4)) and half == list(range(M // 2))
    vanilla = MaskedDiffusionScheduler(mask_token_id=MASK, pivot_mode="none", temperature=0.0)
    quarter, half = checkpoint_positions(vanilla, run(vanilla, ramp_logits))
    assert quarter == list(range(3 * M // 4, M)) and half == list(range(M // 2, M))  # pure confidence order
    assert vanilla.pivot_positions(M) == []


def test_tokens_after_the_first_eos_are_discarded():
    eos = 5
    logits = ramp_logits(batch=1)
    logits[0, 10, eos] = 9.0  # eos at position 10, token 7 elsewhere
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK, eos_token_id=eos, temperature=0.0)
    final = run(scheduler, lambda: logits, batch=1)[-1][0]
    assert final[:10].tolist() == [7] * 10 and final[10:].tolist() == [eos] * (M - 10)
    plain = MaskedDiffusionScheduler(mask_token_id=MASK, temperature=0.0)
    assert run(plain, lambda: logits, batch=1)[-1][0, 11:].tolist() == [7] * (M - 11)


def test_deterministic_under_a_seeded_generator():
    logits = torch.randn(2, M, VOCAB, generator=torch.Generator().manual_seed(1))
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK)
    first = run(scheduler, lambda: logits, generator=torch.Generator().manual_seed(3))[-1]
    again = run(scheduler, lambda: logits, generator=torch.Generator().manual_seed(3))[-1]
    other = run(scheduler, lambda: logits, generator=torch.Generator().manual_seed(4))[-1]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_mask_token_is_never_predicted_and_parts_unmask_together():
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK, temperature=0.0)
    scheduler.set_timesteps(4, sequence_length=8)
    logits = torch.randn(2, 8, 3, VOCAB, generator=torch.Generator().manual_seed(0))
    logits[..., MASK] = 50.0
    sample = scheduler.step(logits, scheduler.timesteps[0], torch.full((2, 8, 3), MASK)).prev_sample
    unmasked = sample != MASK
    assert (unmasked.all(-1) == unmasked.any(-1)).all() and unmasked.all(-1).sum(1).tolist() == [2, 2]


def test_add_noise_masks_about_t_and_nothing_else():
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK)
    ids = torch.randint(1, VOCAB, (4, 5000), generator=torch.Generator().manual_seed(0))
    noisy = scheduler.add_noise(ids, 0.3, generator=torch.Generator().manual_seed(1))
    masked = noisy == MASK
    assert abs(masked.float().mean().item() - 0.3) < 0.02
    assert torch.equal(noisy[~masked], ids[~masked])
    rows = scheduler.add_noise(ids, torch.tensor([0.0, 1.0, 0.5, 0.5]), generator=torch.Generator().manual_seed(1))
    assert torch.equal(rows[0], ids[0]) and bool((rows[1] == MASK).all())
    parts = scheduler.add_noise(ids.view(4, 2500, 2), 0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal((parts == MASK).all(-1), (parts == MASK).any(-1))
    with pytest.raises(ValueError, match="mask_ratio"):
        scheduler.add_noise(ids, 1.5)


def test_config_round_trip(tmp_path):
    scheduler = MaskedDiffusionScheduler(
        mask_token_id=3, pivot_timesteps=(0.8, 0.4), pivot_mode="contiguous", eos_token_id=4, temperature=0.5
    )
    scheduler.save_pretrained(tmp_path)
    loaded = MaskedDiffusionScheduler.from_pretrained(tmp_path)
    for key in ("mask_token_id", "pivot_mode", "eos_token_id", "temperature", "num_train_timesteps"):
        assert loaded.config[key] == scheduler.config[key]
    assert tuple(loaded.config.pivot_timesteps) == (0.8, 0.4)
    scheduler.set_timesteps(10, sequence_length=40)
    loaded.set_timesteps(10, sequence_length=40)
    assert torch.equal(loaded.unmasked_counts, scheduler.unmasked_counts)


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="mask_token_id"):
        MaskedDiffusionScheduler()
    with pytest.raises(ValueError, match="pivot_mode"):
        MaskedDiffusionScheduler(mask_token_id=MASK, pivot_mode="random")
    with pytest.raises(ValueError, match="pivot_timesteps"):
        MaskedDiffusionScheduler(mask_token_id=MASK, pivot_timesteps=(0.5, 0.75))
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK)
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(torch.zeros(1, M, VOCAB), 0, torch.zeros(1, M, dtype=torch.long))
    scheduler.set_timesteps(STEPS)
    with pytest.raises(ValueError, match="model_output"):
        scheduler.step(torch.zeros(1, M - 1, VOCAB), 0, torch.zeros(1, M, dtype=torch.long))


def test_unmasking_order_counts_of_eqs_4_and_5():
    vanilla = log10_unmasking_orders(100, 4)
    assert 10 ** (vanilla - 123) == pytest.approx(2.9, abs=0.05)
    assert vanilla - log10_unmasking_orders(100, 4, pivots=(0.75, 0.5)) > 41
    # small exact cases: 4! / (2!)^2 = 6 orders; checkpoint at t = 0.5 leaves (2! / 2!)^2 = 1
    assert log10_unmasking_orders(4, 2) == pytest.approx(math.log10(6))
    assert log10_unmasking_orders(4, 2, pivots=(0.5,)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("steps, kept", [(2, [list(range(0, M, 2))]), (1, [])])
def test_fewer_steps_than_stages_skip_the_earliest_checkpoints(steps, kept):
    """Two steps: the state after the first is the t = 0.5 checkpoint (every 2nd position); one step fills all."""
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK, temperature=0.0)
    states = run(scheduler, ramp_logits, steps=steps)
    assert scheduler.skipped_checkpoints == 2 - len(kept)
    for state, positions in zip(states[1:], kept):
        assert (state[0] != MASK).nonzero().flatten().tolist() == positions
    assert int((states[-1] == MASK).sum()) == 0 and len(states) == steps + 1
    scheduler.set_timesteps(STEPS, sequence_length=M)
    assert scheduler.skipped_checkpoints == 0


def test_first_step_lengths_read_the_eos_probabilities():
    """The length is the first position whose part-averaged <eos> probability exceeds 1/2; never 0."""
    eos = 3
    scheduler = MaskedDiffusionScheduler(mask_token_id=MASK, eos_token_id=eos, length_mode="first_step")
    logits = torch.zeros(3, 6, 2, VOCAB)  # (B, M, P, V): uniform, P(eos) = 0.1 everywhere
    logits[0, 4:, :, eos] = 10.0  # both parts sure of <eos> from position 4
    logits[1, 2, 0, eos] = 10.0  # one part sure, the other uniform: mean about 0.55 > 1/2
    logits[1, 0, :, eos] = 10.0  # position 0 never ends a sequence
    assert scheduler.sequence_lengths(logits).tolist() == [4, 2, 6]
    assert scheduler.sequence_lengths(logits[:, :, 0]).tolist() == [4, 2, 6]  # (B, M, V) without parts
    with pytest.raises(ValueError, match="length_mode"):
        MaskedDiffusionScheduler(mask_token_id=MASK, eos_token_id=eos, length_mode="oracle")
    with pytest.raises(ValueError, match="eos_token_id"):
        MaskedDiffusionScheduler(mask_token_id=MASK, length_mode="first_step")

"""The approximate KV cache of masked-diffusion sampling (`MaskedDiffusionScheduler(kv_cache="delayed")`):
the store writes where it is told, a partial pass over unchanged tokens is the full pass, a one-layer LM (whose keys
and values depend on their own token only) samples exactly what the exact sampler does, a refresh every step is the
exact sampler, the deeper LM is approximated (not silently exact), and the usual pipeline guarantees hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pipeline_tester_mixin import gen
from test_pipeline_madis import TEXTS, make_pipe
from transformers import DynamicCache

from hf_sign.models.madis import MaskedDiffusionCache, MaskedDiffusionCacheLayer, active_canvas_positions
from hf_sign.models.madis.sequences import as_part_wise, encode_text
from hf_sign.pipelines.pipeline_madis import MaDiSPipeline
from hf_sign.schedulers import MaskedDiffusionScheduler
from hf_sign.training.madis_trainer import full_config


def with_cache(pipe, kv_cache="delayed", kv_cache_refresh=0):
    pipe.scheduler = MaskedDiffusionScheduler.from_config(
        pipe.scheduler.config, kv_cache=kv_cache, kv_cache_refresh=kv_cache_refresh
    )
    return pipe


def record_steps(pipe, monkeypatch, only_unmaskable=False):
    """Per scheduler step, the logits at the positions still masked (and, with `only_unmaskable`, that the step may
    unmask), and per LM call its input length."""
    steps, lengths = [], []
    step, forward = pipe.scheduler.step, pipe.lm.forward

    def spy_step(model_output, timestep, sample, **kwargs):
        read = (sample == pipe.lm.config.mask_token_id).all(-1)
        if only_unmaskable:
            read &= pipe.scheduler.unmaskable_positions(timestep)
        steps.append(model_output[read].clone())
        return step(model_output, timestep, sample, **kwargs)

    def spy_forward(input_ids, *args, **kwargs):
        lengths.append(input_ids.shape[1])
        return forward(input_ids, *args, **kwargs)

    monkeypatch.setattr(pipe.scheduler, "step", spy_step)
    monkeypatch.setattr(pipe.lm, "forward", spy_forward)
    return steps, lengths


def run(pipe, monkeypatch, kv_cache="none", kv_cache_refresh=0, only_unmaskable=False, **call):
    with_cache(pipe, kv_cache, kv_cache_refresh)
    steps, lengths = record_steps(pipe, monkeypatch, only_unmaskable)
    out = pipe(TEXTS[:2], num_inference_steps=6, output_type="tokens", **call)
    monkeypatch.undo()
    return out, steps, lengths


def max_step_difference(a, b) -> float:
    assert len(a) == len(b)
    return max(float((x - y).nan_to_num(posinf=0.0, neginf=0.0).abs().max()) for x, y in zip(a, b))


# ------------------------------------------------------------------------------------------------- the store


def test_cache_layer_writes_at_the_given_positions():
    layer = MaskedDiffusionCacheLayer()
    keys, values = torch.randn(2, 3, 6, 4), torch.randn(2, 3, 6, 4)
    k, v = layer.update(keys, values)  # the full pass: returned as is, stored
    assert k is keys and torch.equal(layer.keys, keys) and layer.get_seq_length() == 6
    assert layer.get_mask_sizes(2) == (6, 0)
    new_k, new_v = torch.randn(2, 3, 2, 4), torch.randn(2, 3, 2, 4)
    k, v = layer.update(new_k, new_v, torch.tensor([[1, 4], [0, 5]]))
    assert k.shape == (2, 3, 6, 4)
    expected_k, expected_v = keys.clone(), values.clone()
    for row, cols in enumerate([[1, 4], [0, 5]]):
        for j, col in enumerate(cols):
            expected_k[row, :, col], expected_v[row, :, col] = new_k[row, :, j], new_v[row, :, j]
    assert torch.equal(k, expected_k) and torch.equal(v, expected_v)
    with pytest.raises(ValueError, match="positions"):
        layer.update(new_k, new_v, torch.tensor([[1, 4, 5]]))


def test_active_positions_are_masked_or_changed():
    mask = 9
    m = [mask, mask]
    seen = torch.tensor([[m, [1, 1], m, [2, 2], m], [[3, 3], m, [1, 1], [2, 2], [4, 4]]])
    now = seen.clone()
    now[0, 0] = torch.tensor([5, 5])  # unmasked at the last step: recomputed once
    now[1, 1] = torch.tensor([6, 6])
    # row 0: 0 (changed) and 2, 4 (masked); row 1: 1 (changed), repeated to the width of row 0
    assert active_canvas_positions(now, seen, mask).tolist() == [[0, 2, 4], [1, 1, 1]]
    # nothing changed: the masked positions; row 1 has none and recomputes its position 0
    assert active_canvas_positions(now, now, mask).tolist() == [[2, 4], [0, 0]]
    done = torch.ones_like(now)
    assert active_canvas_positions(done, done, mask).shape == (2, 0)
    # "stage": only the masked positions the step may unmask (here 4), and the changed ones
    unmaskable = torch.tensor([False, False, False, False, True])
    assert active_canvas_positions(now, seen, mask, unmaskable).tolist() == [[0, 4], [1, 1]]
    assert active_canvas_positions(now, now, mask, unmaskable).tolist() == [[4], [0]]


def test_partial_pass_over_unchanged_tokens_is_the_full_pass():
    """Keys and values of a full pass, then a pass over a few positions (padded text, other positions per row): the
    recomputed positions see exactly the keys and values of the full pass, so their logits are the full pass's."""
    pipe = make_pipe()
    cfg = pipe.lm.config
    ids, text_mask = encode_text(pipe.text_tokenizer, TEXTS[:2], cfg)
    assert not bool(text_mask.all())  # the second prompt is left-padded
    canvas = torch.full((2, 8, 3), cfg.mask_token_id)
    codes = torch.tensor([cfg.part_token_offset(p) for p in range(3)]) + torch.randint(0, 8, (2, 3, 3))
    canvas[:, ::3] = codes
    mask = torch.cat([text_mask, torch.ones(2, 8, dtype=text_mask.dtype)], 1)
    cache = MaskedDiffusionCache(cfg.num_hidden_layers)
    with torch.no_grad():
        full = pipe.lm(torch.cat([as_part_wise(ids, cfg), canvas], 1), attention_mask=mask, cache=cache).logits
        order = torch.tensor([[1, 3, 4, 7], [0, 2, 5, 6]])
        positions = order + ids.shape[1]
        cache.set_positions(positions)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0).gather(1, positions)
        inputs = canvas.gather(1, order[..., None].expand(-1, -1, 3))
        part = pipe.lm(inputs, attention_mask=mask, position_ids=position_ids, cache=cache).logits
    expected = full[:, ids.shape[1] :].gather(1, order[..., None, None].expand(-1, -1, 3, full.shape[-1]))
    assert (part - expected).nan_to_num(posinf=0.0, neginf=0.0).abs().max() < 1e-5
    assert torch.equal(torch.isinf(part), torch.isinf(expected))
    # a changed token changes what the others see: not a copy of the full pass
    inputs[:, 0] = codes[:, 0].flip(-1).clamp(min=cfg.part_token_offset(0))
    with torch.no_grad():
        other = pipe.lm(inputs, attention_mask=mask, position_ids=position_ids, cache=cache).logits
    assert (other - expected)[:, 1:].nan_to_num(posinf=0.0, neginf=0.0).abs().max() > 1e-4


# ------------------------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("mode", ["delayed", "stage"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_one_layer_lm_samples_exactly_what_the_exact_sampler_does(mode, temperature, monkeypatch):
    """With one layer, a key or value depends on its own token and position only, so both caches (recompute the
    just-unmasked positions; a masked one keeps the key of its <mask>) are exact: same logits at every masked
    position the scheduler reads, same tokens. Forgetting to recompute a just-unmasked position would leave the key
    of its <mask> in the store."""
    pipe = make_pipe(temperature=temperature, num_hidden_layers=1)
    read = mode == "stage"  # only the logits of the positions the step may unmask are computed
    exact, exact_steps, exact_lengths = run(pipe, monkeypatch, only_unmaskable=read, generator=[gen(0), gen(1)])
    cached, cached_steps, cached_lengths = run(pipe, monkeypatch, mode, 0, read, generator=[gen(0), gen(1)])
    assert max_step_difference(exact_steps, cached_steps) < 1e-5
    assert all(np.array_equal(a, b) for a, b in zip(exact.poses, cached.poses))
    # full passes, then passes over the canvas positions still to decide only
    assert len(cached_lengths) == len(exact_lengths) == 6 and cached_lengths[0] == exact_lengths[0]
    assert min(cached_lengths) < 12


def test_refresh_every_step_is_the_exact_sampler(monkeypatch):
    pipe = make_pipe(temperature=1.0)
    exact, exact_steps, _ = run(pipe, monkeypatch, generator=[gen(0), gen(1)])
    cached, cached_steps, lengths = run(pipe, monkeypatch, "delayed", 1, generator=[gen(0), gen(1)])
    assert max_step_difference(exact_steps, cached_steps) == 0.0
    assert all(np.array_equal(a, b) for a, b in zip(exact.poses, cached.poses))
    assert len(set(lengths)) == 1  # every pass a full pass


def test_deeper_lm_is_approximated_and_refreshed_on_schedule(monkeypatch):
    """Two layers: the stored keys and values of the second layer go stale (the text's from the first step on), so
    the logits drift from the exact sampler's after the full pass (the cache is really used); `kv_cache_refresh=3`
    runs full passes at steps 0 and 3."""
    pipe = make_pipe(temperature=0.0)
    _, exact_steps, _ = run(pipe, monkeypatch)
    _, cached_steps, _ = run(pipe, monkeypatch, "delayed")
    assert max_step_difference(exact_steps[:1], cached_steps[:1]) == 0.0
    assert max_step_difference(exact_steps[1:], cached_steps[1:]) > 1e-4
    _, _, lengths = run(pipe, monkeypatch, "delayed", 3)
    full = max(lengths)
    assert [i for i, n in enumerate(lengths) if n == full] == [0, 3] and full > 12


def test_stage_cache_runs_a_full_pass_at_each_checkpoint_stage(monkeypatch):
    """`"stage"`: full passes where the scheduler's unmaskable set changes (the checkpoint stages), in between only
    the masked positions of the stage and the just-unmasked ones, fewer than `"delayed"` recomputes."""
    pipe = make_pipe(temperature=0.0)
    sched = MaskedDiffusionScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(6, 12)
    sets = [sched.unmaskable_positions(t) for t in sched.timesteps]
    assert sets[0].nonzero().flatten().tolist() == sched.pivot_positions(12)[0].tolist() == [0, 4, 8]
    assert bool(sets[-1].all())
    starts = [i for i in range(6) if i == 0 or not torch.equal(sets[i], sets[i - 1])]
    sched.set_timesteps(6)
    with pytest.raises(ValueError, match="sequence_length"):
        sched.unmaskable_positions(5)
    assert len(starts) == 3
    _, _, lengths = run(pipe, monkeypatch, "stage")
    _, _, delayed = run(pipe, monkeypatch, "delayed")
    assert [i for i, n in enumerate(lengths) if n == max(lengths)] == starts
    inside = [i for i in range(6) if i not in starts]
    assert all(lengths[i] <= delayed[i] for i in inside) and any(lengths[i] < delayed[i] for i in inside)


@pytest.mark.parametrize("mode", ["delayed", "stage"])
def test_cached_sampling_is_deterministic_batch_equals_single_and_unmasks_everything(mode):
    pipe = with_cache(make_pipe(temperature=1.0), mode)
    finals = []

    def callback(p, step, t, tensors):
        finals.append(tensors["sample"])
        return {}

    kwargs = dict(output_type="tokens", callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["sample"])
    batch = pipe(TEXTS[:3], generator=[gen(0), gen(1), gen(2)], **kwargs)
    assert not bool((finals[-1] == pipe.lm.config.mask_token_id).any())
    again = pipe(TEXTS[:3], generator=[gen(0), gen(1), gen(2)], **kwargs)
    assert batch.sign_tokens == again.sign_tokens
    for i in range(3):
        single = pipe(TEXTS[i], generator=gen(i), **kwargs)
        assert single.sign_tokens[0] == batch.sign_tokens[i]
    assert pipe(TEXTS[0], generator=gen(5), **kwargs).sign_tokens[0] != batch.sign_tokens[0]
    poses = pipe(TEXTS[0], num_frames=20, generator=gen(0))  # decoded, fixed length: no <eos> sampled
    assert poses.poses[0].shape[0] == 20


# ------------------------------------------------------------------------------------------------- config


def test_setting_is_saved_and_reaches_the_training_config(tmp_path):
    pipe = with_cache(make_pipe(), kv_cache_refresh=4)
    pipe.save_pretrained(tmp_path)
    loaded = MaDiSPipeline.from_pretrained(tmp_path)
    assert loaded.scheduler.config.kv_cache == "delayed" and loaded.scheduler.config.kv_cache_refresh == 4
    assert full_config("paper")["scheduler"]["kv_cache"] == "none"  # the paper's sampler by default
    cfg = full_config("tiny", {"scheduler.kv_cache": "delayed", "scheduler.kv_cache_refresh": 5})
    assert (cfg["scheduler"]["kv_cache"], cfg["scheduler"]["kv_cache_refresh"]) == ("delayed", 5)
    with pytest.raises(ValueError, match="kv_cache"):
        full_config("tiny", {"scheduler.kv_cache": "greedy"})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kv_cache="greedy"), "kv_cache"),
        (dict(kv_cache="Stage"), "kv_cache"),
        (dict(kv_cache=True), "kv_cache"),
        (dict(kv_cache_refresh=-1), "kv_cache_refresh"),
        (dict(kv_cache_refresh=1.5), "kv_cache_refresh"),
        (dict(kv_cache_refresh=True), "kv_cache_refresh"),
    ],
)
def test_bad_cache_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaskedDiffusionScheduler(mask_token_id=3, **kwargs)


def test_bad_cache_use_in_the_model():
    pipe = make_pipe()
    cfg = pipe.lm.config
    ids = torch.full((1, 5, 3), cfg.mask_token_id)
    with pytest.raises(ValueError, match="MaskedDiffusionCache"):
        pipe.lm(ids, cache=DynamicCache(config=cfg))
    cache = MaskedDiffusionCache(cfg.num_hidden_layers)
    with pytest.raises(ValueError, match="full pass"):
        cache.set_positions(torch.tensor([[0]]))
    with torch.no_grad():
        pipe.lm(ids, cache=cache)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        cache.set_positions(torch.tensor([[5]]))
    cache.set_positions(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="position_ids"):
        pipe.lm(ids[:, :2], cache=cache)

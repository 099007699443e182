"""`MaDiSPipeline` on tiny untrained components (CPU): the shared pipeline tests (`HubPipelineTesterMixin`:
determinism, batch vs single, save/load with and without remote code, components, dtype, output types, shared bad
inputs), then what only MaDiS has: a hand-written unmasking loop it must match, the token output and SiBLEU tokens,
the causal baseline's KV-cache decoding against a loop without cache, and its own bad inputs; and the registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pipeline_tester_mixin import HubPipelineTesterMixin, assert_differ, assert_same, gen

from hf_sign.data.normalization import PoseNormalizer
from hf_sign.models.madis import MaDiSConfig, MaDiSForMaskedDiffusion, PartVQVAE
from hf_sign.models.madis.sequences import as_part_wise, encode_text, ids_to_codes
from hf_sign.pipelines.pipeline_madis import MaDiSPipeline, MaDiSPipelineOutput
from hf_sign.schedulers import MaskedDiffusionScheduler
from hf_sign.systems import get_system
from hf_sign.training.madis_stages import TextTokenizerArguments, build_text_tokenizer

TEXTS = ["the weather tomorrow will be rainy", "do you like coffee?", "my sister is tall", "where is the store"]
SIZES = [8, 12, 12]


def make_components(
    seed: int = 0, bidirectional: bool = True, temperature: float = 1.0, num_hidden_layers: int = 2
) -> dict:
    torch.manual_seed(seed)
    tokenizer = build_text_tokenizer(TEXTS * 3, TextTokenizerArguments(vocab_size=300))
    vqvae = PartVQVAE(codebook_sizes=tuple(SIZES), code_dim=16, hidden_dim=16, num_res_blocks=1).eval()
    config = MaDiSConfig(
        text_vocab_size=len(tokenizer),
        part_codebook_sizes=SIZES,
        code_dim=16,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_sign_tokens=12,
        max_text_tokens=24,
        bidirectional=bidirectional,
    )
    lm = MaDiSForMaskedDiffusion(config).eval()
    with torch.no_grad():  # untrained codebooks are zeros: give the MoP layer distinct code vectors
        for q in vqvae.quantizers:
            q.codebook.copy_(torch.randn_like(q.codebook))
    lm.set_codebooks([vqvae.codebook(p) for p in range(3)])
    normalizer = PoseNormalizer.fit([np.random.default_rng(seed).normal(0, 0.2, (30, 133))], representation="smplx133")
    scheduler = MaskedDiffusionScheduler(
        mask_token_id=config.mask_token_id, eos_token_id=config.eos_token_id, temperature=temperature
    )
    return dict(lm=lm, part_vqvae=vqvae, text_tokenizer=tokenizer, scheduler=scheduler, normalizer=normalizer)


def make_pipe(**kwargs) -> MaDiSPipeline:
    pipe = MaDiSPipeline(**make_components(**kwargs))
    pipe.set_progress_bar_config(disable=True)
    return pipe


class TestMaDiSPipeline(HubPipelineTesterMixin):
    pipeline_class = MaDiSPipeline
    input_keys = ("num_frames", "duration_s", "num_inference_steps")

    def get_dummy_components(self):
        return make_components()

    def get_inputs(self, num_prompts=1, seed=0, **overrides):
        inputs = {"prompt": TEXTS[:num_prompts] if num_prompts > 1 else TEXTS[0]}
        inputs.update({k: v for k, v in overrides.items() if k in self.input_keys})
        return inputs

    def test_matches_reference_loop(self):
        """The pipeline equals a hand-written loop: text prefix + masked canvas -> LM part heads -> scheduler step
        -> cut at <eos> -> VQ decode -> denormalise (greedy, so no randomness is involved)."""
        pipe = make_pipe(temperature=0.0)
        got = pipe(TEXTS[:2], num_inference_steps=4)
        cfg = pipe.lm.config
        for i, text in enumerate(TEXTS[:2]):
            ids, mask = encode_text(pipe.text_tokenizer, [text], cfg)
            prefix = as_part_wise(ids, cfg)
            sched = MaskedDiffusionScheduler.from_config(pipe.scheduler.config)
            sched.set_timesteps(4, cfg.max_sign_tokens)
            x = torch.full((1, cfg.max_sign_tokens, 3), cfg.mask_token_id)
            for t in sched.timesteps:
                logits = pipe.lm(torch.cat([prefix, x], 1)).logits[:, prefix.shape[1] :]
                logits[:, 0, :, cfg.eos_token_id] = -float("inf")
                x = sched.step(logits, t, x).prev_sample
            assert not (x == cfg.mask_token_id).any()
            codes = ids_to_codes(x, cfg)[0]
            poses = pipe.normalizer.denormalize(pipe.part_vqvae.decode([c[None] for c in codes])[0])
            assert_same([got.poses[i]], [poses.detach()], atol=1e-5)
            assert got.sign_tokens[i]["body"] == codes[0].tolist()

    def test_seed_changes_output_when_sampling(self):
        pipe = make_pipe(temperature=1.0)
        a = pipe(TEXTS[0], num_frames=24, generator=gen(0)).poses
        assert_differ(a, pipe(TEXTS[0], num_frames=24, generator=gen(1)).poses)


def test_tokens_output_and_sibleu_inputs():
    pipe = make_pipe()
    out = pipe(TEXTS[:2], output_type="tokens", generator=[gen(0), gen(1)])
    assert isinstance(out, MaDiSPipelineOutput)
    for arr, toks, info, n in zip(out.poses, out.sign_tokens, out.info, out.num_frames):
        assert arr.ndim == 2 and arr.shape[1] == 3 and 1 <= arr.shape[0] <= 12 and n == 4 * arr.shape[0]
        assert toks["left_hand"] == arr[:, 1].tolist() and info["num_tokens"] == arr.shape[0]
        assert all(0 <= c < s for c, s in zip(arr.max(0), SIZES))
    poses = pipe(TEXTS[:2], generator=[gen(0), gen(1)])
    assert poses.sign_tokens == out.sign_tokens  # decoding does not change the tokens
    assert [p.shape[0] for p in poses.poses] == out.num_frames
    ref = pipe.tokenize_poses([np.zeros((37, 133), np.float32)])
    assert set(ref[0]) == {"body", "left_hand", "right_hand"} and len(ref[0]["body"]) == math.ceil(37 / 4)
    with pytest.raises(ValueError, match=r"poses\[0\]"):
        pipe.tokenize_poses([np.zeros((10, 7))])


def test_causal_baseline_kv_cache_matches_full_recompute():
    pipe = make_pipe(bidirectional=False, temperature=0.0)
    out = pipe(TEXTS[:2], output_type="tokens")
    cfg = pipe.lm.config
    for i, text in enumerate(TEXTS[:2]):
        ids, _ = encode_text(pipe.text_tokenizer, [text], cfg)
        seq = as_part_wise(ids, cfg)
        tokens = []
        for step in range(cfg.max_sign_tokens):  # no cache: the whole sequence every step
            logits = pipe.lm(seq).logits[0, -1].clone()
            logits[:, cfg.mask_token_id] = -float("inf")
            if step == 0:
                logits[:, cfg.eos_token_id] = -float("inf")
            nxt = logits.argmax(-1)
            if (nxt == cfg.eos_token_id).any():
                break
            tokens.append(nxt)
            seq = torch.cat([seq, nxt.view(1, 1, 3)], 1)
        expected = torch.stack(tokens) - torch.tensor([cfg.part_token_offset(p) for p in range(3)])
        np.testing.assert_array_equal(out.poses[i], expected.numpy())


def test_bidirectional_pipeline_reads_the_whole_canvas():
    """A masked diffusion step sees later positions: changing the last canvas token changes the first logits."""
    pipe = make_pipe()
    cfg = pipe.lm.config
    ids, _ = encode_text(pipe.text_tokenizer, [TEXTS[0]], cfg)
    canvas = torch.full((1, 6, 3), cfg.mask_token_id)
    other = canvas.clone()
    other[0, -1] = torch.tensor([cfg.part_token_offset(p) for p in range(3)])
    a = pipe.lm(torch.cat([as_part_wise(ids, cfg), canvas], 1)).logits[0, ids.shape[1]]
    b = pipe.lm(torch.cat([as_part_wise(ids, cfg), other], 1)).logits[0, ids.shape[1]]
    assert (a - b).nan_to_num().abs().max() > 1e-4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(prompt="weather " * 40), "max_text_tokens"),
        (dict(prompt=TEXTS[0], num_inference_steps=13), "num_inference_steps"),
        (dict(prompt=TEXTS[0], num_inference_steps=0), "num_inference_steps"),
        (dict(prompt=TEXTS[0], num_tokens=0), "num_tokens"),
        (dict(prompt=TEXTS[0], num_frames=10**6), "num_frames"),
        (dict(prompt=TEXTS[0], output_type="latent"), "output_type"),
        (dict(prompt=TEXTS[0], callback_on_step_end_tensor_inputs=["latents"]), "callback_on_step_end_tensor_inputs"),
    ],
)
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_pipe()(**kwargs)


def test_first_step_length_mode_samples_the_predicted_length(monkeypatch):
    """`length_mode="first_step"`: each row's length is the scheduler's reading of one pass on the fully masked canvas,
    then that many tokens are sampled without <eos>; a row does not depend on the others."""
    pipe = make_pipe(temperature=0.0)
    pipe.scheduler = MaskedDiffusionScheduler.from_config(pipe.scheduler.config, length_mode="first_step")
    cfg = pipe.lm.config
    seen = []

    def lengths(logits):  # row-dependent lengths in [2, 9] from each row's own first-step logits
        assert logits.shape[1] == cfg.max_sign_tokens and bool((logits[..., cfg.mask_token_id] == -float("inf")).all())
        seen.append(2 + (logits[:, 0, 0].max(-1).values * 1e4).long() % 8)
        return seen[-1]

    monkeypatch.setattr(pipe.scheduler, "sequence_lengths", lengths)
    out = pipe(TEXTS[:3], output_type="tokens")
    assert [i["num_tokens"] for i in out.info] == seen[0].tolist()
    assert len(set(seen[0].tolist())) > 1
    assert [p.shape[0] for p in out.poses] == seen[0].tolist()  # nothing cut: <eos> was never sampled
    single = pipe(TEXTS[1], output_type="tokens")
    assert np.array_equal(single.poses[0], out.poses[1])
    # the paper's mode never asks for a length
    pipe.scheduler = MaskedDiffusionScheduler.from_config(pipe.scheduler.config, length_mode="eos")
    monkeypatch.setattr(pipe.scheduler, "sequence_lengths", lambda logits: pytest.fail("eos mode read a length"))
    pipe(TEXTS[0], output_type="tokens")


def test_scheduler_of_another_vocabulary_is_refused():
    pipe = make_pipe()
    pipe.scheduler = MaskedDiffusionScheduler(mask_token_id=1)
    with pytest.raises(ValueError, match="mask_token_id"):
        pipe(TEXTS[0])


def test_callback_sees_and_can_replace_the_canvas():
    pipe = make_pipe(temperature=0.0)
    seen = []

    def callback(p, step, t, tensors):
        seen.append(int((tensors["sample"] == p.lm.config.mask_token_id).all(-1).sum()))
        return {}

    pipe(TEXTS[0], num_inference_steps=4, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["sample"])
    assert seen == sorted(seen, reverse=True) and seen[-1] == 0 and len(seen) == 4


def test_registered_system_builds_this_pipeline(tmp_path):
    system = get_system("madis")
    assert system.pipeline_class() is MaDiSPipeline and system.input_name == "prompt"
    make_pipe().save_pretrained(tmp_path)
    from hf_sign.systems import system_for_pipeline

    assert system_for_pipeline(tmp_path) is system

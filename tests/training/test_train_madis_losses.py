"""MaDiS's LM data and objectives on a toy batch: the canvas layout, the masking of each stage, L_lat and L_phy by
hand, the autoregressive next-token loss, and learning (each objective falls on a batch, and not at lr 0)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hf_sign.data.normalization import PoseNormalizer
from hf_sign.models.madis import MaDiSConfig, MaDiSForMaskedDiffusion, PartVQVAE
from hf_sign.schedulers import MaskedDiffusionScheduler
from hf_sign.training.madis_data import MaDiSCollator, build_token_corpus, resample_frames
from hf_sign.training.madis_losses import latent_loss, madis_lm_loss, mask_sequences, next_token_loss, physical_loss
from hf_sign.training.madis_stages import TextTokenizerArguments, build_text_tokenizer
from hf_sign.training.trainer_utils import load_pose_splits

M = 48
BACKBONE = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=16,
    connector_dropout=0.0,
)


@pytest.fixture(scope="module")
def toy(tiny_synthsign):
    """Rows, a random tiny VQ-VAE, its normalizer, a text tokenizer and the token corpus of the train split."""
    torch.manual_seed(0)
    data = load_pose_splits(str(tiny_synthsign), 400)
    rows = data["train"]
    vqvae = PartVQVAE(codebook_sizes=(16, 16, 16), code_dim=16, hidden_dim=16, num_res_blocks=1).eval()
    vqvae.requires_grad_(False)
    normalizer = PoseNormalizer.fit((r["poses"] for r in rows), representation=data["representation"])
    tokenizer = build_text_tokenizer((r["text"] for r in rows), TextTokenizerArguments(vocab_size=300))
    config = lm_config(tokenizer)
    items = build_token_corpus(rows, vqvae, normalizer, config, show_progress=False)
    return rows, vqvae, tokenizer, items


def lm_config(tokenizer, **kwargs):
    return MaDiSConfig(
        text_vocab_size=len(tokenizer),
        part_codebook_sizes=[16, 16, 16],
        code_dim=16,
        **{**BACKBONE, "max_sign_tokens": M, "max_position_embeddings": 256, **kwargs},
    )


def make_model(tokenizer, vqvae, **kwargs):
    torch.manual_seed(0)
    model = MaDiSForMaskedDiffusion(lm_config(tokenizer, **kwargs))
    model.set_codebooks([vqvae.codebook(p) for p in range(3)])
    return model


# ------------------------------------------------------------------------------------------------ data
def test_token_corpus_and_canvas_layout(toy):
    rows, vqvae, tokenizer, items = toy
    cfg = lm_config(tokenizer)
    assert [len(i["codes"]) for i in items] == [-(-r["num_frames"] // 4) for r in rows]
    batch = MaDiSCollator(tokenizer, cfg)(items[:3])
    lt = batch["text_length"]
    assert batch["input_ids"].shape == (3, lt + M, 3) and bool((batch["canvas_lengths"] == M).all())
    for b, item in enumerate(items[:3]):
        n = len(item["codes"])
        canvas = batch["input_ids"][b, lt:]
        # codes of each part at the part's offset, then <eos> up to M
        assert torch.equal(canvas[:n] - torch.tensor([cfg.part_token_offset(p) for p in range(3)]), item["codes"])
        assert bool((canvas[n:] == cfg.eos_token_id).all())
        assert int(batch["input_ids"][b, lt - 1, 0]) == cfg.eos_token_id  # the text ends with <eos>
        assert int(batch["frame_mask"][b].sum()) == len(item["poses"])
    fit = MaDiSCollator(tokenizer, cfg, sign_canvas="fit")(items[:3])
    n = fit["sign_lengths"]
    assert torch.equal(fit["canvas_lengths"], (n // 4 + 1) * 4)  # <eos> then <eos> up to a multiple of 4
    assert torch.equal(fit["attention_mask"][:, fit["text_length"] :].sum(1), fit["canvas_lengths"])


def test_long_clips_are_resampled_to_fit(toy):
    rows, vqvae, tokenizer, _ = toy
    normalizer = PoseNormalizer(feature_dim=133)
    long = dict(rows[0], poses=resample_frames(rows[0]["poses"], 10**9))  # no-op for short sequences
    assert len(long["poses"]) == rows[0]["num_frames"]
    cfg = lm_config(tokenizer, max_sign_tokens=8)  # 7 tokens = 28 frames
    (item,) = build_token_corpus([rows[0]], vqvae, normalizer, cfg, show_progress=False)
    assert len(item["codes"]) == 7 and len(item["poses"]) == 28
    with pytest.raises(ValueError, match="sign_canvas"):
        MaDiSCollator(tokenizer, cfg, sign_canvas="bogus")


# ------------------------------------------------------------------------------------------------ masking
def test_pretraining_masks_text_and_signs_finetuning_only_signs(toy):
    _, vqvae, tokenizer, items = toy
    cfg = lm_config(tokenizer)
    sched = MaskedDiffusionScheduler(mask_token_id=cfg.mask_token_id, eos_token_id=cfg.eos_token_id)
    batch = MaDiSCollator(tokenizer, cfg)(items[:8])
    lt, real = batch["text_length"], batch["attention_mask"].bool()
    g = torch.Generator().manual_seed(0)
    noisy, labels, t = mask_sequences(batch, cfg, sched, mask_text=True, generator=g)
    masked = (noisy == cfg.mask_token_id).all(-1)
    assert bool(masked[:, :lt].any()) and bool(masked[:, lt:].any()) and not bool(masked[~real].any())
    assert bool(((t > 0) & (t <= 1)).all())
    # a text position is labelled on part 0 only; sign and <eos> positions on every part; padding never
    text = real[:, :lt] & (batch["input_ids"][:, :lt, 0] != cfg.eos_token_id)
    assert bool((labels[:, :lt, 0][text] >= 0).all()) and bool((labels[:, :lt, 1:][text] == -100).all())
    assert bool((labels[:, lt:] >= 0).all()) and bool((labels[~real] == -100).all())
    noisy, labels, _ = mask_sequences(
        batch,
        cfg,
        sched,
        mask_text=False,
        checkpoint_state_probability=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(noisy[:, :lt], batch["input_ids"][:, :lt]) and bool((labels[:, :lt] == -100).all())
    # fine-tuning states are states the sampler reaches: every row's unmasked set is a checkpoint set's superset
    quarter, half = sched.pivot_positions(M)
    for row, rt in zip((noisy[:, lt:] != cfg.mask_token_id).all(-1), t):
        kept = set(row.nonzero().flatten().tolist())
        required = set() if rt >= 0.75 else set(quarter.tolist()) if rt >= 0.5 else set(half.tolist())
        allowed = set(quarter.tolist()) if rt >= 0.75 else set(half.tolist()) if rt >= 0.5 else set(range(M))
        assert required <= kept <= allowed


# ------------------------------------------------------------------------------------------------ the terms
def test_latent_loss_by_hand():
    books = [torch.randn(5, 4) for _ in range(2)]
    codes = torch.tensor([[[0, 1], [2, 3], [4, 0]]])
    latents = [torch.randn(1, 3, 4) for _ in range(2)]
    positions = torch.tensor([[True, False, True]])
    expected = sum(F.smooth_l1_loss(latents[p][0, [0, 2]], books[p][codes[0, [0, 2], p]]) for p in range(2))
    assert torch.allclose(latent_loss(latents, codes, positions, books), expected)
    exact = [books[p][codes[..., p]] for p in range(2)]
    assert float(latent_loss(exact, codes, positions, books)) == 0.0
    assert float(latent_loss(latents, codes, positions & False, books)) == 0.0


def test_physical_loss_counts_only_the_frames_of_masked_tokens(toy):
    _, vqvae, _, _ = toy
    latents = [torch.randn(2, 5, 16) for _ in range(3)]
    poses = vqvae.decode_latents(latents).detach()  # 20 frames
    frames = torch.ones(2, 20, dtype=torch.bool)
    positions = torch.zeros(2, 5, dtype=torch.bool)
    positions[0, 1] = True
    assert float(physical_loss(vqvae, latents, poses, frames, positions)) == 0.0
    off = poses.clone()
    off[0, :4] += 1.0  # frames of an unmasked token
    off[1] += 1.0  # a row with no masked token
    assert float(physical_loss(vqvae, latents, off, frames, positions)) == 0.0
    off[0, 4:8] += 1.0  # frames of the masked token
    assert float(physical_loss(vqvae, latents, off, frames, positions)) > 0.1
    frames[0, 4:8] = False  # ... unless they are padding
    assert float(physical_loss(vqvae, latents, off, frames, positions)) == 0.0


def test_next_token_loss_predicts_the_following_sign_token():
    ids = torch.tensor([[[5, 5], [3, 3], [10, 20], [11, 21], [3, 3], [3, 3]]])  # text, <eos>, 2 signs, <eos>, <eos>
    logits = torch.full((1, 6, 2, 30), -10.0)
    for i in range(5):  # position i predicts the id at i + 1
        logits[0, i, 0, ids[0, i + 1, 0]] = logits[0, i, 1, ids[0, i + 1, 1]] = 10.0
    loss, accuracy, code_accuracy = next_token_loss(logits, ids, text_length=2, sign_lengths=torch.tensor([2]))
    assert float(loss) < 1e-6 and float(accuracy) == 1.0 == float(code_accuracy)
    logits[0, 0] = 0.0  # the text is not trained: its prediction does not count
    assert float(next_token_loss(logits, ids, 2, torch.tensor([2]))[0]) < 1e-6
    logits[0, 3, 1] = 0.0  # the first <eos> is trained
    loss, accuracy, code_accuracy = next_token_loss(logits, ids, 2, torch.tensor([2]))
    assert float(loss) > 0.5 and float(accuracy) == pytest.approx(5 / 6)  # 3 positions x 2 parts, one wrong
    assert float(code_accuracy) == 1.0  # ... the <eos>


# ------------------------------------------------------------------------------------------------ learning
STAGES = {
    "pretrain": dict(mask_text=True, latent_loss_weight=1.0, physical_loss_weight=1.0),
    "sft": dict(checkpoint_state_probability=1.0, latent_loss_weight=0.5, physical_loss_weight=0.5),
    "ar": dict(),
}


def _fit(toy, stage, lr, steps=25):
    _, vqvae, tokenizer, items = toy
    # poses the (random) decoder reproduces exactly from the codebook vectors of the tokens, so that L_phy can fall
    with torch.no_grad():
        items = [dict(i, poses=vqvae.decode([i["codes"][None, :, p] for p in range(3)])[0]) for i in items[:4]]
    model = make_model(
        tokenizer, vqvae, bidirectional=stage != "ar", sign_embedding="average" if stage == "pretrain" else "mop"
    )
    cfg = model.config
    sched = MaskedDiffusionScheduler(mask_token_id=cfg.mask_token_id, eos_token_id=cfg.eos_token_id)
    batch = MaDiSCollator(tokenizer, cfg, sign_canvas="fit" if stage == "ar" else "full")(items)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def evaluate():  # the same draws every time
        with torch.no_grad():
            return madis_lm_loss(
                model, batch, sched, vqvae, generator=torch.Generator().manual_seed(0), **STAGES[stage]
            )

    before = evaluate()
    for _ in range(steps):
        terms = madis_lm_loss(model, batch, sched, vqvae, **STAGES[stage])
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    return before, evaluate()


@pytest.mark.parametrize("stage", list(STAGES))
def test_losses_fall_on_a_batch_and_not_at_learning_rate_zero(toy, stage):
    before, after = _fit(toy, stage, lr=3e-3)
    assert float(after["loss"]) < 0.7 * float(before["loss"])
    for name in ("latent_loss", "physical_loss"):
        if name in before:
            assert float(after[name]) < float(before[name]), name
    assert set(before) >= (
        {"loss", "token_loss", "token_accuracy", "code_accuracy"}
        | ({"latent_loss", "physical_loss"} if stage != "ar" else set())
    )
    frozen_before, frozen_after = _fit(toy, stage, lr=0.0, steps=3)
    assert float(frozen_after["loss"]) == pytest.approx(float(frozen_before["loss"]))

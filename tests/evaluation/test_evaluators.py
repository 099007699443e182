"""Evaluator models: shapes, CTC decoding, save/load through the Auto classes, padding invariance, errors."""

import math

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel

from hf_sign.data.normalization import PoseNormalizer
from hf_sign.evaluation.evaluators import (
    PoseRecognizerConfig,
    PoseRecognizerModel,
    PoseRecognizerOutput,
    SignTextContrastiveConfig,
    SignTextContrastiveModel,
    SignTextContrastiveOutput,
    ctc_greedy_decode,
)

D = 6
VOCAB = ["<blank>", "<unk>", "A", "B", "C"]
TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, dropout=0.0)


def _recognizer(**kw):
    torch.manual_seed(0)
    model = PoseRecognizerModel(
        PoseRecognizerConfig(feature_dim=D, representation="toy", vocab=VOCAB, **{**TINY, **kw})
    )
    rng = np.random.default_rng(0)
    norm = PoseNormalizer.fit([rng.normal(2.0, 3.0, (20, D)).astype(np.float32)], representation="toy")
    model.set_normalizer(norm)
    return model.eval(), norm


def _contrastive():
    torch.manual_seed(0)
    vocab = SignTextContrastiveModel.build_vocab(["the big house", "you go", "eat!"])
    cfg = SignTextContrastiveConfig(
        feature_dim=D,
        text_vocab=vocab,
        text_hidden_size=16,
        text_num_hidden_layers=1,
        text_intermediate_size=32,
        projection_dim=8,
        **TINY,
    )
    model = SignTextContrastiveModel(cfg)
    model.pose_mean.fill_(1.0)
    model.pose_std.fill_(2.0)
    return model.eval()


def _batch(lengths=(10, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    poses = torch.randn(len(lengths), max(lengths), D, generator=g) * 3 + 2
    mask = torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]
    return poses * mask[..., None], mask


def test_recognizer_forward_shapes_and_loss_backward():
    model, _ = _recognizer()
    model.train()
    poses, mask = _batch((10, 7))
    labels = model.encode_targets([["A", "B"], ["C", "ZZZ"]])  # unknown gloss -> <unk>
    assert labels.tolist() == [[2, 3], [4, 1]]
    out = model(poses, attention_mask=mask, labels=labels)
    assert isinstance(out, PoseRecognizerOutput) and list(out.keys())[0] == "loss"
    assert out.logits.shape == (2, 5, len(VOCAB))  # ceil(10 / 2) steps
    assert out.output_mask.sum(1).tolist() == [5, 4]  # ceil(7 / 2)
    out.loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert isinstance(model(poses, mask, labels, return_dict=False), tuple)


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks():
    ids = torch.tensor([[2, 2, 0, 2, 3, 3, 0, 4], [4, 0, 4, 4, 2, 2, 2, 2]])
    logits = torch.nn.functional.one_hot(ids, 5).float()
    mask = torch.tensor([[True] * 8, [True] * 4 + [False] * 4])
    assert ctc_greedy_decode(logits, mask) == [[2, 2, 3, 4], [4, 4]]
    model, _ = _recognizer()
    assert model.decode(logits, mask) == [["A", "A", "B", "C"], ["C", "C"]]


def test_recognizer_save_load_roundtrip_auto_classes(tmp_path):
    model, norm = _recognizer(temporal_downsample=4)
    model.save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert "model.safetensors" in files and not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "hf_sign_pose_recognizer"
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, PoseRecognizerModel)
    assert loaded.config.vocab == VOCAB and loaded.config.target == "gloss" and loaded.config.temporal_downsample == 4
    torch.testing.assert_close(loaded.pose_mean, norm.mean)
    torch.testing.assert_close(loaded.pose_std, norm.std)
    poses, mask = _batch()
    torch.testing.assert_close(loaded(poses, mask).logits, model(poses, mask).logits)
    assert loaded.generate(poses, mask) == model.generate(poses, mask)


def test_contrastive_save_load_roundtrip_auto_classes(tmp_path):
    model = _contrastive()
    with torch.no_grad():
        model.logit_scale.fill_(1.234)
    model.save_pretrained(tmp_path)
    assert not any(p.suffix in (".bin", ".pt", ".pth") for p in tmp_path.iterdir())
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, SignTextContrastiveModel)
    assert loaded.config.text_vocab == model.config.text_vocab
    assert loaded.logit_scale.item() == pytest.approx(1.234)
    assert torch.equal(loaded.pose_mean, model.pose_mean) and torch.equal(loaded.pose_std, model.pose_std)
    poses, mask = _batch()
    torch.testing.assert_close(loaded.get_pose_embeddings(poses, mask), model.get_pose_embeddings(poses, mask))
    torch.testing.assert_close(
        loaded.get_text_embeddings(["you go", "eat"]), model.get_text_embeddings(["you go", "eat"])
    )


def test_contrastive_forward_loss_and_embeddings():
    model = _contrastive()
    model.train()
    poses, mask = _batch((10, 7, 4))
    ids, tmask = model.tokenize(["the big house", "you go", "the big house"])
    out = model(poses, mask, input_ids=ids, text_attention_mask=tmask)
    assert isinstance(out, SignTextContrastiveOutput) and list(out.keys())[0] == "loss"
    assert out.logits_per_pose.shape == (3, 3) and torch.equal(out.logits_per_text, out.logits_per_pose.t())
    torch.testing.assert_close(out.pose_embeds.norm(dim=-1), torch.ones(3))
    out.loss.backward()
    assert model.logit_scale.grad is not None and torch.isfinite(model.logit_scale.grad)
    # without texts: embeddings only
    assert model(poses, mask).loss is None
    emb = model.get_text_embeddings("you go")
    assert emb.shape == (1, 8)


def test_tokenizer_unknown_words_and_char_mode():
    model = _contrastive()
    ids, mask = model.tokenize(["The big DOG", "?"])
    unk = model.config.text_vocab.index("<unk>")
    vocab = model.config.text_vocab
    assert ids[0].tolist() == [vocab.index("the"), vocab.index("big"), unk]
    assert ids[1].tolist() == [unk, 0, 0] and mask[1].tolist() == [True, False, False]
    chars = SignTextContrastiveModel.build_vocab(["ab  c"], tokenizer="char")
    assert chars == ["<pad>", "<unk>", " ", "a", "b", "c"]


def test_padding_and_batching_do_not_change_results():
    rec, _ = _recognizer()
    clip = _contrastive()
    rng = np.random.default_rng(1)
    seqs = [rng.normal(0, 2, (n, D)).astype(np.float32) for n in (11, 4, 8)]
    together = clip.get_pose_embeddings(seqs)
    alone = torch.cat([clip.get_pose_embeddings([s]) for s in seqs])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    assert rec.generate(seqs, batch_size=2) == [rec.generate([s])[0] for s in seqs]
    # padded array + mask == list of sequences
    padded = np.zeros((3, 11, D), np.float32)
    mask = np.zeros((3, 11), bool)
    for i, s in enumerate(seqs):
        padded[i, : len(s)], mask[i, : len(s)] = s, True
    torch.testing.assert_close(clip.get_pose_embeddings(padded, mask), together, rtol=1e-4, atol=1e-5)


def test_normalizer_travels_with_model():
    model, norm = _recognizer()
    x = torch.randn(2, 5, D)
    torch.testing.assert_close(model.normalize_poses(x), norm.normalize(x))
    back = model.get_normalizer()
    assert isinstance(back, PoseNormalizer) and back.config.representation == "toy"
    torch.testing.assert_close(back.mean, norm.mean)
    with pytest.raises(ValueError, match="feature_dim"):
        model.set_normalizer(PoseNormalizer(feature_dim=D + 1))


def test_loss_decreases_over_a_few_steps():
    model, _ = _recognizer()
    model.train()
    poses, mask = _batch((12, 12, 10, 9), seed=3)
    labels = model.encode_targets([["A", "B"], ["C"], ["B", "A", "C"], ["A"]])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = model(poses, mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]

    clip = _contrastive().train()
    ids, tmask = clip.tokenize(["the big house", "you go", "eat", "big"])
    opt = torch.optim.Adam(clip.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = clip(poses, mask, input_ids=ids, text_attention_mask=tmask).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_retrieval_ties_between_distinct_texts_count_against():
    """Texts that all embed alike (e.g. every held-out word an unknown token) retrieve nothing, not everything."""
    text_emb = torch.ones(4, 8)
    m = SignTextContrastiveModel.retrieval_metrics(torch.randn(4, 8), text_emb, ["a", "b", "c", "d"], ks=(1, 4))
    assert m["R@1"] == 0.0 and m["R@4"] == 100.0


def test_retrieval_metrics_handle_duplicate_texts():
    texts = ["a", "b", "a", "c"]
    emb = torch.eye(4)[[0, 1, 0, 2]]
    text_emb = torch.eye(4)[[0, 1, 0, 2]]
    m = SignTextContrastiveModel.retrieval_metrics(emb, text_emb, texts)
    assert m == {"R@1": 100.0, "R@5": 100.0, "num_candidates": 3}
    wrong = SignTextContrastiveModel.retrieval_metrics(text_emb[[1, 2, 1, 0]], text_emb, texts, ks=(1,))
    assert wrong["R@1"] == 0.0


def test_bad_inputs_raise_value_errors():
    rec, _ = _recognizer()
    clip = _contrastive()
    with pytest.raises(ValueError, match=r"`poses`.*feature dim 5.*feature_dim=6"):
        rec.generate(torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match=r"`poses\[1\]`.*feature dim 7"):
        clip.get_pose_embeddings([np.zeros((3, D)), np.zeros((3, 7))])
    with pytest.raises(ValueError, match=r"`poses`.*feature dim 5"):
        rec(torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match="empty batch"):
        rec.generate([])
    with pytest.raises(ValueError, match="empty batch"):
        clip.get_pose_embeddings(torch.zeros(0, 4, D))
    with pytest.raises(ValueError, match="`attention_mask` row 1"):
        clip.get_pose_embeddings(torch.zeros(2, 4, D), torch.tensor([[True] * 4, [False] * 4]))
    bad = torch.zeros(1, 4, D)
    bad[0, 2, 1] = math.nan
    with pytest.raises(ValueError, match="frame 2"):
        rec.generate(bad)
    with pytest.raises(ValueError, match="CTC blank"):
        rec(torch.zeros(1, 4, D), labels=torch.tensor([[0, 2]]))
    with pytest.raises(ValueError, match="texts"):
        clip.get_text_embeddings([])
    with pytest.raises(ValueError, match="vocab"):
        PoseRecognizerConfig(vocab=["A", "B"])
    with pytest.raises(ValueError, match="target"):
        PoseRecognizerConfig(target="phonemes")
    with pytest.raises(ValueError, match="text_tokenizer"):
        SignTextContrastiveConfig(text_tokenizer="bpe")

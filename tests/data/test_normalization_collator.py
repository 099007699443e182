import numpy as np
import pytest
import torch

from hf_sign.data.collator import PoseCollator
from hf_sign.data.normalization import PoseNormalizer


def _sequences(seed=0, dim=7):
    rng = np.random.default_rng(seed)
    seqs = [rng.normal(3.0, 2.0, size=(n, dim)).astype(np.float32) for n in (5, 9, 3)]
    seqs[0][:, 2] = 1.5  # a constant feature: std floors at eps
    return seqs


def test_normalizer_fit_statistics_match_numpy():
    seqs = _sequences()
    norm = PoseNormalizer.fit(seqs, representation="toy")
    allf = np.concatenate(seqs).astype(np.float64)
    np.testing.assert_allclose(norm.mean.numpy(), allf.mean(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(norm.std.numpy(), np.maximum(allf.std(0), 1e-4), rtol=1e-5, atol=1e-6)
    assert int(norm.num_frames_fitted) == 17 and norm.config.representation == "toy"
    z = norm.normalize(np.concatenate(seqs))
    np.testing.assert_allclose(z.mean(0)[[0, 1, 3]], 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(0)[[0, 1, 3]], 1.0, atol=1e-4)


def test_normalizer_inverse_numpy_and_torch():
    seqs = _sequences()
    norm = PoseNormalizer.fit(seqs)
    x = seqs[1]
    np.testing.assert_allclose(norm.denormalize(norm.normalize(x)), x, atol=1e-5)
    xt = torch.from_numpy(x)
    out = norm.denormalize(norm.normalize(xt))
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, xt, atol=1e-5, rtol=0)


def test_normalizer_save_load_exact_round_trip(tmp_path):
    norm = PoseNormalizer.fit(_sequences(), representation="toy", eps=1e-3)
    norm.save_pretrained(tmp_path / "norm")
    files = sorted(p.name for p in (tmp_path / "norm").iterdir())
    assert "config.json" in files and any(f.endswith(".safetensors") for f in files)
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    loaded = PoseNormalizer.from_pretrained(tmp_path / "norm")
    assert torch.equal(loaded.mean, norm.mean) and torch.equal(loaded.std, norm.std)
    assert loaded.config.eps == 1e-3 and loaded.config.representation == "toy" and loaded.is_fitted
    x = _sequences(seed=1)[0]
    assert np.array_equal(loaded.normalize(x), norm.normalize(x))


def test_normalizer_bad_input():
    with pytest.raises(ValueError, match="empty"):
        PoseNormalizer.fit([])
    with pytest.raises(ValueError, match=r"sequences\[1\]"):
        PoseNormalizer.fit([np.zeros((2, 3)), np.zeros((2, 4))])
    bad = np.zeros((4, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="frame 2"):
        PoseNormalizer.fit([bad])
    norm = PoseNormalizer.fit([np.ones((2, 3))])
    with pytest.raises(ValueError, match="feature_dim=3"):
        norm.normalize(np.zeros((2, 4)))


def test_collator_pads_and_masks():
    seqs = _sequences()
    samples = [{"poses": s, "text": f"t{i}", "gloss": ["A"] * i, "fps": 24.0} for i, s in enumerate(seqs)]
    batch = PoseCollator(pad_value=-7.0)(samples)
    assert batch["poses"].shape == (3, 9, 7)
    assert batch["lengths"].tolist() == [5, 9, 3]
    assert batch["attention_mask"].dtype == torch.bool
    assert batch["attention_mask"].sum(1).tolist() == [5, 9, 3]
    assert not batch["attention_mask"][0, 5:].any() and batch["attention_mask"][0, :5].all()
    assert torch.all(batch["poses"][2, 3:] == -7.0)
    torch.testing.assert_close(batch["poses"][0, :5], torch.from_numpy(seqs[0]))
    assert batch["text"] == ["t0", "t1", "t2"] and batch["gloss"][2] == ["A", "A"]
    assert batch["fps"].tolist() == [24.0, 24.0, 24.0]


def test_collator_multiple_normalizer_and_limits():
    seqs = _sequences()
    norm = PoseNormalizer.fit(seqs)
    batch = PoseCollator(normalizer=norm, pad_to_multiple_of=4)([{"poses": s} for s in seqs])
    assert batch["poses"].shape[1] == 12
    np.testing.assert_allclose(batch["poses"][1, :9].numpy(), norm.normalize(seqs[1]), atol=1e-6)
    with pytest.raises(ValueError, match="max_frames=4"):
        PoseCollator(max_frames=4)([{"poses": s} for s in seqs])
    cut = PoseCollator(max_frames=4, truncate=True)([{"poses": s} for s in seqs])
    assert cut["lengths"].tolist() == [4, 4, 3]
    with pytest.raises(ValueError, match=r"has 5 features; .samples\[0\]. has 7"):
        PoseCollator()([{"poses": np.zeros((2, 7))}, {"poses": np.zeros((2, 5))}])
    with pytest.raises(ValueError, match="no `poses`"):
        PoseCollator()([{"text": "x"}])
    with pytest.raises(ValueError, match="empty"):
        PoseCollator()([])


def test_rebuilt_corpus_is_not_served_from_a_stale_cache(tmp_path):
    """`load_dataset(DIR)` must see a corpus rebuilt in place (datasets caches by folder name + card)."""
    import datasets

    from hf_sign.data.io import save_corpus
    from hf_sign.data.schema import make_sample, sign_features

    def rows(n):
        return [
            make_sample(id=str(i), text=f"s{i}", poses=np.full((3, 4), i, np.float32), fps=25, representation="toy")
            for i in range(n)
        ]

    out = tmp_path / "corpus"
    card = "---\nlicense: other\n---\n\n# toy\n"
    save_corpus({"train": rows(3), "test": rows(1)}, sign_features(4), out, card)
    assert len(datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))["train"]) == 3
    save_corpus({"train": rows(5), "test": rows(1)}, sign_features(4), out, card)
    again = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert len(again["train"]) == 5 and again["train"][4]["text"] == "s4"
    assert "num_examples: 5" in (out / "README.md").read_text()


def _numbered(lengths, dim=7):
    """Sequences whose every value names its sample, frame and feature (100 * sample + frame + feature / 10)."""
    return [
        (100.0 * i + np.arange(n)[:, None] + np.arange(dim)[None, :] / 10).astype(np.float32)
        for i, n in enumerate(lengths)
    ]


@pytest.mark.parametrize("as_tensor", [False, True])
def test_collator_truncation_padding_and_masks_by_value(as_tensor):
    """max_frames=4 with truncate, a normaliser and pad_to_multiple_of=3: the batch is built here by hand."""
    seqs = _numbered([5, 9, 3, 4])
    originals = [s.copy() for s in seqs]
    norm = PoseNormalizer.fit(_sequences())
    mean, std = norm.mean.numpy(), norm.std.numpy()
    spans = [[[0, 2], [2, 5]], [[0, 3], [3, 6], [6, 9]], [[0, 3]], [[1, 4]]]
    samples = [
        {"poses": torch.from_numpy(s) if as_tensor else s, "gloss_spans": sp, "fps": 25.0 - i, "id": f"s{i}"}
        for i, (s, sp) in enumerate(zip(seqs, spans))
    ]
    batch = PoseCollator(normalizer=norm, pad_value=-7.0, pad_to_multiple_of=3, max_frames=4, truncate=True)(samples)

    expected = np.full((4, 6, 7), -7.0, dtype=np.float32)  # longest kept length 4, rounded up to 6
    for i, s in enumerate(originals):
        kept = s[:4]  # the first max_frames frames, never the last
        expected[i, : len(kept)] = (kept - mean) / std  # normalised; the padding is not
    np.testing.assert_allclose(batch["poses"].numpy(), expected, rtol=1e-6, atol=1e-5)
    assert batch["lengths"].tolist() == [4, 4, 3, 4]
    assert batch["attention_mask"].tolist() == [[True] * 4 + [False] * 2] * 2 + [[True] * 3 + [False] * 3] + [
        [True] * 4 + [False] * 2
    ]
    # spans follow the cut: ends clipped to the kept frames, a gloss wholly after the cut keeps an empty span
    assert batch["gloss_spans"] == [[[0, 2], [2, 4]], [[0, 3], [3, 4], [4, 4]], [[0, 3]], [[1, 4]]]
    assert batch["fps"].tolist() == [25.0, 24.0, 23.0, 22.0] and batch["id"] == ["s0", "s1", "s2", "s3"]
    for s, o in zip(seqs, originals):  # the samples themselves are not modified
        np.testing.assert_array_equal(s, o)


def test_collator_max_frames_boundary_and_plain_padding_by_value():
    seqs = _numbered([4, 2])
    # exactly max_frames frames is allowed without truncate; one more is not
    batch = PoseCollator(max_frames=4, pad_value=0.5)([{"poses": s} for s in seqs])
    expected = np.full((2, 4, 7), 0.5, dtype=np.float32)
    expected[0], expected[1, :2] = seqs[0], seqs[1]
    np.testing.assert_array_equal(batch["poses"].numpy(), expected)
    assert batch["attention_mask"].tolist() == [[True] * 4, [True, True, False, False]]
    with pytest.raises(ValueError, match=r"samples\[0\].*5 frames > max_frames=4"):
        PoseCollator(max_frames=4)([{"poses": np.zeros((5, 7))}])
    # fields that only some samples carry are left out rather than half-filled
    mixed = PoseCollator(max_frames=3, truncate=True)(
        [{"poses": seqs[0], "fps": 24.0, "text": "a", "gloss_spans": [[0, 4]]}, {"poses": seqs[1], "text": "b"}]
    )
    assert "fps" not in mixed and "gloss_spans" not in mixed and mixed["text"] == ["a", "b"]

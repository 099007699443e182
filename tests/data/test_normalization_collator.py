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
        return [make_sample(id=str(i), text=f"s{i}", poses=np.full((3, 4), i, np.float32), fps=25, representation="toy") for i in range(n)]

    out = tmp_path / "corpus"
    card = "---\nlicense: other\n---\n\n# toy\n"
    save_corpus({"train": rows(3), "test": rows(1)}, sign_features(4), out, card)
    assert len(datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))["train"]) == 3
    save_corpus({"train": rows(5), "test": rows(1)}, sign_features(4), out, card)
    again = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert len(again["train"]) == 5 and again["train"][4]["text"] == "s4"
    assert "num_examples: 5" in (out / "README.md").read_text()

"""Sign-SALD's training collators, by value: padding of cached latents, text states and alignment targets, and
random windows of the VAE stage."""

from __future__ import annotations

import torch

from hf_sign.data.collator import PoseCollator
from hf_sign.training.sign_sald_data import LatentCollator, RandomCropCollator


def _latent_sample(n, length, seed, num_frames):
    g = torch.Generator().manual_seed(seed)
    return {
        "latent_mean": torch.randn(n, 2, 3, generator=g),
        "latent_std": torch.rand(n, 2, 3, generator=g),
        "text_states": torch.randn(length, 4, generator=g),
        "num_frames": num_frames,
        "attention_target": torch.rand(n, length, generator=g) > 0.5,
        "token_durations": torch.rand(length, generator=g) * 10,
        "token_order": torch.rand(length, generator=g),
    }


def test_latent_collator_pads_by_value():
    a, b = _latent_sample(3, 5, 0, num_frames=11), _latent_sample(1, 2, 1, num_frames=4)
    batch = LatentCollator()([a, b])
    assert batch["latent_mean"].shape == (2, 3, 2, 3) and batch["text_states"].shape == (2, 5, 4)
    torch.testing.assert_close(batch["latent_mean"][0], a["latent_mean"])
    torch.testing.assert_close(batch["latent_mean"][1, :1], b["latent_mean"])
    torch.testing.assert_close(batch["latent_std"][1, :1], b["latent_std"])
    assert (batch["latent_mean"][1, 1:] == 0).all() and (batch["latent_std"][1, 1:] == 0).all()
    assert batch["latent_mask"].tolist() == [[True, True, True], [True, False, False]]
    assert batch["num_frames"].tolist() == [11.0, 4.0]
    torch.testing.assert_close(batch["text_states"][1, :2], b["text_states"])
    assert (batch["text_states"][1, 2:] == 0).all()
    assert batch["text_mask"].tolist() == [[True] * 5, [True, True, False, False, False]]
    # alignment targets: padding targets nothing, padded tokens get 0 frames
    assert torch.equal(batch["attention_target"][0], a["attention_target"])
    assert torch.equal(batch["attention_target"][1, :1, :2], b["attention_target"])
    assert not batch["attention_target"][1, 1:].any() and not batch["attention_target"][1, :, 2:].any()
    for key in ("token_durations", "token_order"):
        torch.testing.assert_close(batch[key][1, :2], b[key])
        assert (batch[key][1, 2:] == 0).all()


def test_latent_collator_tokenizes_for_a_trainable_encoder():
    class Tokenizer:
        def __call__(self, texts, padding, return_tensors):
            assert padding == "longest" and return_tensors == "pt"
            ids = [[1] + [len(w) for w in t.split()] + [2] for t in texts]
            width = max(len(i) for i in ids)
            return {"input_ids": torch.tensor([i + [0] * (width - len(i)) for i in ids]),
                    "attention_mask": torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids])}

    keep = ("latent_mean", "latent_std", "num_frames")
    samples = [{k: v for k, v in _latent_sample(2, 3, i, 8).items() if k in keep} for i in range(2)]
    samples[0]["text"], samples[1]["text"] = "a bb ccc", "dddd"
    batch = LatentCollator(tokenizer=Tokenizer())(samples)
    assert batch["input_ids"].tolist() == [[1, 1, 2, 3, 2], [1, 4, 2, 0, 0]]
    assert batch["text_mask"].tolist() == [[True] * 5, [True, True, True, False, False]]
    assert "text_states" not in batch


def test_random_crop_takes_windows_of_the_sequences():
    poses = [torch.arange(n * 3, dtype=torch.float32).reshape(n, 3) for n in (20, 6)]
    samples = [{"poses": p.numpy(), "num_frames": len(p)} for p in poses]
    collate = RandomCropCollator(PoseCollator(pad_to_multiple_of=4), crop_frames=8)
    torch.manual_seed(0)
    starts = set()
    for _ in range(200):
        batch = collate(samples)
        assert batch["poses"].shape == (2, 8, 3)
        start = int(batch["poses"][0, 0, 0]) // 3
        starts.add(start)
        torch.testing.assert_close(batch["poses"][0], poses[0][start : start + 8])  # one contiguous window
        torch.testing.assert_close(batch["poses"][1, :6], poses[1])  # shorter sequences are kept whole
        assert batch["attention_mask"].tolist() == [[True] * 8, [True] * 6 + [False] * 2]
    assert starts == set(range(13))  # every window of the 20 frames, the last one included
    whole = RandomCropCollator(PoseCollator(pad_to_multiple_of=4), crop_frames=0)(samples)
    assert whole["poses"].shape == (2, 20, 3)

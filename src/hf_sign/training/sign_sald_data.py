"""Sign-SALD's training data (Shen et al., Sec. 2): the stages' collators and the `ldm` stage's cached inputs.

* Stage `vae`: `RandomCropCollator` cuts sequences to random windows before the `PoseCollator` pads them.
* Stage `ldm`: `encode_latents` caches every train row's frozen-VAE posterior mean and std, `encode_texts` the frozen
  text encoder's states per distinct sentence, and `LatentCollator` pads these (or tokenises the text, with a
  trainable encoder) into batches for `sign_sald_losses.latent_denoiser_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

import torch

from ..data.collator import PoseCollator
from ..data.normalization import PoseNormalizer
from ..models.sign_sald import SkeletonVAE
from ..models.text_encoders import encode_prompts

__all__ = ["RandomCropCollator", "LatentCollator", "encode_latents", "encode_texts"]


# ================================================================================================ 1. stage `vae`
@dataclass
class RandomCropCollator:
    """Cuts every sequence longer than `crop_frames` to a random window (torch's RNG, seeded by the Trainer)."""

    collator: PoseCollator
    crop_frames: int = 0

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        if self.crop_frames > 0:
            cropped = []
            for s in samples:
                n = len(s["poses"])
                if n > self.crop_frames:
                    start = int(torch.randint(0, n - self.crop_frames + 1, ()))
                    s = {**s, "poses": s["poses"][start : start + self.crop_frames], "num_frames": self.crop_frames}
                cropped.append(s)
            samples = cropped
        return self.collator(samples)


# ================================================================================================ 2. stage `ldm`
@dataclass
class LatentCollator:
    """Pads cached latents (and text states or token ids) into an `ldm` batch.

    Returns `latent_mean`, `latent_std` (B, N'_max, J', C), `latent_mask` (B, N'_max), `num_frames` (B,), and either
    `text_states` (B, L, D) + `text_mask` (frozen encoder) or `input_ids` + `text_mask` (trainable encoder); with
    the alignment options also `attention_target` (B, N'_max, L_max), `token_durations` and `token_order` (B, L_max).
    """

    tokenizer: Any = None

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        n = max(s["latent_mean"].shape[0] for s in samples)
        b = len(samples)
        shape = (b, n) + tuple(samples[0]["latent_mean"].shape[1:])
        mean, std = torch.zeros(shape), torch.zeros(shape)
        mask = torch.zeros(b, n, dtype=torch.bool)
        for i, s in enumerate(samples):
            k = s["latent_mean"].shape[0]
            mean[i, :k], std[i, :k], mask[i, :k] = s["latent_mean"], s["latent_std"], True
        batch = {"latent_mean": mean, "latent_std": std, "latent_mask": mask,
                 "num_frames": torch.tensor([s["num_frames"] for s in samples], dtype=torch.float32)}
        if "attention_target" in samples[0]:  # (N'_i, L_i) bool -> (B, N'_max, L_max), padding targets nothing
            length = max(s["attention_target"].shape[1] for s in samples)
            batch["attention_target"] = torch.zeros(b, n, length, dtype=torch.bool)
            for i, s in enumerate(samples):
                rows, cols = s["attention_target"].shape
                batch["attention_target"][i, :rows, :cols] = s["attention_target"]
        for key in ("token_durations", "token_order"):  # (L_i,) -> (B, L_max), padding tokens get 0
            if key in samples[0]:
                batch[key] = torch.zeros(b, max(len(s[key]) for s in samples))
                for i, s in enumerate(samples):
                    batch[key][i, : len(s[key])] = s[key]
        if "text_states" in samples[0]:
            length = max(s["text_states"].shape[0] for s in samples)
            states = torch.zeros(b, length, samples[0]["text_states"].shape[1])
            tmask = torch.zeros(b, length, dtype=torch.bool)
            for i, s in enumerate(samples):
                states[i, : len(s["text_states"])], tmask[i, : len(s["text_states"])] = s["text_states"], True
            batch.update(text_states=states, text_mask=tmask)
        else:
            enc = self.tokenizer([s["text"] for s in samples], padding="longest", return_tensors="pt")
            batch.update(input_ids=enc["input_ids"], text_mask=enc["attention_mask"].bool())
        return batch


@torch.no_grad()
def encode_latents(vae: SkeletonVAE, normalizer: PoseNormalizer, rows, batch_size: int, poses=None) -> None:
    """Cache each row's VAE posterior mean/std (N'_i, J', C) in the row (sorted batches: little padding).

    `poses`, when given, is the sequence of rows holding the poses (e.g. the split's `PoseTable`, read a batch at a
    time), row `i` of it matching `rows[i]`: `rows` then need not hold poses, so the stage never has every pose in
    memory at once."""
    collate = PoseCollator(normalizer=normalizer, pad_to_multiple_of=vae.temporal_downsample_factor)
    device = next(vae.parameters()).device
    source = rows if poses is None else poses
    order = sorted(range(len(rows)), key=lambda i: rows[i]["num_frames"])
    for k in range(0, len(order), batch_size):
        idx = order[k : k + batch_size]
        batch = collate([source[i] for i in idx])
        dist = vae.encode(batch["poses"].to(device), attention_mask=batch["attention_mask"].to(device)).latent_dist
        for j, i in enumerate(idx):
            n = -(-rows[i]["num_frames"] // vae.temporal_downsample_factor)
            rows[i]["latent_mean"] = dist.mean[j, :n].float().cpu()
            rows[i]["latent_std"] = dist.std[j, :n].float().cpu()


@torch.no_grad()
def encode_texts(text_encoder, tokenizer, rows, batch_size: int = 64) -> None:
    """Cache frozen text-encoder states (L_i, D) per distinct sentence in the rows."""
    texts = sorted({r["text"] for r in rows})
    cache = {}
    for k in range(0, len(texts), batch_size):
        chunk = texts[k : k + batch_size]
        states, mask = encode_prompts(text_encoder, tokenizer, chunk)
        for j, t in enumerate(chunk):
            cache[t] = states[j, mask[j]].float().cpu()
    for r in rows:
        r["text_states"] = cache[r["text"]]

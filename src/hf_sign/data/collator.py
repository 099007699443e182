"""Batching variable-length pose sequences for `transformers.Trainer` / `torch.utils.data.DataLoader`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from .normalization import PoseNormalizer

# Fields passed through as Python lists (strings, nested lists): the batch keeps every sample's metadata.
_PASSTHROUGH = ("id", "text", "prompt", "gloss", "gloss_spans", "language", "signer")


@dataclass
class PoseCollator:
    """Pads a list of samples (hf-sign schema rows) into a batch.

    Returns a dict with
    - `poses` (`torch.FloatTensor` of shape (batch, max_frames, feature_dim)): padded with `pad_value`;
    - `attention_mask` (`torch.BoolTensor` of shape (batch, max_frames)): True on real frames;
    - `lengths` (`torch.LongTensor` of shape (batch,));
    - `fps` (`torch.FloatTensor` of shape (batch,)) when the samples carry it;
    - the metadata fields present in the samples (`id`, `text`, `prompt`, `gloss`, `gloss_spans`, ...) as lists.

    Args:
        normalizer (`PoseNormalizer`, *optional*): applied to real frames before padding.
        pad_value (`float`, *optional*, defaults to 0.0): value written into padded frames.
        pad_to_multiple_of (`int`, *optional*, defaults to 1): round the padded length up to a multiple
            (models that downsample time, such as Sign-SALD's VAE, need it).
        max_frames (`int`, *optional*): longest allowed sequence. Longer samples raise a `ValueError`
            unless `truncate=True`, so frames are never dropped without the caller asking for it.
        truncate (`bool`, *optional*, defaults to False): keep the first `max_frames` frames of longer sequences.
            Their `gloss_spans` (frame spans `[start, end)`) are clipped to the kept frames, so every span stays
            inside its sequence; a gloss that starts after the cut keeps an empty span `[max_frames, max_frames)`.
    """

    normalizer: Optional[PoseNormalizer] = None
    pad_value: float = 0.0
    pad_to_multiple_of: int = 1
    max_frames: Optional[int] = None
    truncate: bool = False

    def __post_init__(self):
        if self.pad_to_multiple_of < 1:
            raise ValueError(f"`pad_to_multiple_of` must be >= 1; got {self.pad_to_multiple_of}.")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"`max_frames` must be >= 1; got {self.max_frames}.")

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        if len(samples) == 0:
            raise ValueError("`samples` is empty; the collator needs at least one sample.")
        seqs, spans = [], []
        for i, sample in enumerate(samples):
            if "poses" not in sample:
                raise ValueError(f"`samples[{i}]` has no `poses` field.")
            poses = sample["poses"]
            poses = (
                poses.float()
                if isinstance(poses, torch.Tensor)
                else torch.as_tensor(np.asarray(poses, dtype=np.float32))
            )
            if poses.ndim != 2 or poses.shape[0] == 0:
                raise ValueError(
                    f"`samples[{i}]['poses']` must have shape (num_frames > 0, feature_dim); got {tuple(poses.shape)}."
                )
            if seqs and poses.shape[1] != seqs[0].shape[1]:
                raise ValueError(
                    f"`samples[{i}]['poses']` has {poses.shape[1]} features; `samples[0]` has {seqs[0].shape[1]}."
                )
            if self.max_frames is not None and poses.shape[0] > self.max_frames:
                if not self.truncate:
                    raise ValueError(
                        f"`samples[{i}]['poses']` has {poses.shape[0]} frames > max_frames={self.max_frames}; "
                        "raise max_frames or pass truncate=True."
                    )
                poses = poses[: self.max_frames]
                if sample.get("gloss_spans") is not None:
                    cut = self.max_frames
                    spans.append((i, [[min(int(a), cut), min(int(b), cut)] for a, b in sample["gloss_spans"]]))
            if self.normalizer is not None:
                poses = self.normalizer.normalize(poses)
            seqs.append(poses)

        lengths = torch.tensor([s.shape[0] for s in seqs], dtype=torch.long)
        max_len = int(lengths.max())
        m = self.pad_to_multiple_of
        max_len = ((max_len + m - 1) // m) * m
        batch = torch.full((len(seqs), max_len, seqs[0].shape[1]), float(self.pad_value), dtype=torch.float32)
        for i, s in enumerate(seqs):
            batch[i, : s.shape[0]] = s
        mask = torch.arange(max_len)[None, :] < lengths[:, None]

        out: Dict[str, Any] = {"poses": batch, "attention_mask": mask, "lengths": lengths}
        if all("fps" in s for s in samples):
            out["fps"] = torch.tensor([float(s["fps"]) for s in samples], dtype=torch.float32)
        for key in _PASSTHROUGH:
            if all(key in s for s in samples):
                out[key] = [s[key] for s in samples]
        for i, clipped in spans if "gloss_spans" in out else ():
            out["gloss_spans"][i] = clipped
        return out

"""The evaluators' training data: loading the splits, the two stages' collators and the tempo augmentation.

* `load_splits` / `load_evaluator_data`: an hf-sign dataset as in-memory `PoseRows` per split, sequences over
  `data.max_frames` left out, and the train split's `PoseNormalizer`.
* `RecognizerCollator` (poses + CTC labels) and `ContrastiveCollator` (poses + tokenised texts).
* `time_stretch`: the random tempo change the Trainers apply to training batches (`*_training.time_stretch`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..data.collator import PoseCollator
from ..data.io import load_corpus, split_rows
from ..data.normalization import PoseNormalizer
from ..evaluation.evaluators import PoseRecognizerModel, SignTextContrastiveModel
from .trainer_utils import PoseRows

__all__ = ["load_splits", "load_evaluator_data", "RecognizerCollator", "ContrastiveCollator", "time_stretch"]

logger = logging.getLogger(__name__)


# ================================================================================================ 1. splits
def load_splits(dataset_dir: str) -> Dict[str, PoseRows]:
    """Load an hf-sign dataset (`hf_sign.data.io.load_corpus`) into in-memory `PoseRows` per split (every column: the
    recogniser reads `gloss`, the final metrics the `test` split)."""
    dd = load_corpus(dataset_dir)
    if "train" not in dd or len(dd["train"]) == 0:
        raise ValueError(f"Dataset {dataset_dir!s} has no non-empty `train` split; evaluators train on it.")
    return {name: PoseRows(split_rows(ds, name) if len(ds) else []) for name, ds in dd.items()}


def _filter_long(split: PoseRows, max_frames: int, name: str) -> Tuple[PoseRows, int]:
    kept = [r for r in split.rows if len(r["poses"]) <= max_frames]
    dropped = len(split.rows) - len(kept)
    if dropped:
        logger.warning("%d %s sample(s) longer than data.max_frames=%d are left out.", dropped, name, max_frames)
    return PoseRows(kept), dropped


def load_evaluator_data(dataset_dir: str, max_frames: int) -> Dict[str, Any]:
    """What both stages read: `train` and `validation` rows without sequences over `max_frames` (left out, never cut;
    `validation` is `None` when empty), the splits scored at the end (`eval_splits`: validation, test), the train
    split's `normalizer`, `feature_dim`, `representation` and the count of `skipped` train samples."""
    splits = load_splits(dataset_dir)
    train, skipped = _filter_long(splits["train"], max_frames, "train")
    if len(train) == 0:
        raise ValueError(f"No train sample has <= data.max_frames={max_frames} frames.")
    validation = splits.get("validation")
    if validation is not None:
        validation, _ = _filter_long(validation, max_frames, "validation")
    validation = validation if validation is not None and len(validation) else None
    feature_dim = int(train.rows[0]["poses"].shape[1])
    representation = str(train.rows[0]["representation"])
    return {
        "train": train,
        "validation": validation,
        "eval_splits": {k: v for k, v in (("validation", validation), ("test", splits.get("test"))) if v},
        "normalizer": PoseNormalizer.fit(
            (r["poses"] for r in train.rows), feature_dim=feature_dim, representation=representation
        ),
        "feature_dim": feature_dim,
        "representation": representation,
        "skipped": skipped,
    }


# ================================================================================================ 2. collators
@dataclass
class RecognizerCollator:
    """`PoseCollator` batch + `labels` (target token ids padded with -100) for the recogniser."""

    model: PoseRecognizerModel
    max_frames: Optional[int] = None

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        batch = PoseCollator(max_frames=self.max_frames)(samples)
        tokens = [PoseRecognizerModel.sample_tokens(s, self.model.config.target) for s in samples]
        labels = self.model.encode_targets(tokens)
        return {"poses": batch["poses"], "attention_mask": batch["attention_mask"], "labels": labels}


@dataclass
class ContrastiveCollator:
    """`PoseCollator` batch + tokenised texts (`input_ids`, `text_attention_mask`)."""

    model: SignTextContrastiveModel
    max_frames: Optional[int] = None

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        batch = PoseCollator(max_frames=self.max_frames)(samples)
        input_ids, text_mask = self.model.tokenize([s["text"] for s in samples])
        return {
            "poses": batch["poses"],
            "attention_mask": batch["attention_mask"],
            "input_ids": input_ids,
            "text_attention_mask": text_mask,
        }


# ================================================================================================ 3. augmentation
def time_stretch(poses: torch.Tensor, mask: torch.Tensor, amount: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resample each sequence to `length * f` frames, f ~ U[1 - amount, 1 + amount] (linear interpolation).

    Generated poses are rarely exactly as fast as the ground truth; a recogniser that has seen tempo changes
    reads them more fairly.
    """
    lengths = mask.long().sum(1).tolist()
    factors = 1.0 + amount * (2 * torch.rand(len(lengths)) - 1)
    new_lengths = [max(1, int(round(n * float(f)))) for n, f in zip(lengths, factors)]
    out = poses.new_zeros(len(lengths), max(new_lengths), poses.shape[-1])
    for i, (n, m) in enumerate(zip(lengths, new_lengths)):
        seq = poses[i, :n].t()[None]  # (1, D, n)
        if n > 1:
            out[i, :m] = F.interpolate(seq, size=m, mode="linear", align_corners=True)[0].t()
        else:
            out[i, :m] = seq[0].t().expand(m, -1)
    positions = torch.arange(out.shape[1], device=mask.device)[None]
    return out, positions < torch.tensor(new_lengths, device=mask.device)[:, None]

"""Sign-MExD's training data: the rows it can learn from, the per-gloss durations the pipeline's length model keeps,
and the collator.

* `glossed_rows`: the rows with a gloss sequence (Sign-MExD is conditioned on glosses); the others are counted and
  reported, never dropped silently.
* `estimate_gloss_durations`: the paper gives no length model (the frame count `N` of eq. 1 is an input), so the
  pipeline predicts it from the glosses with statistics of the train split: with `gloss_spans` in every glossed row,
  each gloss's mean span length, plus the frames outside the spans fitted (least squares) as
  `length_offset + transition_frames * (num_glosses - 1)`; without alignments, each gloss's mean share of its
  sentence's frames (`num_frames / num_glosses`) and no offset. Glosses the split never has get
  `default_gloss_duration`, the mean over every gloss occurrence.
* `GlossPoseCollator`: standardised, zero-padded poses (`PoseCollator`) plus the gloss token ids
  (`pipeline_sign_mexd.tokenize_glosses`, the pipeline's own tokenisation).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from ..data.collator import PoseCollator
from ..data.normalization import PoseNormalizer
from ..data.pose_table import PoseTable
from ..pipelines.pipeline_sign_mexd import tokenize_glosses

logger = logging.getLogger(__name__)

__all__ = ["GlossDurations", "glossed_rows", "estimate_gloss_durations", "GlossPoseCollator"]


def glossed_rows(
    rows: Sequence[Dict[str, Any]], split: str = "train", warn: bool = True
) -> Tuple[Sequence[Dict[str, Any]], int]:
    """`(rows with at least one gloss, number left out)`; a warning names how many were left out and one of them.

    A `PoseTable` is filtered on its `gloss` column (a `PoseTable` of the kept rows comes back; no pose is read),
    a list row by row."""
    if isinstance(rows, PoseTable):
        has = [bool(g) for g in rows.column("gloss")] if "gloss" in rows.columns else [False] * len(rows)
    else:
        has = [bool(r.get("gloss")) for r in rows]
    keep = [i for i, h in enumerate(has) if h]
    kept = rows.select(keep) if isinstance(rows, PoseTable) else [rows[i] for i in keep]
    missing = len(has) - len(keep)
    if missing and warn:
        first = rows[has.index(False)]
        logger.warning(
            "%d %s sample(s) have no gloss sequence and are left out of Sign-MExD's training (e.g. %r).",
            missing, split, first.get("id"),
        )
    return kept, missing


@dataclass
class GlossDurations:
    """The length model the pipeline keeps in its config (frames at the corpus' frame rate).

    Args:
        gloss_durations (`Dict[str, float]`): mean frames of each gloss of the train split.
        default_gloss_duration (`float`): frames of a gloss the split does not have (the mean over all occurrences).
        length_offset (`float`): frames outside every gloss (lead-in and lead-out).
        transition_frames (`float`): frames between two consecutive glosses.
    """

    gloss_durations: Dict[str, float]
    default_gloss_duration: float
    length_offset: float = 0.0
    transition_frames: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _aligned(row: Dict[str, Any]) -> bool:
    spans = row.get("gloss_spans")
    return bool(spans) and len(spans) == len(row["gloss"])


def estimate_gloss_durations(rows: Sequence[Dict[str, Any]]) -> GlossDurations:
    """The per-gloss durations of `rows` (each with `gloss`, `num_frames` and, where known, `gloss_spans`).

    Raises a `ValueError` when no row has a gloss.
    """
    rows = [r for r in rows if r.get("gloss")]
    if not rows:
        raise ValueError("No row has a `gloss` sequence; Sign-MExD's length model needs glossed training samples.")
    occurrences: Dict[str, List[float]] = defaultdict(list)
    offset = transition = 0.0
    if all(_aligned(r) for r in rows):
        # 1. every gloss's span lengths; the frames outside the spans as offset + transition * (k - 1)
        residual, gaps = [], []
        for r in rows:
            lengths = [float(b - a) for a, b in r["gloss_spans"]]
            for g, n in zip(r["gloss"], lengths):
                occurrences[g].append(n)
            residual.append(float(r["num_frames"]) - sum(lengths))
            gaps.append(len(lengths) - 1.0)
        design = np.stack([np.ones(len(gaps)), np.asarray(gaps)], 1)
        if np.ptp(gaps) > 0:
            offset, transition = (float(v) for v in np.linalg.lstsq(design, np.asarray(residual), rcond=None)[0])
        if transition < 0 or np.ptp(gaps) == 0:  # one sentence length only, or no positive pause: all in the offset
            offset, transition = float(np.mean(residual)), 0.0
    else:
        # 2. no alignment: each gloss's share of its sentence
        for r in rows:
            share = float(r["num_frames"]) / len(r["gloss"])
            for g in r["gloss"]:
                occurrences[g].append(share)
    durations = {g: round(float(np.mean(v)), 3) for g, v in sorted(occurrences.items())}
    default = round(float(np.mean([n for v in occurrences.values() for n in v])), 3)
    return GlossDurations(durations, default, round(offset, 3), round(transition, 3))


@dataclass
class GlossPoseCollator:
    """Pads samples into a Sign-MExD batch.

    Returns `poses` (standardised, zero-padded; `(batch, frames, feature_dim)`), `attention_mask` (`(batch, frames)`,
    True on real frames), `lengths`, `input_ids` and `gloss_attention_mask` (`(batch, gloss_tokens)`), plus the
    `PoseCollator`'s metadata.

    Args:
        tokenizer (`PreTrainedTokenizerBase`): the gloss tokenizer.
        normalizer (`PoseNormalizer`): the train split's feature statistics.
    """

    tokenizer: Any
    normalizer: PoseNormalizer

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        batch = PoseCollator(normalizer=self.normalizer)(samples)
        ids, mask, _, _ = tokenize_glosses(self.tokenizer, [list(s["gloss"]) for s in samples])
        batch.update(input_ids=ids, gloss_attention_mask=mask)
        return batch

"""Stable Signer's pose prior bank: gloss -> K candidate clips cut from a corpus' training split.

Section 2.3 of the paper retrieves pose priors from "a rule-based stable pose prior database", one candidate per
expert. The bank is built from the training samples that have `gloss_spans`: every span is one instance of its
gloss. Per gloss, the instances are sorted by length and split into `num_experts` groups of (nearly) equal size;
expert `k`'s candidate is the most typical instance of group `k` (nearest to the group's mean after resampling to
the group's median length), kept with its original frames. Expert `k` therefore always means the same thing
across glosses (the k-th tempo quantile: expert 0 the briskest signing, the last the slowest), which is what lets
one gate serve every gloss. A gloss with fewer instances than experts repeats its instances in length order
(`duplicate` marks the repeats).

Stored next to the pipeline as an HF dataset: `pose_bank/config.json` (settings, the rest poses and the join
lengths) and `pose_bank/data/train-00000-of-00001.parquet` with one row per (gloss, expert): `gloss`, `expert`,
`sample_id`, `start`, `end`, `num_frames`, `duplicate`, `poses` (`(num_frames, feature_dim)` float32), so
`datasets.load_dataset("parquet", data_dir=".../pose_bank/data")` reads it like any Hub dataset.

Sentences are assembled by `join`: the rest pose blended into the first clip over `lead_in` frames, consecutive
clips joined by `transition_frames` in-between frames, the last clip blended into the rest pose over `lead_out`
frames; every blend follows the minimum-jerk profile (zero velocity and acceleration at both ends).
`join_clips` is the same join for any clip list (the gloss-concatenation baseline uses it too).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from diffusers import ConfigMixin, ModelMixin  # noqa: F401  (ModelMixin: diffusers finds the loading method by name)
from diffusers.configuration_utils import register_to_config
from tqdm.auto import tqdm

from .resample import minimum_jerk, resample_to_length

__all__ = ["PoseBank", "join_clips", "most_typical", "collect_gloss_instances"]

DATA_FILE = "data/train-00000-of-00001.parquet"


def _blend(start: np.ndarray, end: np.ndarray, tau: np.ndarray) -> np.ndarray:
    s = minimum_jerk(tau)[:, None].astype(np.float32)
    return (start[None] * (1 - s) + end[None] * s).astype(np.float32)


def join_clips(
    clips: Sequence[np.ndarray],
    rest_start: np.ndarray,
    rest_end: np.ndarray,
    lead_in: int,
    transition_frames: int,
    lead_out: int,
) -> np.ndarray:
    """Clips `(T_i, D)` joined into one sentence with minimum-jerk blends (module docstring); the length is
    `lead_in + sum(T_i) + (len(clips) - 1) * transition_frames + lead_out`."""
    if not len(clips):
        raise ValueError("`clips` is empty; a sentence needs at least one clip.")
    pieces: List[np.ndarray] = []
    last = rest_start
    for i, clip in enumerate(clips):
        k = lead_in if i == 0 else transition_frames
        if i == 0 and k:  # rest_start .. (first frame of the clip excluded)
            pieces.append(_blend(rest_start, clip[0], np.arange(k) / k))
        elif k:  # strictly between the two boundary frames
            pieces.append(_blend(last, clip[0], np.arange(1, k + 1) / (k + 1)))
        pieces.append(np.asarray(clip, dtype=np.float32))
        last = clip[-1]
    if lead_out:  # (last frame of the clip excluded) .. rest_end
        pieces.append(_blend(last, rest_end, np.arange(1, lead_out + 1) / lead_out))
    return np.concatenate(pieces).astype(np.float32)


def most_typical(clips: Sequence[np.ndarray]) -> int:
    """Index of the clip nearest (mean squared distance) to the mean of all clips resampled to the median length."""
    if len(clips) == 1:
        return 0
    length = max(1, int(round(float(np.median([c.shape[0] for c in clips])))))
    stack = np.stack([resample_to_length(c.astype(np.float64), length) for c in clips])
    return int(np.argmin(((stack - stack.mean(axis=0)) ** 2).mean(axis=(1, 2))))


def collect_gloss_instances(rows: Sequence[Dict[str, Any]], split: str = "train") -> Dict[str, Any]:
    """Every gloss instance of `rows` (`{gloss: [(sample_id, start, end, clip), ...]}`) and the join statistics:
    the median gap between spans, frames before the first and after the last span, the mean first and last frame.

    Rows without `gloss_spans` are skipped; a `ValueError` if none has them or if spans and glosses disagree.
    """
    instances: Dict[str, List[Tuple[str, int, int, np.ndarray]]] = {}
    gaps, heads, tails = [], [], []
    for r in rows:
        spans, gloss = r.get("gloss_spans"), r.get("gloss")
        if not spans:
            continue
        if gloss is None or len(spans) != len(gloss):
            raise ValueError(
                f"Sample {r['id']!r}: `gloss_spans` has {len(spans)} spans for "
                f"{None if gloss is None else len(gloss)} glosses."
            )
        for g, (a, b) in zip(gloss, spans):
            if not 0 <= a < b <= r["poses"].shape[0]:
                raise ValueError(
                    f"Sample {r['id']!r}: gloss span {[a, b]} of {g!r} is outside its {r['poses'].shape[0]} frames."
                )
            instances.setdefault(g, []).append((str(r["id"]), int(a), int(b), r["poses"][a:b]))
        gaps += [max(0, a2 - b1) for (_, b1), (a2, _) in zip(spans[:-1], spans[1:])]
        heads.append(spans[0][0])
        tails.append(r["poses"].shape[0] - spans[-1][1])
    if not instances:
        raise ValueError(f"No sample of split {split!r} has `gloss_spans`; the clips are cut with them.")

    def med(xs):
        return int(round(float(np.median(xs)))) if xs else 0

    return {
        "instances": instances,
        "transition_frames": med(gaps),
        "lead_in": med(heads),
        "lead_out": med(tails),
        "rest_start": np.mean([r["poses"][0] for r in rows], axis=0).astype(np.float32),
        "rest_end": np.mean([r["poses"][-1] for r in rows], axis=0).astype(np.float32),
    }


class PoseBank(ModelMixin, ConfigMixin):
    """Gloss -> `num_experts` candidate clips (module docstring). Build with `from_rows`; no trainable weights.

    Args:
        num_experts (`int`, *optional*, defaults to 4): candidates per gloss (`K`).
        feature_dim (`int`, *optional*, defaults to 133): pose width.
        representation (`str`, *optional*, defaults to `"smplx133"`): the skeleton of the poses.
        fps (`float`, *optional*, defaults to 24.0): frame rate of the clips.
        lead_in (`int`, *optional*, defaults to 0): frames from the rest pose into the first clip.
        transition_frames (`int`, *optional*, defaults to 0): frames between two clips.
        lead_out (`int`, *optional*, defaults to 0): frames from the last clip into the rest pose.
        rest_start (`List[float]`, *optional*): the mean first frame of the corpus (zeros if not given).
        rest_end (`List[float]`, *optional*): the mean last frame of the corpus (zeros if not given).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        num_experts: int = 4,
        feature_dim: int = 133,
        representation: str = "smplx133",
        fps: float = 24.0,
        lead_in: int = 0,
        transition_frames: int = 0,
        lead_out: int = 0,
        rest_start: Optional[List[float]] = None,
        rest_end: Optional[List[float]] = None,
    ):
        super().__init__()
        if num_experts < 1:
            raise ValueError(f"`num_experts` must be >= 1; got {num_experts}.")
        for name, v in (("lead_in", lead_in), ("transition_frames", transition_frames), ("lead_out", lead_out)):
            if v < 0:
                raise ValueError(f"`{name}` must be >= 0; got {v}.")
        zeros = [0.0] * feature_dim
        self.rest_start = np.asarray(rest_start if rest_start is not None else zeros, dtype=np.float32)
        self.rest_end = np.asarray(rest_end if rest_end is not None else zeros, dtype=np.float32)
        self.records: List[Dict[str, Any]] = []  # one per (gloss, expert), clip in "poses"
        self._index: Dict[str, List[int]] = {}

    # ------------------------------------------------------------------------------------------ building
    @classmethod
    def from_rows(
        cls,
        rows: Sequence[Dict[str, Any]],
        num_experts: int = 4,
        fps: float = 24.0,
        representation: str = "smplx133",
        show_progress: bool = True,
    ) -> "PoseBank":
        """Build the bank from training rows (`id`, `gloss`, `gloss_spans`, `poses`)."""
        stats = collect_gloss_instances(rows)
        bank = cls(
            num_experts=num_experts,
            feature_dim=int(stats["rest_start"].shape[0]),
            representation=representation,
            fps=float(fps),
            lead_in=stats["lead_in"],
            transition_frames=stats["transition_frames"],
            lead_out=stats["lead_out"],
            rest_start=stats["rest_start"].tolist(),
            rest_end=stats["rest_end"].tolist(),
        )
        records = []
        for gloss in tqdm(sorted(stats["instances"]), desc="pose bank", disable=not show_progress):
            inst = sorted(stats["instances"][gloss], key=lambda x: (x[3].shape[0], x[0], x[1]))
            groups = [g for g in np.array_split(np.arange(len(inst)), min(num_experts, len(inst)))]
            chosen = [int(g[most_typical([inst[i][3] for i in g])]) for g in groups]
            previous = None
            for k in range(num_experts):
                # fewer instances than experts: repeat the instances in length order (repeats are consecutive)
                idx = chosen[k * len(chosen) // num_experts]
                sid, a, b, clip = inst[idx]
                duplicate, previous = idx == previous, idx
                records.append(
                    {
                        "gloss": gloss,
                        "expert": k,
                        "sample_id": sid,
                        "start": a,
                        "end": b,
                        "num_frames": int(clip.shape[0]),
                        "duplicate": bool(duplicate),
                        "poses": np.ascontiguousarray(clip, dtype=np.float32),
                    }
                )
        bank._set_records(records)
        return bank

    def _set_records(self, records: List[Dict[str, Any]]) -> None:
        self.records = records
        self._index = {}
        for i, r in enumerate(records):
            self._index.setdefault(r["gloss"], [None] * self.config.num_experts)[int(r["expert"])] = i
        broken = [g for g, ids in self._index.items() if any(i is None for i in ids)]
        if broken:
            raise ValueError(f"Pose bank glosses {broken[:5]} lack a candidate for some expert.")

    # ------------------------------------------------------------------------------------------ retrieval
    @property
    def glosses(self) -> List[str]:
        """The glosses of the bank, sorted."""
        return sorted(self._index)

    def __contains__(self, gloss: str) -> bool:
        return gloss in self._index

    def candidates(self, gloss: str) -> List[np.ndarray]:
        """The `num_experts` candidate clips of `gloss` (expert order); `ValueError` for an unknown gloss."""
        if gloss not in self._index:
            raise ValueError(f"`gloss` {gloss!r} is not in the pose bank ({len(self._index)} glosses).")
        return [self.records[i]["poses"] for i in self._index[gloss]]

    def candidate_sources(self, gloss: str) -> List[str]:
        """The sample id each candidate of `gloss` was cut from (expert order)."""
        return [self.records[i]["sample_id"] for i in self._index[gloss]]

    def join(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """`clips` joined into one sentence with this bank's lead-in, transitions and lead-out."""
        c = self.config
        return join_clips(clips, self.rest_start, self.rest_end, c.lead_in, c.transition_frames, c.lead_out)

    def forward(self, *args, **kwargs):  # noqa: D401 - a data component; nothing to compute
        raise TypeError("PoseBank has no forward; use `candidates(gloss)` and `join(clips)`.")

    # ------------------------------------------------------------------------------------------ storage
    def save_pretrained(self, save_directory: Union[str, os.PathLike], **kwargs) -> None:
        """Write `config.json` and the clips as a Parquet dataset (`data/train-00000-of-00001.parquet`)."""
        from datasets import Array2D, Dataset, Features, Value

        out = Path(save_directory)
        (out / "data").mkdir(parents=True, exist_ok=True)
        self.save_config(out)
        features = Features(
            {
                "gloss": Value("string"),
                "expert": Value("int32"),
                "sample_id": Value("string"),
                "start": Value("int32"),
                "end": Value("int32"),
                "num_frames": Value("int32"),
                "duplicate": Value("bool"),
                "poses": Array2D(shape=(None, self.config.feature_dim), dtype="float32"),
            }
        )
        columns = {k: [r[k] for r in self.records] for k in features}
        Dataset.from_dict(columns, features=features).to_parquet(str(out / DATA_FILE))

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: Union[str, os.PathLike], subfolder: Optional[str] = None, **kwargs
    ) -> "PoseBank":
        """Load a bank folder (local, or a subfolder of a downloaded pipeline); pipeline loading options are
        ignored (the bank holds no weights)."""
        import pyarrow.parquet as pq

        folder = Path(pretrained_model_name_or_path) / (subfolder or "")
        if not (folder / cls.config_name).is_file() or not (folder / DATA_FILE).is_file():
            raise ValueError(f"{folder} is not a pose bank folder (needs {cls.config_name} and {DATA_FILE}).")
        config = json.loads((folder / cls.config_name).read_text(encoding="utf-8"))
        bank = cls.from_config(config)
        table = pq.read_table(folder / DATA_FILE).to_pylist()
        for r in table:
            r["poses"] = np.asarray(r["poses"], dtype=np.float32).reshape(-1, bank.config.feature_dim)
        bank._set_records(table)
        return bank

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

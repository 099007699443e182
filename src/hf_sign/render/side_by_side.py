"""Generated signing next to the nearest training example, so a viewer sees what the model learned.

* [`TrainingExampleIndex`]: one split of a corpus (the training split by default) as joint positions resampled to
  a fixed number of frames; `nearest(poses)` returns the training example whose motion is closest to a generated
  sequence (a [`NearestExample`]). Built once per corpus and reused for every query.
* [`training_corpus_of`]: the corpus a pipeline folder names in its model card (`datasets:` in the `README.md`
  metadata, as a published repository has), so the lookup works from a pipeline folder or a cached repo id alone.
* [`render_side_by_side`]: the two sequences as one two-panel video (`.mp4`/`.gif`), sharing one scale.

Distance: both sequences go through the skeleton's forward kinematics, are resampled linearly in time to
`num_samples` frames (so the comparison is about the motion, not its speed), and the mean Euclidean distance over
joints and frames is taken, in the skeleton's position units (metres for `smplx133`). Ties go to the lowest index.

```python
>>> from hf_sign.render.side_by_side import TrainingExampleIndex, render_side_by_side
>>> index = TrainingExampleIndex.from_corpus("outputs/synthsign")
>>> nearest = index.nearest(out.poses[0])  # `out` from any hf-sign pipeline, in the corpus' representation
>>> render_side_by_side(out.poses[0], nearest, pipe.skeleton, "side_by_side.mp4", fps=pipe.fps, text=prompt)
```
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm.auto import tqdm

from ..data.resample import resample_sequence, resample_to_length
from ..skeletons.spec import SkeletonSpec, get_skeleton
from .frames import render_panels
from .inputs import _to_positions
from .video import VIDEO_EXTENSIONS, save_video

__all__ = ["NearestExample", "TrainingExampleIndex", "render_side_by_side", "training_corpus_of"]

PathLike = Union[str, os.PathLike]


@dataclass
class NearestExample:
    """A training example found by [`TrainingExampleIndex.nearest`].

    Args:
        index (`int`): row of the example in its split.
        id (`str`): the example's `id`.
        text (`str`): its sentence.
        gloss (`List[str]`): its glosses (empty when the corpus has none).
        poses (`np.ndarray`): its pose features `(num_frames, feature_dim)`, in the corpus' units.
        fps (`float`): its frame rate.
        distance (`float`): mean joint distance to the query after time-resampling, in position units.
    """

    index: int
    id: str
    text: str
    gloss: List[str] = field(default_factory=list)
    poses: Optional[np.ndarray] = None
    fps: float = 0.0
    distance: float = float("nan")


class TrainingExampleIndex:
    """The sequences of one corpus split, ready for nearest-example queries.

    Args:
        rows (`Sequence[dict]`): samples in the hf-sign schema (`id`, `text`, `poses`, `representation`, `fps`, and
            optionally `gloss`), e.g. from `hf_sign.data.io.split_rows`.
        num_samples (`int`, *optional*, defaults to 32): frames every sequence is resampled to for the distance.
        show_progress (`bool`, *optional*, defaults to `False`): a progress bar over the rows.

    Raises:
        ValueError: `rows` is empty, mixes representations, or `num_samples` is not a positive int.
    """

    def __init__(self, rows: Sequence[dict], num_samples: int = 32, show_progress: bool = False):
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"`num_samples` must be a positive int; got {num_samples!r}.")
        if not rows:
            raise ValueError("`rows` is empty; the nearest-example lookup needs at least one training example.")
        representations = sorted({str(r.get("representation", "")) for r in rows})
        if len(representations) != 1 or not representations[0]:
            raise ValueError(
                f"`rows` must share one `representation` (a skeleton name); got {representations or ['(none)']}."
            )
        self.spec: SkeletonSpec = get_skeleton(representations[0])
        self.num_samples = num_samples
        self.rows = list(rows)
        self._motion = np.stack(
            [
                self._resampled(r["poses"])
                for r in tqdm(self.rows, desc="indexing training examples", disable=not show_progress)
            ]
        )

    @classmethod
    def from_corpus(
        cls, corpus: Any, split: str = "train", num_samples: int = 32, show_progress: bool = False
    ) -> "TrainingExampleIndex":
        """The index of `split` of `corpus`: a corpus folder or Hub dataset id (read with
        `hf_sign.data.io.load_corpus`, offline from the hub cache when it is there), a `DatasetDict` or a `Dataset`.

        Raises a `ValueError` naming `split` when the corpus has no such split.
        """
        from datasets import DatasetDict

        from ..data.io import load_corpus, split_rows

        data = load_corpus(corpus) if isinstance(corpus, (str, os.PathLike)) else corpus
        if isinstance(data, (DatasetDict, dict)):
            if split not in data:
                raise ValueError(f"`split` {split!r} is not in the corpus; it has {sorted(data)}.")
            data = data[split]
        return cls(split_rows(data, split), num_samples=num_samples, show_progress=show_progress)

    def _resampled(self, poses: np.ndarray) -> np.ndarray:
        positions = _to_positions(np.asarray(poses, dtype=np.float32), self.spec, "poses")
        return resample_to_length(np.asarray(positions, dtype=np.float32), self.num_samples)

    def distances(self, poses: np.ndarray) -> np.ndarray:
        """Mean joint distance of `poses` (features or positions of the index's skeleton) to every example, `(N,)`."""
        query = self._resampled(poses)
        return np.linalg.norm(self._motion - query[None], axis=-1).mean(axis=(1, 2))

    def nearest(self, poses: np.ndarray) -> NearestExample:
        """The training example closest to `poses` (ties: the lowest index)."""
        dist = self.distances(poses)
        i = int(np.argmin(dist))
        row = self.rows[i]
        return NearestExample(
            index=i,
            id=str(row.get("id", i)),
            text=str(row.get("text") or ""),
            gloss=[str(g) for g in (row.get("gloss") or [])],
            poses=np.asarray(row["poses"], dtype=np.float32),
            fps=float(row.get("fps") or 0.0),
            distance=float(dist[i]),
        )


def training_corpus_of(folder: PathLike) -> Optional[str]:
    """The corpus a pipeline folder names as its training data (the first `datasets:` entry of its `README.md`
    model card), or `None` when the folder has no card or the card names none."""
    card = Path(folder) / "README.md"
    if not card.is_file():
        return None
    from huggingface_hub import metadata_load

    meta = metadata_load(card) or {}
    datasets = meta.get("datasets") or []
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    return str(datasets[0]) if datasets else None


def render_side_by_side(
    generated: np.ndarray,
    reference: Union[NearestExample, np.ndarray],
    spec: SkeletonSpec,
    out_path: PathLike,
    fps: float,
    reference_fps: Optional[float] = None,
    titles: Tuple[str, str] = ("generated", "nearest training example"),
    text: Optional[str] = None,
    size: Tuple[int, int] = (320, 320),
    show_progress: Optional[bool] = None,
) -> Path:
    """Write `generated` and `reference` side by side as one video (`.mp4` or `.gif`, by `out_path`'s extension).

    Args:
        generated (`np.ndarray`): the generated sequence, features `(T, spec.feature_dim)` or positions `(T, J, 3)`.
        reference (`NearestExample` or `np.ndarray`): the training example ([`TrainingExampleIndex.nearest`]) or
            any sequence of the same skeleton.
        spec (`SkeletonSpec`): the skeleton of both sequences.
        out_path (`str` or `Path`): output file ending in `.mp4` or `.gif`.
        fps (`float`): frame rate of `generated`, and of the video.
        reference_fps (`float`, *optional*): frame rate of `reference`; defaults to a `NearestExample`'s own, else
            `fps`. A reference at another rate is resampled to `fps`, so both panels play in real time.
        titles (`Tuple[str, str]`, defaults to `("generated", "nearest training example")`): panel titles (left,
            right).
        text (`str`, *optional*): caption under both panels (e.g. the prompt); a `NearestExample`'s sentence is
            added to it (`"<text> | nearest: <its text>"`).
        size (`Tuple[int, int]`, defaults to `(320, 320)`): `(width, height)` of one panel.
        show_progress (`bool`, *optional*): progress bars; `None` turns them on for long sequences.

    Returns:
        `Path` of the written video.

    Raises:
        ValueError: `out_path` is not a video file, or a sequence does not fit `spec`.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise ValueError(f"`out_path` must end with one of {VIDEO_EXTENSIONS}; got {str(out_path)!r}.")
    left, right = list(titles)
    if isinstance(reference, NearestExample):
        reference_fps = reference_fps or reference.fps or None
        if reference.text:
            text = f"{text} | nearest: {reference.text}" if text else f"nearest: {reference.text}"
        reference = reference.poses
    reference = np.asarray(reference, dtype=np.float32)
    if reference_fps and abs(float(reference_fps) - float(fps)) > 1e-6:
        reference = resample_sequence(reference, float(reference_fps), float(fps)).astype(np.float32)
    panels = [_to_positions(generated, spec, "generated"), _to_positions(reference, spec, "reference")]
    frames = render_panels(panels, spec, titles=[left, right], size=size, caption=text, show_progress=show_progress)
    return save_video(frames, out_path, fps, show_progress=show_progress)

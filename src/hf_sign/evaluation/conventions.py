"""The field's pose-error conventions, side by side: each one named in its column header with its unit.

Papers on sign language production report "DTW" numbers that cannot be compared across papers, because each computes
something else. `hf-sign benchmark` / `hf-sign evaluate` report any of these with `--conventions` (default: `soke`):

* `soke` (the harness' own DTW-JPE, `hf_sign.evaluation.metrics.dtw_jpe`): body joints translated to the root and
  each hand's joints to its wrist, per-frame cost = mean joint Euclidean distance, exact DTW; reported as the sum
  along the DTW path in metres (SOKE's number, grows with length) and as the mean per aligned frame pair in
  millimetres. Columns "SOKE DTW-JPE ...".
* `progressive-transformers` ([`progressive_transformers_dtw`]): Progressive Transformers' `calculate_dtw`
  (Saunders et al., 2020), read from its definition: frame cost = L1 norm over *all* coordinates of all joints (a sum,
  so it grows with the number of joints), no alignment of the positions (PT's own data are neck-centred as stored),
  plain DTW, path sum divided by the number of *reference* frames. Unit: position units per reference frame.
* `slrtp` ([`slrtp_metrics`]): the SLRTP 2025 production challenge toolkit (Walsh et al., 2025): both sequences are
  taken to ~12 fps by keeping every k-th frame (k = round(fps / 12): 25 and 24 fps keep every 2nd frame, as the
  toolkit's `[::2]`); DTW with frame cost = Euclidean norm of the flattened frame difference, no root alignment; the
  DTW-MJE is the mean joint Euclidean distance over all aligned frame pairs of all sequences pooled (the toolkit
  concatenates the aligned sequences before averaging). The toolkit aligns with `fastdtw` (an approximation, radius 1);
  here the DTW is exact. Plus the wrist path-length ratio: mean over sequences of the distance travelled by each
  wrist (sum of frame-to-frame displacements) for the predictions divided by the same mean for the references,
  averaged over the two wrists (1 = as much wrist motion as the references; regression to the mean gives < 1).
* `pose-evaluation` ([`pose_evaluation_dtw`]): the UZH `pose-evaluation` package's DTW distance
  (`DTWDTAIImplementationDistanceMeasure`, aggregation "mean") after its shoulder normalisation (pose-format's
  `Pose.normalize`): each sequence is translated so that its shoulder midpoint, averaged over frames, is the origin
  and scaled so that its mean shoulder distance is 1; then each keypoint's 3D trajectory gets its own DTW
  (dtaidistance `dtw_ndim.distance`: squared Euclidean cell cost, square root of the path sum) and the result is the
  mean over keypoints. Unit: shoulder widths. Missing keypoints: the package masks keypoints with confidence 0 and
  fills them with a constant after normalisation (`FillMaskedOrInvalidValuesPoseProcessor`: 0 by default, 10 in its
  README's example), so a missing keypoint costs its distance to that constant. Here no keypoint is missing at
  scoring time: `.pose` inputs are read as the corpus converter reads them (`hf_sign.data.pose_io`: gaps interpolated
  over time, never-detected keypoints placed on their nearest detected ancestor), for the predictions and the
  references alike; `hf-sign evaluate` lists how many keypoints each file lacked. The package's optional trimming and
  zero-padding processors are not applied (DTW needs no equal lengths).

Every function takes joint positions, one `(num_frames, num_joints, 3)` array per sample, predictions paired with
references; the corpus value is the mean over samples unless said otherwise (SLRTP's DTW-MJE pools frames).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.spatial.distance import cdist

from ..skeletons.spec import SkeletonSpec
from .dtw import dtw

__all__ = [
    "CONVENTIONS",
    "DEFAULT_CONVENTIONS",
    "SLRTP_FPS",
    "convention_columns",
    "convention_metrics",
    "convention_notes",
    "parse_conventions",
    "position_units",
    "pose_evaluation_dtw",
    "progressive_transformers_dtw",
    "shoulder_normalize",
    "slrtp_metrics",
    "slrtp_stride",
]

CONVENTIONS = ("soke", "progressive-transformers", "slrtp", "pose-evaluation")
DEFAULT_CONVENTIONS = ("soke",)
SLRTP_FPS = 12.0
# Position units of the registered skeletons' `to_positions` (big unit, small unit, small per big).
_UNITS = {
    "smplx133": ("m", "mm", 1000.0),
    "holistic": ("px", "px", 1.0),
    "holistic_noface": ("px", "px", 1.0),
    "pt50": ("PT units", "PT units", 1.0),
}


def position_units(spec: SkeletonSpec) -> Tuple[str, str, float]:
    """`(unit, small unit, small units per unit)` of `spec`'s positions: metres and millimetres for `smplx133`,
    pixels for MediaPipe `holistic` (pose-format's units), PT's stored units for `pt50`."""
    return _UNITS.get(spec.name, ("position units", "position units", 1.0))


def parse_conventions(conventions) -> Tuple[str, ...]:
    """Validate a list (or a comma-separated string) of convention names; returns them in `CONVENTIONS` order."""
    if conventions is None:
        return DEFAULT_CONVENTIONS
    if isinstance(conventions, str):
        conventions = [c for c in conventions.split(",")]
    names = [str(c).strip() for c in conventions if str(c).strip()]
    bad = [c for c in names if c not in CONVENTIONS]
    if bad or not names:
        raise ValueError(
            f"`conventions` has unknown entries {bad}; expected a non-empty list of {list(CONVENTIONS)}."
            if bad
            else f"`conventions` is empty; expected some of {list(CONVENTIONS)}."
        )
    return tuple(c for c in CONVENTIONS if c in names)


def _flat(seq: np.ndarray) -> np.ndarray:
    return np.asarray(seq, dtype=np.float64).reshape(seq.shape[0], -1)


def _check(predictions, references) -> None:
    if len(predictions) != len(references) or not len(predictions):
        raise ValueError(
            f"`predictions` ({len(predictions)}) and `references` ({len(references)}) must pair up, at least one each."
        )


# ----------------------------------------------------------------------------------- Progressive Transformers
def progressive_transformers_dtw(predictions: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> Dict:
    """Progressive Transformers' DTW score: L1 frame cost over all coordinates, path sum / reference length.

    Returns:
        `dict`: `pt_dtw` (mean over samples) and `pt_dtw_per_sample`, in position units per reference frame.
    """
    _check(predictions, references)
    costs = [cdist(_flat(p), _flat(r), "cityblock") for p, r in zip(predictions, references)]
    per = dtw(costs).distance / np.array([r.shape[0] for r in references], dtype=np.float64)
    return {"pt_dtw": float(per.mean()), "pt_dtw_per_sample": per.tolist()}


# ------------------------------------------------------------------------------------------------------ SLRTP
def slrtp_stride(fps: float) -> int:
    """Frames kept to reach ~12 fps: every k-th frame, k = round(fps / 12) (at least 1)."""
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"`fps` must be a positive number; got {fps}.")
    return max(1, int(round(fps / SLRTP_FPS)))


def _path_length(seq: np.ndarray, joint: int) -> float:
    return float(np.linalg.norm(np.diff(seq[:, joint], axis=0), axis=-1).sum())


def slrtp_metrics(
    predictions: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    fps: float,
    wrist_indices: Tuple[int, int],
) -> Dict[str, Any]:
    """SLRTP 2025's DTW-MJE (unaligned positions, ~12 fps, frames pooled) and wrist path-length ratio.

    Args:
        predictions, references (`Sequence[np.ndarray]`): positions `(T, J, 3)` at `fps`.
        fps (`float`): frame rate of both (see [`slrtp_stride`]).
        wrist_indices (`Tuple[int, int]`): left and right wrist joints.

    Returns:
        `dict`: `slrtp_dtw_mje` (pooled over all aligned frame pairs), `slrtp_dtw_mje_per_sample` (each sample's
        mean), `slrtp_wrist_path_ratio` (NaN when the references' wrists do not move).
    """
    _check(predictions, references)
    k = slrtp_stride(fps)
    preds = [np.asarray(p, dtype=np.float64)[::k] for p in predictions]
    refs = [np.asarray(r, dtype=np.float64)[::k] for r in references]
    out = dtw([cdist(_flat(p), _flat(r), "euclidean") for p, r in zip(preds, refs)], return_paths=True)
    total, count, per = 0.0, 0, []
    for p, r, path in zip(preds, refs, out.paths):
        err = np.linalg.norm(p[path[:, 0]] - r[path[:, 1]], axis=-1)  # (path length, joints)
        total, count = total + float(err.sum()), count + err.size
        per.append(float(err.mean()))
    ratios = []
    for j in wrist_indices:
        ref_motion = np.mean([_path_length(r, j) for r in refs])
        ratios.append(np.mean([_path_length(p, j) for p in preds]) / ref_motion if ref_motion > 0 else np.nan)
    return {
        "slrtp_dtw_mje": total / count,
        "slrtp_dtw_mje_per_sample": per,
        "slrtp_wrist_path_ratio": float(np.mean(ratios)),
    }


# -------------------------------------------------------------------------------------------- pose-evaluation
def shoulder_normalize(seq: np.ndarray, shoulders: Tuple[int, int]) -> np.ndarray:
    """pose-format's `Pose.normalize`: shoulder midpoint (mean over frames) to the origin, mean shoulder distance 1."""
    seq = np.asarray(seq, dtype=np.float64)
    left, right = seq[:, shoulders[0]], seq[:, shoulders[1]]
    width = float(np.linalg.norm(left - right, axis=-1).mean())
    if not width > 0:
        raise ValueError("Shoulder normalisation needs distinct shoulders; the two shoulder joints coincide.")
    return (seq - ((left + right) / 2).mean(axis=0)) / width


def _shoulders(spec: SkeletonSpec) -> Tuple[int, int]:
    names = list(spec.position_joint_names)
    try:
        return names.index("left_shoulder"), names.index("right_shoulder")
    except ValueError:
        raise ValueError(
            f"Skeleton {spec.name!r} has no position joints named 'left_shoulder' and 'right_shoulder'; the "
            "pose-evaluation convention normalises by the shoulders."
        ) from None


def pose_evaluation_dtw(
    predictions: Sequence[np.ndarray], references: Sequence[np.ndarray], shoulders: Tuple[int, int]
) -> Dict[str, Any]:
    """pose-evaluation's shoulder-normalised per-keypoint DTW, mean over keypoints (see the module docstring).

    Returns:
        `dict`: `pose_eval_dtw` (mean over samples) and `pose_eval_dtw_per_sample`, in shoulder widths.
    """
    _check(predictions, references)
    per = []
    for p, r in zip(predictions, references):
        p, r = shoulder_normalize(p, shoulders), shoulder_normalize(r, shoulders)
        # one (T1, T2) squared-distance matrix per keypoint, all keypoints of the pair in one batched DTW
        diff = p.transpose(1, 0, 2)[:, :, None, :] - r.transpose(1, 0, 2)[:, None, :, :]
        per.append(float(np.sqrt(dtw(np.einsum("kijc,kijc->kij", diff, diff)).distance).mean()))
    return {"pose_eval_dtw": float(np.mean(per)), "pose_eval_dtw_per_sample": per}


# ------------------------------------------------------------------------------------------------- the table
def convention_metrics(
    conventions: Sequence[str],
    predictions: Sequence[np.ndarray],
    references: Sequence[np.ndarray],
    spec: SkeletonSpec,
    fps: float,
    wrist_indices: Optional[Tuple[int, int]] = None,
    shoulders: Optional[Tuple[int, int]] = None,
) -> Dict[str, Any]:
    """The metrics of every selected convention other than `soke` (which the harness computes itself).

    `wrist_indices` and `shoulders` default to `spec`'s; pass them when the positions hold a subset of `spec`'s
    position joints (a row of joint positions read from `.pose` files, `hf_sign.evaluation.scoring.position_view`).
    """
    out: Dict[str, Any] = {}
    if "progressive-transformers" in conventions:
        out.update(progressive_transformers_dtw(predictions, references))
    if "slrtp" in conventions:
        out.update(slrtp_metrics(predictions, references, fps, wrist_indices or spec.wrist_indices))
    if "pose-evaluation" in conventions:
        out.update(pose_evaluation_dtw(predictions, references, shoulders or _shoulders(spec)))
    return out


def convention_columns(conventions: Sequence[str], unit: str) -> List[Tuple[str, str, int]]:
    """`(result key, header, decimals)` of the selected conventions' table; `unit` is the positions' unit."""
    columns: List[Tuple[str, str, int]] = []
    if "progressive-transformers" in conventions:
        columns.append(("pt_dtw", f"PT DTW (L1 / ref. frame) ↓ ({unit})", 3))
    if "slrtp" in conventions:
        columns.append(("slrtp_dtw_mje", f"SLRTP DTW-MJE @12fps ↓ ({unit})", 4))
        columns.append(("slrtp_wrist_path_ratio", "SLRTP wrist path ratio (→1)", 3))
    if "pose-evaluation" in conventions:
        columns.append(("pose_eval_dtw", "pose-evaluation DTW ↓ (shoulder widths)", 3))
    return columns


def convention_notes(conventions: Sequence[str], fps: Optional[float]) -> List[str]:
    """One note per selected convention other than `soke`, for the notes under the tables."""
    notes = []
    if "progressive-transformers" in conventions:
        notes.append(
            "PT DTW (Progressive Transformers): DTW with an L1 frame cost over all coordinates of all joints, "
            "positions unaligned, path sum divided by the reference length."
        )
    if "slrtp" in conventions:
        k = slrtp_stride(fps) if fps else None
        notes.append(
            f"SLRTP (2025 challenge): 1 frame in {k} kept (~12 fps), exact DTW on unaligned positions "
            "(flattened Euclidean frame cost), DTW-MJE = mean joint error over all aligned frame pairs pooled; "
            "wrist path ratio = mean wrist travel of the outputs / of the references (1 is the reference's motion)."
        )
    if "pose-evaluation" in conventions:
        notes.append(
            "pose-evaluation (UZH): shoulder-normalised positions, one DTW per keypoint (squared Euclidean cost, "
            "sqrt of the path sum), mean over keypoints. Missing keypoints: the package fills them with a constant; "
            "here none is missing at scoring time (.pose inputs are read with gaps interpolated and never-detected "
            "keypoints placed on their nearest detected ancestor, as the corpus converter reads references)."
        )
    return notes

"""Frame-rate resampling of pose sequences, shared by the converters.

Three methods, all producing `int(num_frames * dst_fps / src_fps)` frames (at least one):

* `"subsample"`: SOKE's rule. SOKE (Zuo et al., "Signs as Tokens", `mGPT/data/humanml/load_data.py`,
  `load_h2s_sample`) brings How2Sign clips recorded above 24 fps down to 24 fps by *picking* frames:
  `count = int(24 * T / fps)` and frame `i` of the output is source frame `floor(i * T / count)`.
  No value is interpolated, so axis-angle poses stay valid rotations. This is the method the SMPL-X
  converters use, so converted data match what SOKE trains on frame for frame.
* `"nearest"`: output frame `i` sits at source time `i * src_fps / dst_fps` and takes the closest
  source frame. Works for up- and downsampling; values are never mixed.
* `"linear"`: linear interpolation between the two neighbouring source frames at the same times.
  Exact for positions (xyz joints). For axis-angle features it is only an approximation (rotation
  vectors do not interpolate linearly, and the blend of two vectors near the +-pi wrap-around can
  point anywhere); use it for position representations, or accept the error for small steps.

Output frame times are `i / dst_fps` (the first frame is kept); times past the last source frame
are clamped to it, which only happens when upsampling.
"""

from __future__ import annotations

import math

import numpy as np

KINDS = ("linear", "nearest", "subsample")


def resampled_length(num_frames: int, src_fps: float, dst_fps: float) -> int:
    """Number of frames after resampling `num_frames` frames from `src_fps` to `dst_fps` (SOKE's count)."""
    _check_fps(src_fps, "src_fps")
    _check_fps(dst_fps, "dst_fps")
    if num_frames <= 0:
        raise ValueError(f"`num_frames` must be positive; got {num_frames}.")
    # The tiny epsilon keeps exact ratios exact (e.g. 24 * 30 / 30 == 24 despite float rounding).
    return max(1, int(num_frames * float(dst_fps) / float(src_fps) + 1e-9))


def subsample_indices(num_frames: int, src_fps: float, dst_fps: float) -> np.ndarray:
    """Source frame indices SOKE keeps when going from `src_fps` to `dst_fps` (`floor(i * T / count)`)."""
    count = resampled_length(num_frames, src_fps, dst_fps)
    step = num_frames / count
    return np.array([min(num_frames - 1, int(math.floor(i * step))) for i in range(count)], dtype=np.int64)


def resample_sequence(poses, src_fps: float, dst_fps: float, kind: str = "linear") -> np.ndarray:
    """Resample a pose sequence `(T, D)` from `src_fps` to `dst_fps`.

    Args:
        poses (`np.ndarray` of shape `(T, D)`): the sequence, one row per frame.
        src_fps (`float`): frame rate of `poses`.
        dst_fps (`float`): wanted frame rate.
        kind (`str`, *optional*, defaults to `"linear"`): `"linear"`, `"nearest"` or `"subsample"`
            (SOKE's frame picking, see the module docstring). Use `"subsample"` or `"nearest"` for
            axis-angle data.

    Returns:
        `np.ndarray` of shape `(int(T * dst_fps / src_fps), D)` with the input's dtype (float for
        `"linear"`). When `src_fps == dst_fps` a copy of `poses` is returned.
    """
    if kind not in KINDS:
        raise ValueError(f"`kind` must be one of {KINDS}; got {kind!r}.")
    poses = np.asarray(poses)
    if poses.ndim != 2:
        raise ValueError(f"`poses` must have shape (num_frames, feature_dim); got {poses.shape}.")
    num_frames = poses.shape[0]
    if num_frames == 0:
        raise ValueError("`poses` has 0 frames; nothing to resample.")
    _check_fps(src_fps, "src_fps")
    _check_fps(dst_fps, "dst_fps")
    if float(src_fps) == float(dst_fps):
        return poses.copy()
    if kind == "subsample":
        return poses[subsample_indices(num_frames, src_fps, dst_fps)]
    count = resampled_length(num_frames, src_fps, dst_fps)
    times = np.minimum(np.arange(count, dtype=np.float64) * (float(src_fps) / float(dst_fps)), num_frames - 1)
    if kind == "nearest":
        # floor(t + 0.5) rounds halves up, unlike np.round's banker's rounding.
        return poses[np.minimum(np.floor(times + 0.5).astype(np.int64), num_frames - 1)]
    lo = np.floor(times).astype(np.int64)
    hi = np.minimum(lo + 1, num_frames - 1)
    w = (times - lo)[:, None]
    out = (1.0 - w) * poses[lo].astype(np.float64) + w * poses[hi].astype(np.float64)
    return out.astype(poses.dtype if np.issubdtype(poses.dtype, np.floating) else np.float64)


def _check_fps(value: float, name: str) -> None:
    if not (isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value) and value > 0):
        raise ValueError(f"`{name}` must be a positive finite number; got {value!r}.")


def resample_to_length(poses: np.ndarray, num_frames: int) -> np.ndarray:
    """Linear resampling of `(T, ...)` to `(num_frames, ...)` in time, first and last frames kept.

    Used wherever two sequences must be length-aligned (MPJPE, baselines); unlike `resample_sequence`
    it targets a frame count, not a frame rate.
    """
    poses = np.asarray(poses)
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"`num_frames` must be >= 1; got {num_frames}.")
    if poses.ndim < 1 or poses.shape[0] == 0:
        raise ValueError(f"`poses` must have at least one frame; got shape {poses.shape}.")
    if poses.shape[0] == num_frames:
        return poses.copy()
    pos = np.linspace(0.0, poses.shape[0] - 1, num_frames)
    i0 = np.floor(pos).astype(np.int64)
    i1 = np.minimum(i0 + 1, poses.shape[0] - 1)
    w = (pos - i0).astype(poses.dtype if np.issubdtype(poses.dtype, np.floating) else np.float64)
    w = w.reshape((-1,) + (1,) * (poses.ndim - 1))
    return poses[i0] * (1 - w) + poses[i1] * w


def minimum_jerk(tau) -> np.ndarray:
    """Minimum-jerk time profile `10 t^3 - 15 t^4 + 6 t^5` on [0, 1]: zero velocity and acceleration at both
    ends, the profile of natural point-to-point human movement (Flash & Hogan 1985). Inputs are clipped to [0, 1]."""
    tau = np.clip(np.asarray(tau, dtype=np.float64), 0.0, 1.0)
    return tau ** 3 * (10.0 - 15.0 * tau + 6.0 * tau ** 2)

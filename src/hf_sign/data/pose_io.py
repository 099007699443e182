"""Reading pose-format `.pose` files (MediaPipe Holistic layout) into `holistic` features.

pose-format stores, per frame and person, `x, y, z` plus a confidence for every point of every
header component. The MediaPipe Holistic layout has 586 points: POSE_LANDMARKS (33),
FACE_LANDMARKS (478), LEFT_HAND_LANDMARKS (21), RIGHT_HAND_LANDMARKS (21) and
POSE_WORLD_LANDMARKS (33). Points are looked up by component and point *name*, so files whose
components come in another order (or carry extra components) read the same.

Units are kept as pose-format stores them: `x`/`y` in pixels of the source video (header
`dimensions.width`/`height`), `z` on the same pixel scale with an arbitrary origin, y pointing down.
Normalisation is `PoseNormalizer`'s job, not the reader's.

Missing landmarks (confidence 0, e.g. a hand MediaPipe did not detect) are filled, never dropped:

* a joint detected in some frames is linearly interpolated over time between its detections and
  held constant before the first / after the last one;
* a joint detected in *no* frame raises a `ValueError` naming the file and joint, unless
  `allow_missing=True`: then it is placed, frame by frame, on its nearest detected ancestor in the
  skeleton tree (an undetected hand collapses onto the body-pose wrist, a face point onto the nose).
  This is the usual case for the resting, non-dominant hand in one-handed signing.

The returned confidence keeps the source values (0 where a value was filled), so callers can count
or mask filled values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from ..skeletons.holistic import holistic_joint_table

HOLISTIC_COMPONENTS = ("POSE_LANDMARKS", "FACE_LANDMARKS", "LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS")


def read_pose_file(path: str | Path):
    """Read a `.pose` file into a `pose_format.Pose`, with errors that name the file.

    Args:
        path (`str` or `Path`): the `.pose` file.

    Raises:
        `ValueError` for a missing, empty, truncated or corrupt file (the pose-format reader's own
        `struct.error`/`TypeError` are re-raised as `ValueError` naming the file).
    """
    from pose_format import Pose

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found.")
    buffer = path.read_bytes()
    if not buffer:
        raise ValueError(f"{path}: file is empty (0 bytes).")
    try:
        pose = Pose.read(buffer)
    except Exception as err:  # struct.error / TypeError("buffer is too small") / UnicodeDecodeError ...
        raise ValueError(
            f"{path}: cannot read .pose file, truncated or corrupt ({type(err).__name__}: {err}).{_diagnose(buffer)}"
        ) from err
    return pose


def _diagnose(buffer: bytes) -> str:
    """Where a truncated v0.2 `.pose` body ends (frame index), or `""` when that cannot be told."""
    try:
        from pose_format.pose_header import PoseHeader
        from pose_format.utils.reader import BufferReader, ConstStructs

        reader = BufferReader(buffer)
        header = PoseHeader.read(reader)
        if header.version < 0.2:
            return ""
        reader.unpack(ConstStructs.float)  # fps
        frames = reader.unpack(ConstStructs.uint)
        people = reader.unpack(ConstStructs.ushort)
    except Exception:
        return " The header itself is unreadable."
    points, dims = header.total_points(), header.num_dims()
    have = len(buffer) - reader.read_offset
    per_value, per_conf = people * points * dims * 4, people * points * 4
    need = frames * (per_value + per_conf)
    if have >= need or per_value == 0:
        return ""
    if have < frames * per_value:
        where = f"the values end in frame {have // per_value}"
    else:
        where = f"the confidences end in frame {(have - frames * per_value) // per_conf}"
    return f" The header announces {frames} frames ({need} bytes) but only {have} bytes follow: {where} of {frames}."


def _point_index(pose, source: str) -> Dict[Tuple[str, str], int]:
    """(component, point) -> flat point index in `pose.body.data`, validating the header."""
    header = pose.header
    found = [c.name for c in header.components]
    offsets, offset = {}, 0
    for comp in header.components:
        offsets[comp.name] = (offset, comp)
        offset += len(comp.points)
    for name in HOLISTIC_COMPONENTS:
        if name not in offsets:
            raise ValueError(
                f"{source}: missing pose-format component {name!r} (found {found}); expected the MediaPipe "
                f"Holistic layout with components {list(HOLISTIC_COMPONENTS)}."
            )
        comp = offsets[name][1]
        if len(comp.format) != 4 or comp.format.upper() != "XYZC":
            raise ValueError(
                f"{source}: component {name!r} has point format {comp.format!r} ({len(comp.format) - 1} dimensions); "
                "expected 'XYZC' (3D positions plus confidence)."
            )
    index = {}
    for _, component, point, _ in holistic_joint_table(face=True):
        if component is None:
            continue
        start, comp = offsets[component]
        try:
            index[(component, point)] = start + list(comp.points).index(point)
        except ValueError:
            raise ValueError(
                f"{source}: component {component!r} has no point {point!r} ({len(comp.points)} points); "
                "expected the MediaPipe Holistic point names."
            ) from None
    return index


def fill_missing(
    values: np.ndarray, confidence: np.ndarray, parents, names, *, source: str = "", allow_missing: bool = False
) -> np.ndarray:
    """Fill undetected joints (confidence 0) of one clip. See the module docstring for the policy.

    Args:
        values (`np.ndarray`): (T, J, 3) positions; values where `confidence == 0` are ignored.
        confidence (`np.ndarray`): (T, J) confidences.
        parents (`Sequence[int]`): parent table; parents must come before children.
        names (`Sequence[str]`): joint names, for error messages.
        source (`str`, defaults to `""`): file name for error messages.
        allow_missing (`bool`, defaults to `False`): place never-detected joints on their nearest
            detected ancestor instead of raising.

    Returns:
        `np.ndarray`: (T, J, 3) float32 with every joint filled.
    """
    T, J, _ = values.shape
    out = np.array(values, dtype=np.float64)
    frames = np.arange(T)
    seen = confidence > 0
    never = []
    for j in range(J):
        ok = seen[:, j]
        if ok.all():
            continue
        if not ok.any():
            never.append(j)
            continue
        for d in range(3):
            # np.interp holds the first/last detected value beyond the ends of the detections.
            out[:, j, d] = np.interp(frames, frames[ok], out[ok, j, d])
    if never and not allow_missing:
        missing = ", ".join(names[j] for j in never[:6]) + (" ..." if len(never) > 6 else "")
        raise ValueError(
            f"{source}: {len(never)} joint(s) are missing (confidence 0) in every one of the {T} frames: {missing}. "
            "Pass allow_missing=True (--allow-missing) to place never-detected joints on their nearest detected "
            "ancestor (e.g. an undetected hand on the body-pose wrist)."
        )
    for j in never:
        # Parents precede children, so the parent is already filled (itself anchored if it was never
        # detected): copying it places the joint on its nearest detected ancestor.
        if parents[j] < 0:
            raise ValueError(f"{source}: joint {names[j]!r} is never detected and has no ancestor to anchor it to.")
        out[:, j] = out[:, parents[j]]
    return out.astype(np.float32)


def pose_to_holistic(
    pose, source: str = "", *, face: bool = True, allow_missing: bool = False
) -> Tuple[np.ndarray, np.ndarray]:
    """Select the `holistic` joints of the first person of a pose-format `Pose`.

    Args:
        pose (`pose_format.Pose`): a MediaPipe Holistic pose (586-point layout or any layout with the
            same component and point names).
        source (`str`, defaults to `""`): file name used in error messages.
        face (`bool`, defaults to `True`): include the face subset (`"holistic"`); `False` gives
            `"holistic_noface"` features.
        allow_missing (`bool`, defaults to `False`): see the module docstring.

    Returns:
        `(features, confidence)`: features (T, 3 * J) float32 in pose-format units (pixels, y down) with
        missing values filled; confidence (T, J) float32, 0 where a value was filled. `neck` (the
        shoulder midpoint) gets the smaller of the two shoulder confidences.

    Raises:
        `ValueError` naming `source` for wrong components or dimensionality, 0 frames or people,
        NaN/inf values (naming the frame), or never-detected joints without `allow_missing`.
    """
    source = source or "<pose>"
    index = _point_index(pose, source)
    data = np.asarray(getattr(pose.body.data, "data", pose.body.data))
    conf = np.asarray(getattr(pose.body.confidence, "data", pose.body.confidence))
    if data.ndim != 4 or data.shape[-1] != 3:
        raise ValueError(f"{source}: pose data has shape {data.shape}; expected (frames, people, points, 3).")
    if data.shape[0] == 0:
        raise ValueError(f"{source}: pose has 0 frames.")
    if data.shape[1] == 0:
        raise ValueError(f"{source}: pose has no person in any frame.")
    data, conf = data[:, 0], conf[:, 0]  # first person only
    for arr, what in ((data, "values"), (conf, "confidences")):
        bad = ~np.isfinite(arr)
        if bad.any():
            frame = int(np.argwhere(bad)[0, 0])
            raise ValueError(f"{source}: NaN/inf {what} at frame {frame} (of {len(arr)}).")

    rows = holistic_joint_table(face)
    names = [r[0] for r in rows]
    name_to_idx = {n: i for i, n in enumerate(names)}
    T, J = data.shape[0], len(rows)
    values = np.zeros((T, J, 3), dtype=np.float64)
    confidence = np.zeros((T, J), dtype=np.float32)
    for j, (_, component, point, _) in enumerate(rows):
        if component is not None:
            values[:, j] = data[:, index[(component, point)]]
            confidence[:, j] = conf[:, index[(component, point)]]
    parents = [-1 if r[3] is None else name_to_idx[r[3]] for r in rows]

    # The shoulders are filled first so that the derived neck is their midpoint in every frame.
    sh = [name_to_idx["left_shoulder"], name_to_idx["right_shoulder"]]
    neck = name_to_idx["neck"]
    sh_filled = fill_missing(values[:, sh], confidence[:, sh], [-1, -1], [names[i] for i in sh], source=source)
    values[:, sh] = sh_filled
    confidence_sh = confidence[:, sh].copy()
    values[:, neck] = sh_filled.mean(axis=1)
    confidence[:, neck] = confidence_sh.min(axis=1)
    work_conf = confidence.copy()
    work_conf[:, sh + [neck]] = 1.0  # already filled
    filled = fill_missing(values, work_conf, parents, names, source=source, allow_missing=allow_missing)
    return filled.reshape(T, J * 3), confidence

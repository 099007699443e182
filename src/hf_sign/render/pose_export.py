"""Export joint positions to the `.pose` format of pose-format, and read them back.

The `.pose` files open with the sign-language-processing tools (`pose_format.Pose.read`, pose-format's
visualiser, spoken-to-signed, ...). One header component per part of `spec.position_parts`, named as
MediaPipe Holistic names its components so that pose-format recognises the layout:

| part | component | point names |
|---|---|---|
| body | `POSE_LANDMARKS` | the spec's joint names upper-cased (`LEFT_SHOULDER`, ...) |
| left_hand | `LEFT_HAND_LANDMARKS` | MediaPipe hand names (`WRIST`, `THUMB_CMC`, ...) in MediaPipe order (*) |
| right_hand | `RIGHT_HAND_LANDMARKS` | same |
| face | `FACE_LANDMARKS` | upper-cased joint names |

(*) when the 21 hand joints are in MediaPipe order (checked on the parent table), else the upper-cased joint names.

Position joints that belong to no part are exported with the body. Limbs are the spec's bones whose two
joints fall in the same component (indices inside the component; a bone between parts, e.g. elbow ->
wrist when the wrist is a hand joint, has no place in a `.pose` header and is not written); MediaPipe-
order hands get MediaPipe's 21 hand connections.

Units are the dataset's units, unscaled (metres for `smplx133`, pixels for `holistic`). Axes: with
`image_axes=True` (default) a y-up skeleton (`spec.y_down=False`, e.g. SMPL-X) is written in the camera
convention of MediaPipe/pose-format, x right, y down, z away from the viewer, i.e. `(x, -y, -z)`; y-down
skeletons are written unchanged. Negation is exact, so `pose_to_positions(positions_to_pose(p))`
returns `p` as float32 bit for bit (non-finite joints come back as NaN, see `confidence`).
To view a metre-scale file with pose-format's pixel-based visualiser, scale `pose.body.data` first.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from ..skeletons.spec import PARTS, SkeletonSpec
from .frames import PART_COLORS, check_positions

COMPONENT_NAMES = {
    "body": "POSE_LANDMARKS",
    "left_hand": "LEFT_HAND_LANDMARKS",
    "right_hand": "RIGHT_HAND_LANDMARKS",
    "face": "FACE_LANDMARKS",
}
POINT_FORMAT = "XYZC"

# MediaPipe HandLandmark names and HAND_CONNECTIONS (pose_format.utils.holistic imports mediapipe, which
# hf-sign does not depend on, so they are spelled out here).
MEDIAPIPE_HAND_POINTS = (
    "WRIST", "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP",
    "INDEX_FINGER_MCP", "INDEX_FINGER_PIP", "INDEX_FINGER_DIP", "INDEX_FINGER_TIP",
    "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP", "MIDDLE_FINGER_TIP",
    "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
    "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP",
)
# Tree parents of the MediaPipe hand (wrist root, each finger a chain from the wrist).
MEDIAPIPE_HAND_PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
MEDIAPIPE_HAND_LIMBS = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)


def _is_mediapipe_hand(spec: SkeletonSpec, joints: List[int]) -> bool:
    if len(joints) != 21:
        return False
    local = {j: i for i, j in enumerate(joints)}
    parents = tuple(local.get(spec.position_parents[j], -1) for j in joints)
    return parents == MEDIAPIPE_HAND_PARENTS


def component_layout(spec: SkeletonSpec) -> List[Tuple[str, List[int], List[str], List[Tuple[int, int]], str]]:
    """`(component_name, position_joint_indices, point_names, limbs, part)` per exported component."""
    owner = {}
    for part in PARTS:
        for j in spec.position_parts.get(part, ()):
            owner.setdefault(int(j), part)
    unknown = sorted(set(spec.position_parts) - set(PARTS))
    if unknown:
        raise ValueError(
            f"Skeleton {spec.name!r}: position_parts has unknown parts {unknown}; expected parts from {PARTS}."
        )
    layout = []
    for part in PARTS:
        joints = sorted(j for j in range(spec.num_position_joints) if owner.get(j, "body") == part)
        if not joints:
            continue
        local = {j: i for i, j in enumerate(joints)}
        if part in ("left_hand", "right_hand") and _is_mediapipe_hand(spec, joints):
            names, limbs = list(MEDIAPIPE_HAND_POINTS), [tuple(limb) for limb in MEDIAPIPE_HAND_LIMBS]
        else:
            names = [spec.position_joint_names[j].upper() for j in joints]
            limbs = [(local[p], local[c]) for p, c in spec.position_bones if p in local and c in local]
        if len(set(names)) != len(names):
            raise ValueError(
                f"Skeleton {spec.name!r}: point names of part {part!r} are not unique once upper-cased: {names}."
            )
        layout.append((COMPONENT_NAMES[part], joints, names, limbs, part))
    return layout


def _axes(spec: SkeletonSpec, image_axes: bool) -> np.ndarray:
    flip = image_axes and not spec.y_down
    return np.array([1.0, -1.0, -1.0] if flip else [1.0, 1.0, 1.0], dtype=np.float32)


def positions_to_pose(
    positions,
    spec: SkeletonSpec,
    fps: float,
    confidence: Optional[np.ndarray] = None,
    image_axes: bool = True,
):
    """Build a `pose_format.Pose` from joint positions.

    Args:
        positions (`np.ndarray`): `(T, J, 3)` positions of `spec`'s position view, in dataset units.
        spec (`SkeletonSpec`): gives parts, joint names and bones.
        fps (`float`): frame rate stored in the file.
        confidence (`np.ndarray`, *optional*): `(T, J)` per-joint confidence in [0, 1]. Defaults to 1 for
            finite joints and 0 for joints with NaN/inf coordinates (whose coordinates are written as 0
            and masked, as pose-format does for undetected points).
        image_axes (`bool`, defaults to `True`): write y-up skeletons as `(x, -y, -z)` (module docstring).

    Returns:
        `pose_format.Pose` with one person, format `XYZC`, body of type `NumPyPoseBody`.
    """
    from pose_format import Pose
    from pose_format.numpy import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

    pos = check_positions(positions, spec).astype(np.float32)
    if not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"`fps` must be a positive number; got {fps!r}.")
    finite = np.isfinite(pos).all(-1)  # (T, J)
    if confidence is None:
        conf = finite.astype(np.float32)
    else:
        conf = np.asarray(confidence, dtype=np.float32)
        if conf.shape != finite.shape:
            raise ValueError(
                f"`confidence` must have shape {finite.shape} (num_frames, num_joints); got {conf.shape}."
            )
        conf = np.where(finite, conf, 0.0).astype(np.float32)
    pos = np.where(finite[..., None], pos, 0.0).astype(np.float32) * _axes(spec, image_axes)

    layout = component_layout(spec)
    order = [j for _, joints, _, _, _ in layout for j in joints]
    components = [
        PoseHeaderComponent(
            name=name, points=names, limbs=limbs, colors=[PART_COLORS[part]] * len(limbs), point_format=POINT_FORMAT
        )
        for name, _, names, limbs, part in layout
    ]
    # Dimensions are integers in pose-format; they only size pose-format's visualiser canvas.
    extent = np.abs(pos[finite]).max(0) if finite.any() else np.ones(3)
    dims = PoseHeaderDimensions(width=max(1, int(np.ceil(extent[0]))), height=max(1, int(np.ceil(extent[1]))),
                                depth=max(1, int(np.ceil(extent[2]))))
    header = PoseHeader(version=0.2, dimensions=dims, components=components)
    data = pos[:, None, order, :]  # (T, people=1, points, 3)
    body = NumPyPoseBody(fps=float(fps), data=data, confidence=conf[:, None, order])
    return Pose(header, body)


def save_pose(
    positions,
    spec: SkeletonSpec,
    fps: float,
    path: Union[str, Path],
    confidence: Optional[np.ndarray] = None,
    image_axes: bool = True,
) -> Path:
    """Write positions `(T, J, 3)` to a `.pose` file (see `positions_to_pose`). Returns the path."""
    pose = positions_to_pose(positions, spec, fps, confidence=confidence, image_axes=image_axes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pose.write(fh)
    return path


def pose_to_positions(pose, spec: SkeletonSpec, person: int = 0, image_axes: bool = True) -> np.ndarray:
    """Inverse of `positions_to_pose`: `(T, J, 3)` float32 positions of `spec` from a `Pose`.

    Components are found by name and points checked by name, so a file written for another skeleton
    raises instead of being read in the wrong order. Points with confidence 0 come back as NaN.

    Args:
        pose (`pose_format.Pose`): e.g. `Pose.read(open(path, "rb").read())`.
        spec (`SkeletonSpec`): the skeleton the file was written with.
        person (`int`, defaults to 0): which person of the file to read.
        image_axes (`bool`, defaults to `True`): must match the value used when writing.
    """
    header_components = {c.name: c for c in pose.header.components}
    offsets, start = {}, 0
    for c in pose.header.components:
        offsets[c.name] = start
        start += len(c.points)
    data = np.asarray(pose.body.data.data if hasattr(pose.body.data, "data") else pose.body.data)
    conf = np.asarray(pose.body.confidence)
    if data.ndim != 4 or data.shape[-1] < 3:
        raise ValueError(f"pose body data must have shape (frames, people, points, >=3 dims); got {data.shape}.")
    if not 0 <= person < data.shape[1]:
        raise ValueError(
            f"`person`={person} out of range: the pose has {data.shape[1]} people (valid 0..{data.shape[1] - 1})."
        )
    out = np.full((data.shape[0], spec.num_position_joints, 3), np.nan, dtype=np.float32)
    for name, joints, names, _, _ in component_layout(spec):
        if name not in header_components:
            raise ValueError(
                f"pose has no component {name!r} needed by skeleton {spec.name!r}; its components are "
                f"{list(header_components)}."
            )
        points = list(header_components[name].points)
        if points != names:
            raise ValueError(
                f"component {name!r} has points {points[:5]}... ({len(points)}); skeleton {spec.name!r} expects "
                f"{names[:5]}... ({len(names)})."
            )
        sl = slice(offsets[name], offsets[name] + len(names))
        xyz = data[:, person, sl, :3].astype(np.float32)
        missing = conf[:, person, sl] == 0
        out[:, joints] = np.where(missing[..., None], np.nan, xyz)
    return out * _axes(spec, image_axes)

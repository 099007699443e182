"""Export joint positions of any skeleton as a MediaPipe-Holistic-shaped `.pose` file, and read them back.

The files have the layout that the pose-format ecosystem (spoken-to-signed, sign.mt, pose-evaluation, pose-format's
own `PoseVisualizer` and `pose_normalization_info`) expects from MediaPipe Holistic, with the component and point
names and counts of the `.pose` files that spoken-to-signed ships (586 points, format `XYZC`, one person):

| component | points | holds |
|---|---|---|
| `POSE_LANDMARKS` | the 33 MediaPipe body points (`NOSE`, ..., `RIGHT_FOOT_INDEX`) | pixels of the canvas |
| `FACE_LANDMARKS` | the 478 face-mesh points, named by id (`"0"` ... `"477"`) | pixels of the canvas |
| `LEFT_HAND_LANDMARKS`, `RIGHT_HAND_LANDMARKS` | the 21 MediaPipe hand points (`WRIST`, ..., `PINKY_TIP`) | pixels |
| `POSE_WORLD_LANDMARKS` | the 33 body points again | the input positions, unscaled (metres for `smplx133`) |

Mapping (by meaning, `mediapipe_mapping`): a 21-joint hand part whose parent table is MediaPipe's hand tree
(`smplx133`, `holistic` and `pt50` hands) fills its side's hand component point by point; a joint named like a row
of the `holistic` joint table (`hf_sign.skeletons.holistic`: `nose`, `left_eye`, `left_shoulder`, `left_elbow`,
`left_wrist`, `left_hip`, the face-mesh subset `right_brow_inner` -> face point `"107"`, ...) fills that row's
point; and the BlazePose hand points of the body come from the hand: `LEFT_PINKY` <- the pinky MCP ("pinky #1
knuckle"), `LEFT_INDEX` <- the index MCP ("index #1 knuckle"), `LEFT_THUMB` <- the thumb MCP ("thumb #2 knuckle"),
and `LEFT_WRIST` <- the hand wrist when the skeleton has no separate body wrist. Per skeleton:

* `smplx133`: shoulders, elbows, wrists (the SMPL-X wrist is both the body wrist and the hand wrist), the three
  BlazePose hand points per side, both hands; no face points (its features have jaw and expression, no landmarks).
  Pelvis, spine1-3, neck, collars and head have no MediaPipe point and are not written.
* `holistic`: every joint at the point it was read from, except the derived `neck` (the shoulder midpoint, which
  `hf_sign.data.pose_io.pose_to_holistic` derives again); plus the BlazePose hand points.
* `pt50`: nose, shoulders, elbows, body wrists, hands, BlazePose hand points; not the neck.

Every point without a joint has confidence 0 and coordinates 0 (never an invented value); a joint with NaN/inf
coordinates in a frame gives its points confidence 0 in that frame. Point confidence is otherwise 1 (or the
`confidence` argument).

Axes and projection: positions are first put in image axes (x right, y down, z away from the viewer): y-up
skeletons (`spec.y_down=False`, e.g. SMPL-X with +x the signer's left and +z forward) as `(x, -y, -z)`, y-down
skeletons unchanged. `POSE_WORLD_LANDMARKS` holds these, exactly (as MediaPipe's world landmarks, but with the
skeleton's own origin). The pixel components hold the orthographic projection `pixel = scale * world + offset` into
a `CANVAS_SIZE` x `CANVAS_SIZE` (500 x 500, as spoken-to-signed's files) header, one `scale` and `offset` per file:
`scale = CANVAS_FILL * CANVAS_SIZE / max(x extent, y extent)` over every written point of every frame, x and y
centred on the canvas, z centred on 0 and on the same pixel scale as x (MediaPipe's convention). The header depth
is 0, as in spoken-to-signed's files. Positions that are pixels already, i.e. an image-axis skeleton whose written
x and y are all non-negative (`holistic` read from MediaPipe `.pose` files, and what models trained on it generate),
are written unchanged (`scale` 1, `offset` 0) in a header of at least 500 x 500 that covers them, so that a
`holistic` sequence reads back in its dataset's units. `pose_to_positions` inverts the projection (it fits `scale`
and `offset` from the body points present in both the pixel and the world component), so files written here read
back to the input positions (to float32 rounding) at every mapped joint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ..skeletons.holistic import HAND_POINTS, holistic_joint_table
from ..skeletons.spec import SkeletonSpec
from .frames import PART_COLORS, check_positions

POSE, FACE = "POSE_LANDMARKS", "FACE_LANDMARKS"
LEFT_HAND, RIGHT_HAND = "LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS"
POSE_WORLD = "POSE_WORLD_LANDMARKS"
POINT_FORMAT = "XYZC"
CANVAS_SIZE = 500
CANVAS_FILL = 0.9  # the signer's larger extent covers 90% of the canvas (5% margins)

# MediaPipe PoseLandmark names and POSE_CONNECTIONS, HandLandmark names and HAND_CONNECTIONS (spelled out here:
# pose_format.utils.holistic imports mediapipe, which hf-sign does not depend on).
# fmt: off
BODY_POINTS: Tuple[str, ...] = (
    "NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE", "RIGHT_EYE_OUTER",
    "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW",
    "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST", "LEFT_PINKY", "RIGHT_PINKY", "LEFT_INDEX", "RIGHT_INDEX",
    "LEFT_THUMB", "RIGHT_THUMB", "LEFT_HIP", "RIGHT_HIP", "LEFT_KNEE", "RIGHT_KNEE", "LEFT_ANKLE", "RIGHT_ANKLE",
    "LEFT_HEEL", "RIGHT_HEEL", "LEFT_FOOT_INDEX", "RIGHT_FOOT_INDEX",
)
BODY_LIMBS: Tuple[Tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10), (11, 12), (11, 13), (13, 15),
    (15, 17), (15, 19), (15, 21), (17, 19), (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20), (11, 23),
    (12, 24), (23, 24), (23, 25), (24, 26), (25, 27), (26, 28), (27, 29), (28, 30), (29, 31), (30, 32), (27, 31),
    (28, 32),
)
MEDIAPIPE_HAND_POINTS: Tuple[str, ...] = tuple(HAND_POINTS)
# Tree parents of the MediaPipe hand (wrist root, each finger a chain from the wrist).
MEDIAPIPE_HAND_PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
MEDIAPIPE_HAND_LIMBS: Tuple[Tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)
# fmt: on
NUM_FACE_POINTS = 478  # 468 face-mesh points + 10 iris points (MediaPipe Holistic with refined landmarks)
FACE_POINTS: Tuple[str, ...] = tuple(str(i) for i in range(NUM_FACE_POINTS))

# BlazePose's hand points on the body, by the hand point they denote (module docstring).
_BODY_FROM_HAND = (("PINKY", "PINKY_MCP"), ("INDEX", "INDEX_FINGER_MCP"), ("THUMB", "THUMB_MCP"))


def _face_limbs() -> List[Tuple[int, int]]:
    """Lines between the face-mesh points of the `holistic` face subset (brows, eyelids, lips, chin)."""
    rows = {name: (component, point) for name, component, point, _ in holistic_joint_table(face=True)}
    limbs = []
    for name, component, point, parent in holistic_joint_table(face=True):
        if component == FACE and parent in rows and rows[parent][0] == FACE:
            limbs.append((int(rows[parent][1]), int(point)))
    return limbs


def component_points() -> List[Tuple[str, Tuple[str, ...], List[Tuple[int, int]], str]]:
    """`(component, point_names, limbs, part)` of the five components, in spoken-to-signed's file order."""
    hand_limbs = [tuple(limb) for limb in MEDIAPIPE_HAND_LIMBS]
    body_limbs = [tuple(limb) for limb in BODY_LIMBS]
    return [
        (POSE, BODY_POINTS, body_limbs, "body"),
        (FACE, FACE_POINTS, _face_limbs(), "face"),
        (LEFT_HAND, MEDIAPIPE_HAND_POINTS, hand_limbs, "left_hand"),
        (RIGHT_HAND, MEDIAPIPE_HAND_POINTS, hand_limbs, "right_hand"),
        (POSE_WORLD, BODY_POINTS, body_limbs, "body"),
    ]


def _is_mediapipe_hand(spec: SkeletonSpec, joints: List[int]) -> bool:
    if len(joints) != 21:
        return False
    local = {j: i for i, j in enumerate(joints)}
    parents = tuple(local.get(spec.position_parents[j], -1) for j in joints)
    return parents == MEDIAPIPE_HAND_PARENTS


def mediapipe_mapping(spec: SkeletonSpec) -> List[Tuple[int, str, str]]:
    """`(position_joint, component, point)` for every pixel-component point a joint of `spec` fills.

    The rules are in the module docstring; each point gets at most one joint (the first rule that names it), a joint
    may fill several points (the SMPL-X wrist is `POSE_LANDMARKS/LEFT_WRIST` and `LEFT_HAND_LANDMARKS/WRIST`).
    `POSE_WORLD_LANDMARKS` mirrors the `POSE_LANDMARKS` entries.
    """
    table = {name: (component, point) for name, component, point, _ in holistic_joint_table(face=True) if component}
    out: List[Tuple[int, str, str]] = []
    taken = set()

    def add(joint: int, component: str, point: str) -> None:
        if (component, point) not in taken:
            taken.add((component, point))
            out.append((int(joint), component, point))

    hands: Dict[str, List[int]] = {}
    for part, component in (("left_hand", LEFT_HAND), ("right_hand", RIGHT_HAND)):
        joints = sorted(int(j) for j in spec.position_parts.get(part, ()))
        if _is_mediapipe_hand(spec, joints):
            hands[part] = joints
            for k, j in enumerate(joints):
                add(j, component, MEDIAPIPE_HAND_POINTS[k])
    for j, name in enumerate(spec.position_joint_names):
        if name in table:
            add(j, *table[name])
    for part, side in (("left_hand", "LEFT"), ("right_hand", "RIGHT")):
        if part in hands:
            for body_point, hand_point in _BODY_FROM_HAND:
                add(hands[part][MEDIAPIPE_HAND_POINTS.index(hand_point)], POSE, f"{side}_{body_point}")
            add(hands[part][0], POSE, f"{side}_WRIST")  # only taken when the body has no wrist of its own
    return out


def _image_axes(spec: SkeletonSpec) -> np.ndarray:
    return np.array([1.0, 1.0, 1.0] if spec.y_down else [1.0, -1.0, -1.0], dtype=np.float32)


def fit_projection(world: np.ndarray, visible: np.ndarray) -> Tuple[float, np.ndarray]:
    """`(scale, offset)` of the orthographic projection `pixel = scale * world + offset` (module docstring).

    Args:
        world (`np.ndarray`): `(..., 3)` positions in image axes.
        visible (`np.ndarray`): boolean mask of `world.shape[:-1]`, the points to fit (at least one).
    """
    pts = world[visible].astype(np.float64)
    lo, hi = pts.min(0), pts.max(0)
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1]))
    scale = CANVAS_FILL * CANVAS_SIZE / extent if extent > 0 else 1.0
    centre = (lo + hi) / 2
    offset = np.array([CANVAS_SIZE / 2, CANVAS_SIZE / 2, 0.0]) - scale * centre
    return float(scale), offset


def positions_to_pose(positions, spec: SkeletonSpec, fps: float, confidence: Optional[np.ndarray] = None):
    """Build a MediaPipe-Holistic-shaped `pose_format.Pose` from joint positions (layout in the module docstring).

    Args:
        positions (`np.ndarray`): `(T, J, 3)` positions of `spec`'s position view, in dataset units.
        spec (`SkeletonSpec`): the skeleton of `positions`.
        fps (`float`): frame rate stored in the file.
        confidence (`np.ndarray`, *optional*): `(T, J)` per-joint confidence in [0, 1]. Defaults to 1 for finite
            joints; joints with NaN/inf coordinates always get 0 (their coordinates are written as 0).

    Returns:
        `pose_format.Pose` with one person, 586 points of format `XYZC`, a 500 x 500 header (larger for pixel
        positions beyond it) and a `NumPyPoseBody`.

    Raises:
        `ValueError` for a wrong shape, an empty sequence, a non-positive `fps`, a `confidence` of the wrong shape, or
        a sequence where no written joint is finite in any frame.
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
    world = np.where(finite[..., None], pos, 0.0).astype(np.float32) * _image_axes(spec)

    mapping = mediapipe_mapping(spec)
    used = sorted({j for j, _, _ in mapping})
    if not used:
        raise ValueError(
            f"skeleton {spec.name!r} has no joint with a MediaPipe Holistic point (joints are matched by name, see "
            "`mediapipe_mapping`); it cannot be exported as a .pose file."
        )
    if not finite[:, used].any():
        raise ValueError(
            f"`positions` has no finite joint in any of its {len(pos)} frames among the {len(used)} joints of "
            f"skeleton {spec.name!r} that have a MediaPipe point; nothing to export."
        )
    visible = np.zeros_like(finite)
    visible[:, used] = finite[:, used]
    if spec.y_down and (world[visible][:, :2] >= 0).all():  # pixels already (module docstring): unchanged
        scale, offset = 1.0, np.zeros(3)
        width, height = (max(CANVAS_SIZE, int(np.ceil(v))) for v in world[visible][:, :2].max(0))
    else:
        scale, offset = fit_projection(world, visible)
        width = height = CANVAS_SIZE
    pixels = (scale * world.astype(np.float64) + offset).astype(np.float32)

    layout = component_points()
    start, offsets = 0, {}
    for name, points, _, _ in layout:
        offsets[name] = (start, {p: i for i, p in enumerate(points)})
        start += len(points)
    num_frames = len(pos)
    data = np.zeros((num_frames, 1, start, 3), dtype=np.float32)
    point_conf = np.zeros((num_frames, 1, start), dtype=np.float32)
    for joint, component, point in mapping:
        targets = [(component, pixels)] + ([(POSE_WORLD, world)] if component == POSE else [])
        for name, values in targets:
            first, index = offsets[name]
            k = first + index[point]
            data[:, 0, k] = np.where(finite[:, joint, None], values[:, joint], 0.0)
            point_conf[:, 0, k] = conf[:, joint]
    components = [
        PoseHeaderComponent(
            name=name, points=list(points), limbs=limbs, colors=[PART_COLORS[part]], point_format=POINT_FORMAT
        )
        for name, points, limbs, part in layout
    ]
    dims = PoseHeaderDimensions(width=width, height=height, depth=0)
    header = PoseHeader(version=0.2, dimensions=dims, components=components)
    body = NumPyPoseBody(fps=float(fps), data=data, confidence=point_conf)
    return Pose(header, body)


def save_pose(
    positions, spec: SkeletonSpec, fps: float, path: Union[str, Path], confidence: Optional[np.ndarray] = None
) -> Path:
    """Write positions `(T, J, 3)` to a MediaPipe-Holistic-shaped `.pose` (`positions_to_pose`); returns the path."""
    pose = positions_to_pose(positions, spec, fps, confidence=confidence)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pose.write(fh)
    return path


def _component_values(pose, person: int) -> Tuple[Dict[str, Tuple[np.ndarray, np.ndarray, Dict[str, int]]], int]:
    data = np.asarray(getattr(pose.body.data, "data", pose.body.data))
    conf = np.asarray(getattr(pose.body.confidence, "data", pose.body.confidence))
    if data.ndim != 4 or data.shape[-1] < 3:
        raise ValueError(f"pose body data must have shape (frames, people, points, >=3 dims); got {data.shape}.")
    if not 0 <= person < data.shape[1]:
        raise ValueError(
            f"`person`={person} out of range: the pose has {data.shape[1]} people (valid 0..{data.shape[1] - 1})."
        )
    out, start = {}, 0
    for c in pose.header.components:
        sl = slice(start, start + len(c.points))
        index = {p: i for i, p in enumerate(c.points)}
        out[c.name] = (data[:, person, sl, :3].astype(np.float64), conf[:, person, sl], index)
        start += len(c.points)
    return out, data.shape[0]


def pose_to_positions(pose, spec: SkeletonSpec, person: int = 0) -> np.ndarray:
    """Inverse of `positions_to_pose`: `(T, J, 3)` float32 positions of `spec` from a `Pose` written by it.

    Body points are read from `POSE_WORLD_LANDMARKS` (exact); hand and face points from the pixel components,
    through the inverse of the projection, whose `scale` and `offset` are fitted (least squares) on the body points
    present in both `POSE_LANDMARKS` and `POSE_WORLD_LANDMARKS`. Joints with no MediaPipe point (e.g. `smplx133`'s
    pelvis, spine, neck, collars and head) and points with confidence 0 come back as NaN.

    Args:
        pose (`pose_format.Pose`): e.g. `Pose.read(open(path, "rb").read())`.
        spec (`SkeletonSpec`): the skeleton the file was written for.
        person (`int`, defaults to 0): which person of the file to read.

    Raises:
        `ValueError` when a component or point is missing, or no body point is in both body components.
    """
    values, num_frames = _component_values(pose, person)
    for name, points, _, _ in component_points():
        if name not in values:
            raise ValueError(
                f"pose has no component {name!r}; expected the MediaPipe Holistic layout with components "
                f"{[c[0] for c in component_points()]} (found {list(values)})."
            )
        missing = [p for p in points if p not in values[name][2]]
        if missing:
            raise ValueError(f"component {name!r} lacks the MediaPipe points {missing[:5]} ({len(missing)} missing).")
    px, px_conf, px_index = values[POSE]
    wd, wd_conf, wd_index = values[POSE_WORLD]
    order = [(px_index[p], wd_index[p]) for p in BODY_POINTS]
    both = (px_conf[:, [a for a, _ in order]] > 0) & (wd_conf[:, [b for _, b in order]] > 0)
    if not both.any():
        raise ValueError(
            "no body point is present in both POSE_LANDMARKS and POSE_WORLD_LANDMARKS; the pixel-to-world "
            "projection cannot be recovered (is this file written by hf-sign?)."
        )
    p = px[:, [a for a, _ in order]][both]
    w = wd[:, [b for _, b in order]][both]
    wc, pc = w - w.mean(0), p - p.mean(0)
    denom = float((wc * wc).sum())
    scale = float((wc * pc).sum()) / denom if denom > 0 else 1.0
    offset = p.mean(0) - scale * w.mean(0)

    out = np.full((num_frames, spec.num_position_joints, 3), np.nan, dtype=np.float64)
    # A joint that fills several points is read from its body point if it has one (exact), else its first point.
    for joint, component, point in sorted(mediapipe_mapping(spec), key=lambda m: m[1] != POSE):
        if not np.isnan(out[:, joint]).all():
            continue
        if component == POSE:
            xyz, conf = wd[:, wd_index[point]], wd_conf[:, wd_index[point]]
        else:
            data, confs, index = values[component]
            xyz, conf = (data[:, index[point]] - offset) / scale, confs[:, index[point]]
        out[:, joint] = np.where((conf > 0)[:, None], xyz, np.nan)
    return (out * _image_axes(spec)).astype(np.float32)

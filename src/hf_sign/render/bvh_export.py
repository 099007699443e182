"""BVH export of the upper body and hands: `save_bvh(poses, skeleton, path, fps)` and `bvh_text`.

The BVH hierarchy is the skeleton's position tree (`spec.position_joint_names` / `position_parents`, one root), every
position joint a `JOINT` under its own name, in depth-first order (children in index order); a leaf joint (a
fingertip, ...) ends in an `End Site` at offset 0. The root has six channels
`Xposition Yposition Zposition Zrotation Xrotation Yrotation`, every other joint three,
`Zrotation Xrotation Yrotation`, in degrees: a joint's local rotation is `Rz @ Rx @ Ry` (the order the channels are
listed in) and forward kinematics is the usual `position(child) = position(parent) + G(parent) @ OFFSET(child)`,
`G(joint) = G(parent) @ local(joint)`. The root's `OFFSET` is 0; its position channels carry its position per frame.
Units are the skeleton's (metres for `smplx133`, as stored for `holistic` and `pt50`); axes are y up: SMPL-X's own
(+x the signer's left, +z forward), and `(x, -y, -z)` of the image-axis skeletons (`spec.y_down=True`).

Two ways to the rotations:

* `smplx133` features (`(T, 133)` axis-angles): the BVH is the SMPL-X kinematic chain itself. `OFFSET`s are the rest
  (T-pose) joints from the skeleton's forward kinematics of the zero pose (the proxy body, or the licensed model
  under `HF_SIGN_SMPLX_DIR`), and each joint's local rotation is its feature rotation (neck, collars, head,
  shoulders, elbows, wrists, finger joints 1-3, which are the MediaPipe cmc/mcp/ip and mcp/pip/dip joints); pelvis,
  spine1-3 and the fingertips do not rotate. Jaw and expression have no joint in the position tree and are not
  written. The BVH reproduces the skeleton's joint positions up to the text rounding of the numbers (with the
  licensed model, fingertips are skinned vertices and follow their finger joint only approximately).
* joint positions (`(T, J, 3)`, any skeleton; also what `holistic` and `pt50` features are): a rest skeleton is
  fitted, then rotations solved per frame. A joint with several children (`neck` -> nose and shoulders, a wrist ->
  five fingers) gets one zero-offset helper joint per child, `<joint>_to_<child>`, so that every bone turns on its
  own (one rotation cannot follow bones that move relative to each other). Rest `OFFSET` of each bone: its median
  length over the frames along its mean unit direction. Per frame, in tree order, the joint (or helper) above a
  bone turns by the shortest arc from where its parent's rotation leaves the bone (`G(parent) @ OFFSET`) to the
  observed bone (no twist about the bone, which one bone cannot tell). The root's position channels are its
  observed position. So every bone direction is kept exactly and the only error is each bone's length deviation
  from its median, accumulated along the chain to a joint: positions of a rigid skeleton (e.g. `smplx133` joints
  from forward kinematics) come back to rounding, estimated keypoints (`holistic` from MediaPipe) within their
  bone-length jitter.

Bad input (no frame, a wrong feature width, NaN/inf values, an unknown skeleton, a forest) raises a `ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple, Union

import numpy as np

from ..skeletons.spec import SkeletonSpec, get_skeleton

ROOT_CHANNELS = ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
JOINT_CHANNELS = ("Zrotation", "Xrotation", "Yrotation")
_FLIP = np.array([1.0, -1.0, -1.0])  # image axes (y down, z away) -> y up, z forward


# ------------------------------------------------------------------------------------------------ rotations
def matrix_to_euler_zxy(rot: np.ndarray) -> np.ndarray:
    """`(..., 3, 3)` rotation matrices -> `(..., 3)` angles `(z, x, y)` in degrees with `R = Rz(z) @ Rx(x) @ Ry(y)`."""
    x = np.arcsin(np.clip(rot[..., 2, 1], -1.0, 1.0))
    z = np.arctan2(-rot[..., 0, 1], rot[..., 1, 1])
    y = np.arctan2(-rot[..., 2, 0], rot[..., 2, 2])
    # gimbal lock (x = +-90 degrees): only z +- y is defined; put it all in z
    lock = np.abs(rot[..., 2, 1]) > 1.0 - 1e-9
    z = np.where(lock, np.arctan2(rot[..., 1, 0], rot[..., 0, 0]), z)
    y = np.where(lock, 0.0, y)
    return np.degrees(np.stack([z, x, y], axis=-1))


def _shortest_arc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`(T, 3, 3)` rotations taking the directions of `a` onto those of `b` (`(T, 3)` each) about `a x b`."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis, axis=-1), np.sum(a * b, axis=-1)
    # opposite directions: any axis perpendicular to `a` does; take the one from the least aligned world axis
    helper = np.eye(3)[np.argmin(np.abs(a), axis=-1)]
    flip_axis = np.cross(a, helper)
    axis = np.where((sin < 1e-9)[:, None] & (cos < 0)[:, None], flip_axis, axis)
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)
    angle = np.arctan2(sin, cos)
    k = np.zeros(a.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -axis[..., 2], axis[..., 1], -axis[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    s, c = np.sin(angle)[:, None, None], np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def _tree(spec: SkeletonSpec) -> Tuple[int, List[List[int]], List[int]]:
    """`(root, children, depth-first order)` of the position tree; raises for a forest."""
    parents = spec.position_parents
    roots = [j for j, p in enumerate(parents) if p < 0]
    if len(roots) != 1:
        names = [spec.position_joint_names[j] for j in roots]
        raise ValueError(f"BVH needs a position tree with one root; skeleton {spec.name!r} has roots {names}.")
    children: List[List[int]] = [[] for _ in parents]
    for j, p in enumerate(parents):
        if p >= 0:
            children[p].append(j)
    order, stack = [], [roots[0]]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children[j]))
    return roots[0], children, order


def _check_fps(fps) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float, np.number)) or not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"`fps` must be a positive number; got {fps!r}.")
    return float(fps)


def _check_finite(arr: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        frame = int(np.argwhere(bad)[0, 0])
        raise ValueError(f"`{what}` has NaN/inf values in frame {frame} (of {len(arr)}); BVH needs every joint.")


def _as_input(poses, spec: SkeletonSpec) -> Tuple[str, np.ndarray]:
    """`("features", (T, D))` or `("positions", (T, J, 3))`, checked."""
    if hasattr(poses, "detach"):
        poses = poses.detach().cpu().numpy()
    arr = np.asarray(poses, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == spec.feature_dim and len(arr):
        kind = "features"
    elif arr.ndim == 3 and arr.shape[1:] == (spec.num_position_joints, 3) and len(arr):
        kind = "positions"
    else:
        raise ValueError(
            f"`poses` must be features (num_frames >= 1, {spec.feature_dim}) or positions (num_frames >= 1, "
            f"{spec.num_position_joints}, 3) for skeleton {spec.name!r}; got shape {arr.shape}."
        )
    _check_finite(arr, "poses")
    return kind, arr


def _smplx_feature_joint(name: str) -> Union[str, None]:
    """The `smplx133` feature joint whose rotation a position joint carries (`None`: it does not rotate)."""
    from ..skeletons.smplx133 import FEATURE_JOINT_NAMES

    if name in FEATURE_JOINT_NAMES:
        return name
    side, finger, kind = name.split("_") if name.count("_") == 2 else (None, None, None)
    kinds = ("cmc", "mcp", "ip") if finger == "thumb" else ("mcp", "pip", "dip")
    if kind in kinds:  # SMPL-X finger joints 1-3 are these MediaPipe joints (fingertips: kind "tip", no joint)
        return f"{side}_{finger}{kinds.index(kind) + 1}"
    return None


@dataclass
class BvhSkeleton:
    """A BVH hierarchy with its motion, before it is written.

    Args:
        names (`List[str]`): joint names, parents before children (depth-first order).
        parents (`List[int]`): parent node per joint, -1 for the root (node 0).
        offsets (`np.ndarray`): `(N, 3)` rest offset of each joint from its parent (the root's is 0).
        rotations (`np.ndarray`): `(T, N, 3, 3)` local rotation of each joint per frame.
        root_positions (`np.ndarray`): `(T, 3)` root position per frame.
    """

    names: List[str]
    parents: List[int]
    offsets: np.ndarray
    rotations: np.ndarray
    root_positions: np.ndarray


def _smplx133_motion(features: np.ndarray, spec: SkeletonSpec) -> BvhSkeleton:
    """The SMPL-X chain of `smplx133` features: rest offsets from the zero pose, feature rotations (docstring)."""
    import torch

    from ..skeletons.smplx133 import axis_angle_to_matrix, feature_slice

    root, children, order = _tree(spec)
    rest = np.asarray(spec.to_positions(np.zeros((1, spec.feature_dim), dtype=np.float64)), dtype=np.float64)[0]
    num_frames = len(features)
    node = {j: n for n, j in enumerate(order)}
    offsets = np.zeros((len(order), 3))
    rotations = np.broadcast_to(np.eye(3), (num_frames, len(order), 3, 3)).copy()
    for j in order:
        parent = spec.position_parents[j]
        if parent >= 0:
            offsets[node[j]] = rest[j] - rest[parent]
        joint = _smplx_feature_joint(spec.position_joint_names[j])
        if joint is not None:
            rotvec = torch.from_numpy(np.ascontiguousarray(features[:, feature_slice(joint)]))
            rotations[:, node[j]] = axis_angle_to_matrix(rotvec).numpy()
    parents = [-1 if spec.position_parents[j] < 0 else node[spec.position_parents[j]] for j in order]
    names = [spec.position_joint_names[j] for j in order]
    return BvhSkeleton(names, parents, offsets, rotations, np.repeat(rest[root][None], num_frames, axis=0))


def fit_rest_skeleton(positions: np.ndarray, spec: SkeletonSpec) -> BvhSkeleton:
    """Fit a rest skeleton and per-frame rotations to y-up joint positions `(T, J, 3)` (module docstring).

    A joint with several children gets one zero-offset helper joint per child, named `<joint>_to_<child>`, so that
    every bone turns on its own and each bone direction is matched exactly; the remaining error is the deviation of
    the bone lengths from their medians.
    """
    root, children, order = _tree(spec)
    parents_j = spec.position_parents
    num_frames = len(positions)
    names: List[str] = []
    parents: List[int] = []
    joint_of: List[int] = []  # position joint whose position the node sits at
    offsets: List[np.ndarray] = []

    def add(j: int, parent: int, name: str, offset: np.ndarray) -> int:
        names.append(name)
        parents.append(parent)
        joint_of.append(j)
        offsets.append(offset)
        return len(names) - 1

    def rest_offset(j: int) -> np.ndarray:
        bone = positions[:, j] - positions[:, parents_j[j]]
        length = np.linalg.norm(bone, axis=-1)
        moving = length > 1e-12
        direction = (bone[moving] / length[moving, None]).mean(0) if moving.any() else np.zeros(3)
        norm = np.linalg.norm(direction)
        return np.median(length) * (direction / norm if norm > 1e-9 else np.array([0.0, 1.0, 0.0]))

    def visit(j: int, parent: int) -> None:
        n = add(j, parent, spec.position_joint_names[j], np.zeros(3) if parent < 0 else rest_offset(j))
        kids = children[j]
        for c in kids:
            if len(kids) > 1:
                helper = add(j, n, f"{spec.position_joint_names[j]}_to_{spec.position_joint_names[c]}", np.zeros(3))
                visit(c, helper)
            else:
                visit(c, n)

    visit(root, -1)
    offsets_arr = np.stack(offsets)
    node_children: List[List[int]] = [[] for _ in names]
    for n, p in enumerate(parents):
        if p >= 0:
            node_children[p].append(n)
    glob = np.broadcast_to(np.eye(3), (num_frames, len(names), 3, 3)).copy()
    local = glob.copy()
    for n in range(len(names)):  # parents come first
        parent_rot = glob[:, parents[n]] if parents[n] >= 0 else local[:, n]
        kids = node_children[n]
        if len(kids) == 1 and np.any(offsets_arr[kids[0]] != 0):
            k = kids[0]
            bone = positions[:, joint_of[k]] - positions[:, joint_of[n]]
            glob[:, n] = _shortest_arc(parent_rot @ offsets_arr[k], bone) @ parent_rot
        else:  # a leaf, or a branching joint whose helpers do the turning
            glob[:, n] = parent_rot
        local[:, n] = np.swapaxes(parent_rot, -1, -2) @ glob[:, n]
    return BvhSkeleton(names, parents, offsets_arr, local, positions[:, root].copy())


def bvh_text(poses, skeleton: Union[str, SkeletonSpec], fps: float) -> str:
    """The BVH file (as text) of a pose sequence; see `save_bvh`."""
    spec = get_skeleton(skeleton) if isinstance(skeleton, str) else skeleton
    fps = _check_fps(fps)
    kind, arr = _as_input(poses, spec)
    if kind == "features" and spec.name == "smplx133":
        bvh = _smplx133_motion(arr, spec)
    else:
        positions = arr if kind == "positions" else np.asarray(spec.to_positions(arr), dtype=np.float64)
        _check_finite(positions, "positions")
        bvh = fit_rest_skeleton(positions * _FLIP if spec.y_down else positions, spec)
    return format_bvh(bvh, fps)


def format_bvh(bvh: BvhSkeleton, fps: float) -> str:
    """Write a [`BvhSkeleton`] as BVH text (`HIERARCHY` then `MOTION`, `Frame Time` = 1 / `fps`)."""
    children: List[List[int]] = [[] for _ in bvh.names]
    for n, p in enumerate(bvh.parents):
        if p >= 0:
            children[p].append(n)
    lines = ["HIERARCHY"]

    def write(n: int, depth: int) -> None:
        pad = "  " * depth
        channels = ROOT_CHANNELS if bvh.parents[n] < 0 else JOINT_CHANNELS
        lines.append(f"{pad}{'ROOT' if bvh.parents[n] < 0 else 'JOINT'} {bvh.names[n]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {' '.join(f'{v:.9g}' for v in bvh.offsets[n])}")
        lines.append(f"{pad}  CHANNELS {len(channels)} {' '.join(channels)}")
        for c in children[n]:
            write(c, depth + 1)
        if not children[n]:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0 0 0", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    write(0, 0)
    euler = matrix_to_euler_zxy(bvh.rotations)  # nodes are in depth-first order: the order the channels are written
    values = np.concatenate([bvh.root_positions, euler.reshape(len(euler), -1)], axis=1)
    lines += ["MOTION", f"Frames: {len(values)}", f"Frame Time: {1.0 / fps:.9g}"]
    lines += [" ".join(f"{v:.9g}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def save_bvh(poses, skeleton: Union[str, SkeletonSpec], path: Union[str, Path], fps: float) -> Path:
    """Write a pose sequence as a BVH file of the skeleton's position tree (module docstring). Returns the path.

    Args:
        poses (`np.ndarray` or `torch.Tensor`): features `(T, skeleton.feature_dim)` in the dataset's units, or joint
            positions `(T, J, 3)` of the skeleton's position view. `smplx133` features keep their rotations; anything
            else goes through a fitted rest skeleton.
        skeleton (`str` or `SkeletonSpec`): the poses' skeleton (`"smplx133"`, `"holistic"`, `"pt50"`, ...).
        path (`str` or `Path`): the `.bvh` file to write (folders are created).
        fps (`float`): frame rate; the file's `Frame Time` is `1 / fps`.

    Raises:
        `ValueError` for an unknown skeleton, a wrong shape, no frame, NaN/inf values or a non-positive `fps`.
    """
    text = bvh_text(poses, skeleton, fps)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path

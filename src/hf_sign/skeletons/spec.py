"""`SkeletonSpec`: the one description of a pose representation that every model, metric and
renderer in hf-sign reads.

A representation has two views:

* the *feature* view: what a dataset stores per frame (`feature_dim` numbers). The feature vector
  is cut into `num_joints` consecutive slices, one per joint (`joint_slices`), so a model can lift
  each joint with its own MLP (Sign-SALD) whatever the per-joint width is (3 for positions or
  axis-angles, 10 for SMPL-X expression coefficients, ...).
* the *position* view: 3D joint positions (`position_joint_names`, `position_parents`) used by
  metrics (DTW-JPE, MPJPE) and rendering. For position-based representations the two views are the
  same skeleton; for `smplx133` the positions come from forward kinematics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

PARTS = ("body", "left_hand", "right_hand", "face")


@dataclass(frozen=True)
class SkeletonSpec:
    """Joints, topology, parts and pooling groups of one pose representation.

    Args:
        name (`str`): registry name, e.g. `"smplx133"`.
        joint_names (`Sequence[str]`): one name per feature joint.
        parents (`Sequence[int]`): parent index per feature joint, `-1` for a root. A forest is allowed.
        joint_dims (`Sequence[int]`): width of each joint's slice of the feature vector.
        parts (`Dict[str, Sequence[int]]`): feature-joint indices per part (`body`, `left_hand`,
            `right_hand`, `face`); every joint belongs to exactly one part.
        pooling_groups (`Dict[int, Sequence[Sequence[int]]]`): for each number of atomic joints
            (5, 7, 9), a partition of the feature joints into that many groups (Sign-SALD STPool).
        atomic_joint_names (`Dict[int, Sequence[str]]`): a name per pooling group.
        position_joint_names (`Sequence[str]`): names of the 3D joints returned by `to_positions`.
        position_parents (`Sequence[int]`): parent table of the position skeleton (for bones, drawing).
        position_parts (`Dict[str, Sequence[int]]`): position-joint indices per part.
        root_index (`int`): position joint used to translate the body to its root for DTW-JPE.
        wrist_indices (`Tuple[int, int]`): left and right wrist position joints (hand DTW-JPE).
        fps (`float`): the representation's native frame rate.
        feature_kind (`str`): `"position"` (features are xyz per joint) or `"axis_angle"`.
        y_down (`bool`): positions use image coordinates (y grows downwards, MediaPipe/OpenPose);
            renderers flip them so the signer stands upright.
    """

    name: str
    joint_names: Tuple[str, ...]
    parents: Tuple[int, ...]
    joint_dims: Tuple[int, ...]
    parts: Dict[str, Tuple[int, ...]]
    pooling_groups: Dict[int, Tuple[Tuple[int, ...], ...]]
    atomic_joint_names: Dict[int, Tuple[str, ...]]
    position_joint_names: Tuple[str, ...]
    position_parents: Tuple[int, ...]
    position_parts: Dict[str, Tuple[int, ...]]
    root_index: int
    wrist_indices: Tuple[int, int]
    fps: float = 25.0
    feature_kind: str = "position"
    y_down: bool = False
    _to_positions: Optional[Callable] = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        n = len(self.joint_names)
        if len(self.parents) != n or len(self.joint_dims) != n:
            raise ValueError(
                f"SkeletonSpec {self.name!r}: `parents` ({len(self.parents)}) and `joint_dims` "
                f"({len(self.joint_dims)}) must have one entry per joint ({n})."
            )
        for i, p in enumerate(self.parents):
            if not (p == -1 or 0 <= p < n) or p == i:
                raise ValueError(
                    f"SkeletonSpec {self.name!r}: parent of joint {i} is {p}; expected -1 or another joint index."
                )
        covered = sorted(i for idx in self.parts.values() for i in idx)
        if covered != list(range(n)):
            raise ValueError(f"SkeletonSpec {self.name!r}: `parts` must partition the {n} joints exactly once.")
        for k, groups in self.pooling_groups.items():
            flat = sorted(i for g in groups for i in g)
            if len(groups) != k or flat != list(range(n)):
                raise ValueError(
                    f"SkeletonSpec {self.name!r}: pooling_groups[{k}] must be {k} groups that partition all {n} "
                    "joints."
                )
        if len(self.position_parents) != len(self.position_joint_names):
            raise ValueError(f"SkeletonSpec {self.name!r}: `position_parents` must match `position_joint_names`.")

    # ----------------------------------------------------------------------------- feature view
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def feature_dim(self) -> int:
        return int(sum(self.joint_dims))

    @property
    def joint_slices(self) -> List[slice]:
        """Slice of the feature vector that belongs to each joint."""
        offsets = np.concatenate([[0], np.cumsum(self.joint_dims)])
        return [slice(int(a), int(b)) for a, b in zip(offsets[:-1], offsets[1:])]

    @property
    def bones(self) -> List[Tuple[int, int]]:
        """(parent, child) pairs of the feature skeleton."""
        return [(p, c) for c, p in enumerate(self.parents) if p >= 0]

    def adjacency(self, normalized: bool = True, self_loops: bool = True) -> np.ndarray:
        """Symmetric joint adjacency `A` (J, J) of the feature skeleton.

        With `normalized=True` returns the GCN propagation matrix D^-1/2 (A + I) D^-1/2 (Kipf & Welling),
        which keeps feature scale stable across layers.
        """
        n = self.num_joints
        a = np.zeros((n, n), dtype=np.float32)
        for p, c in self.bones:
            a[p, c] = a[c, p] = 1.0
        if self_loops:
            a += np.eye(n, dtype=np.float32)
        if not normalized:
            return a
        d = a.sum(1)
        d_inv_sqrt = np.where(d > 0, 1.0 / np.sqrt(np.maximum(d, 1e-12)), 0.0).astype(np.float32)
        return d_inv_sqrt[:, None] * a * d_inv_sqrt[None, :]

    def pooling_matrix(self, num_atomic: int = 7) -> np.ndarray:
        """(num_atomic, J) averaging matrix that pools feature joints into atomic joints."""
        if num_atomic not in self.pooling_groups:
            raise ValueError(
                f"num_atomic={num_atomic} is not defined for skeleton {self.name!r}; expected one of "
                f"{sorted(self.pooling_groups)}."
            )
        m = np.zeros((num_atomic, self.num_joints), dtype=np.float32)
        for g, joints in enumerate(self.pooling_groups[num_atomic]):
            m[g, list(joints)] = 1.0 / len(joints)
        return m

    # ---------------------------------------------------------------------------- position view
    @property
    def num_position_joints(self) -> int:
        return len(self.position_joint_names)

    @property
    def position_bones(self) -> List[Tuple[int, int]]:
        return [(p, c) for c, p in enumerate(self.position_parents) if p >= 0]

    def check_features(self, features, field_name: str = "poses") -> None:
        """Raise a `ValueError` naming `field_name` unless the last axis is `feature_dim`."""
        shape = tuple(getattr(features, "shape", ()))
        if len(shape) < 2 or shape[-1] != self.feature_dim:
            raise ValueError(
                f"`{field_name}` must have shape (..., num_frames, {self.feature_dim}) for skeleton {self.name!r}; "
                f"got {shape}."
            )

    def to_positions(self, features, **kwargs):
        """Map features (..., T, feature_dim) to 3D joint positions (..., T, num_position_joints, 3).

        Accepts numpy arrays or torch tensors and returns the same type.
        """
        self.check_features(features, "features")
        if self._to_positions is not None:
            return self._to_positions(features, **kwargs)
        # position-based representation: the feature vector is xyz per joint.
        return features.reshape(*features.shape[:-1], self.num_joints, 3)


_REGISTRY: Dict[str, Callable[[], SkeletonSpec]] = {}


def register_skeleton(name: str):
    """Decorator registering a zero-argument factory returning a `SkeletonSpec`."""

    def deco(fn):
        _REGISTRY[name] = fn
        return fn

    return deco


_CACHE: Dict[str, SkeletonSpec] = {}


def get_skeleton(name: str) -> SkeletonSpec:
    """Return the registered `SkeletonSpec` called `name` (e.g. `"smplx133"`, `"holistic"`, `"pt50"`)."""
    from . import holistic, pt50, smplx133  # noqa: F401  (registration side effects)

    if name not in _REGISTRY:
        raise ValueError(f"Unknown skeleton {name!r}; expected one of {sorted(_REGISTRY)}.")
    if name not in _CACHE:
        _CACHE[name] = _REGISTRY[name]()
    return _CACHE[name]


def list_skeletons() -> List[str]:
    from . import holistic, pt50, smplx133  # noqa: F401

    return sorted(_REGISTRY)

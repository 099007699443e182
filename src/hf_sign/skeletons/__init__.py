"""Pose representations: `SkeletonSpec` and the registered skeletons (`smplx133`, `holistic`, `pt50`).

`get_skeleton(name)` returns a spec; `smplx133`'s positions come from SMPL-X forward kinematics
(`smplx133_to_joints`), through the licensed model when `HF_SIGN_SMPLX_DIR` is set and the project's proxy
neutral body otherwise.
"""

from .smplx133 import (
    FEATURE_JOINT_NAMES as SMPLX133_FEATURE_JOINT_NAMES,
    POSITION_JOINT_NAMES as SMPLX133_POSITION_JOINT_NAMES,
    REST_ARMS_DOWN,
    axis_angle_to_matrix,
    feature_slice,
    pose_features,
    rest_pose_features,
    smplx133_spec,
    smplx133_to_joints,
)
from .smplx_proxy import PROXY_FINGERTIPS, PROXY_REST_JOINTS, SMPLX_JOINT_NAMES, write_proxy_smplx_model
from .spec import SkeletonSpec, get_skeleton, list_skeletons, register_skeleton

__all__ = [
    "SkeletonSpec",
    "get_skeleton",
    "list_skeletons",
    "register_skeleton",
    "smplx133_spec",
    "smplx133_to_joints",
    "axis_angle_to_matrix",
    "feature_slice",
    "pose_features",
    "rest_pose_features",
    "REST_ARMS_DOWN",
    "SMPLX133_FEATURE_JOINT_NAMES",
    "SMPLX133_POSITION_JOINT_NAMES",
    "SMPLX_JOINT_NAMES",
    "PROXY_REST_JOINTS",
    "PROXY_FINGERTIPS",
    "write_proxy_smplx_model",
]

"""`.pose` export through pose-format (hf_sign.render.pose_export)."""

import numpy as np
import pytest
from pose_format import Pose

from hf_sign.render import component_layout, pose_to_positions, positions_to_pose, save_pose
from hf_sign.render.pose_export import MEDIAPIPE_HAND_POINTS
from hf_sign.skeletons.spec import SkeletonSpec, get_skeleton


def make_spec(y_down=False, mediapipe_hand=False) -> SkeletonSpec:
    """pelvis -> neck -> head; neck -> left hand (1 joint, or 21 in MediaPipe order); neck -> right hand."""
    names = ["pelvis", "neck", "head"]
    parents = [-1, 0, 1]
    parts = {"body": [0, 1], "face": [2]}
    if mediapipe_hand:
        base = len(names)
        local_parents = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
        names += [f"lh_{i}" for i in range(21)]
        parents += [1 if p < 0 else base + p for p in local_parents]
        parts["left_hand"] = list(range(base, base + 21))
    else:
        names.append("left_hand")
        parents.append(1)
        parts["left_hand"] = [len(names) - 1]
    names.append("right_hand")
    parents.append(1)
    parts["right_hand"] = [len(names) - 1]
    parts = {k: tuple(v) for k, v in parts.items()}
    return SkeletonSpec(
        name="toy", joint_names=tuple(names), parents=tuple(parents), joint_dims=(3,) * len(names), parts=parts,
        pooling_groups={}, atomic_joint_names={}, position_joint_names=tuple(names), position_parents=tuple(parents),
        position_parts=parts, root_index=0, wrist_indices=(3, len(names) - 1), y_down=y_down,
    )


def random_positions(spec, num_frames=5, seed=0):
    return np.random.default_rng(seed).normal(size=(num_frames, spec.num_position_joints, 3)).astype(np.float32)


def read(path):
    with open(path, "rb") as fh:
        return Pose.read(fh.read())


def test_round_trip_through_file_is_exact(tmp_path):
    spec = make_spec()
    pos = random_positions(spec)
    path = save_pose(pos, spec, fps=24.0, path=tmp_path / "out" / "a.pose")
    pose = read(path)
    assert pose.body.fps == 24.0
    assert pose.body.data.shape == (5, 1, spec.num_position_joints, 3)
    back = pose_to_positions(pose, spec)
    assert back.dtype == np.float32 and np.array_equal(back, pos)


def test_components_points_and_limbs():
    spec = make_spec()
    pose = positions_to_pose(random_positions(spec), spec, fps=25)
    comps = {c.name: c for c in pose.header.components}
    assert list(comps) == ["POSE_LANDMARKS", "LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS", "FACE_LANDMARKS"]
    assert comps["POSE_LANDMARKS"].points == ["PELVIS", "NECK"]
    assert [tuple(limb) for limb in comps["POSE_LANDMARKS"].limbs] == [(0, 1)]
    assert [len(comps[n].points) for n in comps] == [2, 1, 1, 1]
    assert pose.header.total_points() == spec.num_position_joints


def test_mediapipe_hand_names():
    spec = make_spec(mediapipe_hand=True)
    layout = {name: names for name, _, names, _, _ in component_layout(spec)}
    assert layout["LEFT_HAND_LANDMARKS"] == list(MEDIAPIPE_HAND_POINTS)
    assert layout["RIGHT_HAND_LANDMARKS"] == ["RIGHT_HAND"]  # not a 21-joint MediaPipe hand
    pos = random_positions(spec, 3)
    assert np.array_equal(pose_to_positions(positions_to_pose(pos, spec, 25), spec), pos)


def test_axes_nan_and_confidence(tmp_path):
    spec = make_spec(y_down=False)
    pos = random_positions(spec, 4)
    pos[1, 2] = np.nan
    pose = read(save_pose(pos, spec, 25, tmp_path / "a.pose"))
    # y-up skeleton written in image axes: (x, -y, -z)
    first = component_layout(spec)[0][1][0]
    assert np.array_equal(np.asarray(pose.body.data.data)[0, 0, 0], pos[0, first] * np.float32([1, -1, -1]))
    conf = np.asarray(pose.body.confidence)
    assert conf[1, 0].min() == 0.0 and conf[0, 0].min() == 1.0
    back = pose_to_positions(pose, spec)
    assert np.isnan(back[1, 2]).all()
    ok = np.isfinite(pos)
    assert np.array_equal(back[ok], pos[ok])
    # y-down skeleton: written unchanged
    down = make_spec(y_down=True)
    raw = np.asarray(positions_to_pose(pos, down, 25).body.data.data)[0, 0, 0]
    assert np.array_equal(raw, pos[0, first])
    with pytest.raises(ValueError, match="confidence"):
        positions_to_pose(pos, spec, 25, confidence=np.ones((4, 2)))


def test_wrong_skeleton_raises():
    spec, other = make_spec(), make_spec(mediapipe_hand=True)
    pose = positions_to_pose(random_positions(spec, 2), spec, 25)
    with pytest.raises(ValueError, match="LEFT_HAND_LANDMARKS"):
        pose_to_positions(pose, other)
    with pytest.raises(ValueError, match="positions"):
        positions_to_pose(np.zeros((2, 3, 3)), spec, 25)


def test_smplx133_export(tmp_path):
    spec = get_skeleton("smplx133")
    features = np.random.default_rng(0).normal(scale=0.1, size=(3, spec.feature_dim)).astype(np.float32)
    pos = np.asarray(spec.to_positions(features), dtype=np.float32)
    pose = read(save_pose(pos, spec, spec.fps, tmp_path / "smplx.pose"))
    comps = {c.name: c for c in pose.header.components}
    assert comps["LEFT_HAND_LANDMARKS"].points == list(MEDIAPIPE_HAND_POINTS)
    assert comps["RIGHT_HAND_LANDMARKS"].points == list(MEDIAPIPE_HAND_POINTS)
    assert len(comps["POSE_LANDMARKS"].points) == spec.num_position_joints - 42
    assert "LEFT_SHOULDER" in comps["POSE_LANDMARKS"].points
    assert np.array_equal(pose_to_positions(pose, spec), pos)

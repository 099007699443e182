"""`.pose` export through pose-format (hf_sign.render.pose_export): layout, projection, round trips, bad inputs."""

from dataclasses import replace

import numpy as np
import pytest
from pose_format import Pose

from hf_sign.render import mediapipe_mapping, pose_to_positions, positions_to_pose, save_pose
from hf_sign.render.pose_export import (
    BODY_POINTS,
    CANVAS_FILL,
    CANVAS_SIZE,
    MEDIAPIPE_HAND_POINTS,
    POSE_WORLD,
    fit_projection,
)
from hf_sign.skeletons.spec import SkeletonSpec, get_skeleton


def make_spec(y_down=False) -> SkeletonSpec:
    """neck -> shoulders -> elbows -> left wrist; neck -> head (no MediaPipe point); right arm ends at the elbow."""
    names = ("neck", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist")
    parents = (-1, 0, 0, 0, 2, 3, 4)
    parts = {"body": tuple(range(7))}
    return SkeletonSpec(
        name="toy",
        joint_names=names,
        parents=parents,
        joint_dims=(3,) * 7,
        parts=parts,
        pooling_groups={},
        atomic_joint_names={},
        position_joint_names=names,
        position_parents=parents,
        position_parts=parts,
        root_index=0,
        wrist_indices=(6, 6),
        y_down=y_down,
    )


def random_positions(spec, num_frames=5, seed=0):
    return np.random.default_rng(seed).normal(size=(num_frames, spec.num_position_joints, 3)).astype(np.float32)


def read(path):
    with open(path, "rb") as fh:
        return Pose.read(fh.read())


def arrays(pose):
    return np.asarray(pose.body.data.data), np.asarray(pose.body.confidence)


def test_round_trip_through_file(tmp_path):
    spec = make_spec()
    pos = random_positions(spec)
    pose = read(save_pose(pos, spec, fps=24.0, path=tmp_path / "out" / "a.pose"))
    assert pose.body.fps == 24.0 and pose.body.data.shape == (5, 1, 586, 3)
    back = pose_to_positions(pose, spec)
    assert back.dtype == np.float32 and back.shape == pos.shape
    assert np.isnan(back[:, :2]).all()  # neck and head have no MediaPipe point
    np.testing.assert_array_equal(back[:, 2:], pos[:, 2:])  # body points come back from the world component


def test_toy_mapping_world_and_projection():
    spec = make_spec()
    assert [(j, c, p) for j, c, p in mediapipe_mapping(spec)] == [
        (2, "POSE_LANDMARKS", "LEFT_SHOULDER"),
        (3, "POSE_LANDMARKS", "RIGHT_SHOULDER"),
        (4, "POSE_LANDMARKS", "LEFT_ELBOW"),
        (5, "POSE_LANDMARKS", "RIGHT_ELBOW"),
        (6, "POSE_LANDMARKS", "LEFT_WRIST"),
    ]
    pos = random_positions(spec, 4)
    data, conf = arrays(positions_to_pose(pos, spec, 25))
    world = data[:, 0, 586 - 33 + BODY_POINTS.index("LEFT_ELBOW")]
    np.testing.assert_array_equal(world, pos[:, 4] * np.float32([1, -1, -1]))  # y-up skeleton in image axes
    # hand-computed projection: the larger of the x/y extents of the written joints fills 90% of 500 pixels
    img = pos[:, 2:] * np.float32([1, -1, -1])
    lo, hi = img.reshape(-1, 3).min(0), img.reshape(-1, 3).max(0)
    scale = 0.9 * 500 / max(hi[0] - lo[0], hi[1] - lo[1])
    expected = scale * (img[:, 2] - (lo + hi) / 2) + np.array([250, 250, 0])
    np.testing.assert_allclose(data[:, 0, BODY_POINTS.index("LEFT_ELBOW")], expected, atol=1e-3)
    assert conf[:, 0, BODY_POINTS.index("NOSE")].max() == 0 and conf[:, 0, BODY_POINTS.index("LEFT_ELBOW")].min() == 1
    # y-down skeleton: image axes already
    down = make_spec(y_down=True)
    data, _ = arrays(positions_to_pose(pos, down, 25))
    np.testing.assert_array_equal(data[:, 0, 586 - 33 + BODY_POINTS.index("LEFT_ELBOW")], pos[:, 4])


def test_fit_projection_hand_values():
    world = np.array([[[0.0, 0.0, 0.0], [2.0, 1.0, 4.0]]])
    scale, offset = fit_projection(world, np.ones((1, 2), bool))
    assert scale == pytest.approx(CANVAS_FILL * CANVAS_SIZE / 2.0)
    np.testing.assert_allclose(scale * world[0] + offset, [[25, 137.5, -450], [475, 362.5, 450]])


def test_nan_joints_get_confidence_zero_and_come_back_nan(tmp_path):
    spec = make_spec()
    pos = random_positions(spec, 4)
    pos[1, 4] = np.nan
    pose = read(save_pose(pos, spec, 25, tmp_path / "a.pose"))
    data, conf = arrays(pose)
    elbow = BODY_POINTS.index("LEFT_ELBOW")
    assert conf[1, 0, elbow] == 0 and conf[1, 0, 586 - 33 + elbow] == 0 and (data[1, 0, elbow] == 0).all()
    assert conf[0, 0, elbow] == 1
    back = pose_to_positions(pose, spec)
    assert np.isnan(back[1, 4]).all() and np.isfinite(back[0, 4]).all()
    with pytest.raises(ValueError, match="confidence"):
        positions_to_pose(pos, spec, 25, confidence=np.ones((4, 2)))


def test_bad_inputs_raise():
    spec = make_spec()
    with pytest.raises(ValueError, match="positions"):
        positions_to_pose(np.zeros((2, 3, 3)), spec, 25)  # wrong joint count
    with pytest.raises(ValueError, match="num_frames >= 1"):
        positions_to_pose(np.zeros((0, 7, 3)), spec, 25)  # empty sequence
    with pytest.raises(ValueError, match="no finite joint"):
        positions_to_pose(np.full((3, 7, 3), np.nan), spec, 25)  # every frame NaN
    with pytest.raises(ValueError, match="fps"):
        positions_to_pose(random_positions(spec), spec, 0)
    with pytest.raises(ValueError, match="no joint with a MediaPipe"):
        positions_to_pose(random_positions(spec), replace(spec, position_joint_names=tuple("abcdefg")), 25)
    with pytest.raises(ValueError, match="Unknown skeleton"):
        get_skeleton("smplx999")


def test_reading_another_layout_raises():
    spec = make_spec()
    pose = positions_to_pose(random_positions(spec, 2), spec, 25)
    pose = pose.get_components(["POSE_LANDMARKS", "LEFT_HAND_LANDMARKS"])
    with pytest.raises(ValueError, match="FACE_LANDMARKS"):
        pose_to_positions(pose, spec)


def test_smplx133_export_reads_back(tmp_path):
    spec = get_skeleton("smplx133")
    features = np.random.default_rng(0).normal(scale=0.1, size=(3, spec.feature_dim)).astype(np.float32)
    pos = np.asarray(spec.to_positions(features), dtype=np.float32)
    pose = read(save_pose(pos, spec, spec.fps, tmp_path / "smplx.pose"))
    comps = {c.name: c for c in pose.header.components}
    assert comps["LEFT_HAND_LANDMARKS"].points == list(MEDIAPIPE_HAND_POINTS)
    assert len(comps["POSE_LANDMARKS"].points) == 33 and len(comps[POSE_WORLD].points) == 33
    back = pose_to_positions(pose, spec)
    mapped = sorted({j for j, _, _ in mediapipe_mapping(spec)})
    assert len(mapped) == 46  # 54 minus pelvis, spine1-3, neck, collars, head
    assert np.isnan(np.delete(back, mapped, axis=1)).all()
    # body points exactly (world component), hands through the inverse projection (float32 pixels)
    np.testing.assert_allclose(back[:, mapped], pos[:, mapped], atol=1e-5, rtol=0)

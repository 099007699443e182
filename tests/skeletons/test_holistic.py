"""The `holistic` / `holistic_noface` skeletons: joints, tree, parts, pooling groups."""

import numpy as np
import pytest

from hf_sign.skeletons.holistic import HAND_POINTS, holistic_joint_table, holistic_spec
from hf_sign.skeletons.spec import get_skeleton, list_skeletons


@pytest.mark.parametrize("name,num_joints", [("holistic", 72), ("holistic_noface", 56)])
def test_registered_sizes_and_flags(name, num_joints):
    spec = get_skeleton(name)
    assert name in list_skeletons()
    assert spec.name == name
    assert spec.num_joints == num_joints and spec.feature_dim == 3 * num_joints
    assert spec.feature_kind == "position" and spec.y_down and spec.fps == 25.0
    assert spec.position_joint_names == spec.joint_names and spec.position_parents == spec.parents
    assert spec.joint_names[spec.root_index] == "neck"
    assert [spec.joint_names[i] for i in spec.wrist_indices] == ["left_hand_wrist", "right_hand_wrist"]


def test_noface_is_prefix_of_holistic():
    full, noface = holistic_spec(True), holistic_spec(False)
    assert full.joint_names[: noface.num_joints] == noface.joint_names
    assert full.parents[: noface.num_joints] == noface.parents
    assert noface.parts["face"] == ()


@pytest.mark.parametrize("face", [True, False])
def test_parts_partition_and_hands_in_mediapipe_order(face):
    spec = holistic_spec(face)
    flat = sorted(i for idx in spec.parts.values() for i in idx)
    assert flat == list(range(spec.num_joints))
    assert len(spec.parts["body"]) == 14
    for side in ("left", "right"):
        names = [spec.joint_names[i] for i in spec.parts[f"{side}_hand"]]
        assert names == [f"{side}_hand_{p.lower()}" for p in HAND_POINTS]
    assert len(spec.parts["face"]) == (16 if face else 0)


@pytest.mark.parametrize("face", [True, False])
def test_tree_hands_on_pose_wrists_and_face_on_nose(face):
    spec = holistic_spec(face)
    names = spec.joint_names
    assert [i for i, p in enumerate(spec.parents) if p < 0] == [0]  # one tree rooted at the neck
    for j, p in enumerate(spec.parents):
        assert p < j  # parents precede children (pose_io fills in this order)
    for side in ("left", "right"):
        wrist = names.index(f"{side}_hand_wrist")
        assert names[spec.parents[wrist]] == f"{side}_wrist"
        assert names[spec.parents[names.index(f"{side}_hand_index_finger_mcp")]] == f"{side}_hand_wrist"
        assert names[spec.parents[names.index(f"{side}_hand_thumb_tip")]] == f"{side}_hand_thumb_ip"
    nose = names.index("nose")
    for j in spec.parts["face"]:
        a = j
        while a >= 0 and a != nose:
            a = spec.parents[a]
        assert a == nose, names[j]


@pytest.mark.parametrize("face", [True, False])
def test_pooling_groups_5_7_9(face):
    spec = holistic_spec(face)
    names = spec.joint_names
    for k in (5, 7, 9):
        groups = spec.pooling_groups[k]
        assert len(groups) == k == len(spec.atomic_joint_names[k])
        assert sorted(i for g in groups for i in g) == list(range(spec.num_joints))
        m = spec.pooling_matrix(k)
        np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)
    g7 = dict(zip(spec.atomic_joint_names[7], spec.pooling_groups[7]))
    assert [names[i] for i in g7["root"]] == ["neck"]
    assert set(spec.parts["right_hand"]) < set(g7["right_hand"]) and names.index("right_wrist") in g7["right_hand"]
    assert set(spec.parts["face"]) <= set(g7["head"])
    g9 = dict(zip(spec.atomic_joint_names[9], spec.pooling_groups[9]))
    assert tuple(g9["left_hand"]) == tuple(spec.parts["left_hand"])


def test_joint_table_sources_and_positions_roundtrip():
    rows = holistic_joint_table(face=True)
    assert rows[0][1] is None  # derived neck
    assert {r[1] for r in rows[1:]} == {
        "POSE_LANDMARKS",
        "LEFT_HAND_LANDMARKS",
        "RIGHT_HAND_LANDMARKS",
        "FACE_LANDMARKS",
    }
    spec = get_skeleton("holistic")
    x = np.arange(2 * 3 * spec.feature_dim, dtype=np.float32).reshape(2, 3, spec.feature_dim)
    pos = spec.to_positions(x)
    assert pos.shape == (2, 3, spec.num_joints, 3)
    np.testing.assert_array_equal(pos[..., 5, :], x[..., 15:18])
    a = spec.adjacency()
    np.testing.assert_allclose(a, a.T)

import numpy as np
import pytest

from hf_sign.skeletons import pt50
from hf_sign.skeletons.spec import _REGISTRY, SkeletonSpec

# Bones drawn by Progressive Transformers' plot code (start, end), written out from its joint layout:
# nose-neck, shoulders, elbows, elbow -> hand wrist (skipping the body wrist), 5 palm rays and 3
# finger bones per finger for each hand.
PT_BONES = {(0, 1), (1, 2), (2, 3), (3, 29), (1, 5), (5, 6), (6, 8)}
for start in (8, 29):
    for finger in range(5):
        base = start + 1 + 4 * finger
        PT_BONES |= {(start, base), (base, base + 1), (base + 1, base + 2), (base + 2, base + 3)}


@pytest.fixture(scope="module")
def spec() -> SkeletonSpec:
    return pt50.pt50_skeleton()


def test_registered_under_pt50():
    assert "pt50" in _REGISTRY
    assert _REGISTRY["pt50"]().name == "pt50"


def test_get_skeleton_when_all_modules_exist():
    from hf_sign.skeletons.spec import get_skeleton

    assert get_skeleton("pt50").feature_dim == 150


def test_sizes_and_metadata(spec):
    assert spec.num_joints == 50 and spec.feature_dim == 150
    assert spec.num_position_joints == 50
    assert spec.fps == 25.0 and spec.feature_kind == "position" and spec.y_down
    assert spec.root_index == 1 and spec.joint_names[1] == "neck"
    assert spec.wrist_indices == (8, 29)
    assert spec.joint_names[8] == "left_hand_wrist" and spec.joint_names[29] == "right_hand_wrist"
    assert spec.joint_names[4] == "right_wrist" and spec.joint_names[7] == "left_wrist"
    assert len(set(spec.joint_names)) == 50


def test_tree_has_single_root_and_contains_pt_bones(spec):
    assert [i for i, p in enumerate(spec.parents) if p < 0] == [1]
    for j in range(50):  # every joint reaches the root without cycles
        seen, k = set(), j
        while k != -1:
            assert k not in seen
            seen.add(k)
            k = spec.parents[k]
    bones = {tuple(sorted(b)) for b in spec.bones}
    assert {tuple(sorted(b)) for b in PT_BONES} <= bones
    assert bones - {tuple(sorted(b)) for b in PT_BONES} == {(3, 4), (6, 7)}  # the body wrists, as leaves
    assert spec.position_parents == spec.parents


def test_parts_and_pooling(spec):
    assert spec.parts["body"] == tuple(range(8))
    assert spec.parts["left_hand"] == tuple(range(8, 29))
    assert spec.parts["right_hand"] == tuple(range(29, 50))
    for k in (5, 7, 9):
        m = spec.pooling_matrix(k)
        assert m.shape == (k, 50)
        np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)
        assert (np.count_nonzero(m, axis=0) == 1).all()
        assert len(spec.atomic_joint_names[k]) == k
    # the hands stay whole in the 5- and 7-group poolings (wrist with its fingers)
    assert tuple(range(8, 29)) in spec.pooling_groups[7] and tuple(range(29, 50)) in spec.pooling_groups[5]
    a = spec.adjacency()
    np.testing.assert_allclose(a, a.T, atol=1e-7)


def test_to_positions_is_reshape(spec):
    x = np.random.default_rng(0).normal(size=(2, 4, 150)).astype(np.float32)
    pos = spec.to_positions(x)
    assert pos.shape == (2, 4, 50, 3)
    np.testing.assert_array_equal(pos[0, 1, 29], x[0, 1, 87:90])
    with pytest.raises(ValueError, match="150"):
        spec.to_positions(np.zeros((3, 151)))

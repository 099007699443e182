"""Tests of the generic `SkeletonSpec` (topology, adjacency, pooling, validation, registry)."""

import numpy as np
import pytest
import torch

from hf_sign.skeletons import SkeletonSpec, get_skeleton, list_skeletons, register_skeleton, spec as spec_module


def toy_kwargs(**overrides):
    """A 5-joint chain-with-branch position skeleton: 0 root, 1 <- 0, 2 <- 1, 3 <- 1, 4 <- 0."""
    kw = dict(
        name="toy",
        joint_names=("root", "a", "b", "c", "d"),
        parents=(-1, 0, 1, 1, 0),
        joint_dims=(3, 3, 3, 3, 3),
        parts={"body": (0, 1), "left_hand": (2,), "right_hand": (3,), "face": (4,)},
        pooling_groups={2: ((0, 1, 4), (2, 3))},
        atomic_joint_names={2: ("trunk", "hands")},
        position_joint_names=("root", "a", "b", "c", "d"),
        position_parents=(-1, 0, 1, 1, 0),
        position_parts={"body": (0, 1, 4), "left_hand": (2,), "right_hand": (3,)},
        root_index=0,
        wrist_indices=(2, 3),
    )
    kw.update(overrides)
    return kw


SPECS = [SkeletonSpec(**toy_kwargs()), get_skeleton("smplx133")]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_adjacency_symmetric_and_normalised(spec):
    raw = spec.adjacency(normalized=False)
    np.testing.assert_array_equal(raw, raw.T)
    assert (np.diag(raw) == 1).all() and raw.sum() == spec.num_joints + 2 * len(spec.bones)
    assert (np.diag(spec.adjacency(normalized=False, self_loops=False)) == 0).all()
    a = spec.adjacency()
    np.testing.assert_allclose(a, a.T, atol=1e-7)
    eig = np.linalg.eigvalsh(a.astype(np.float64))
    assert eig.max() <= 1 + 1e-5 and eig.min() >= -1 - 1e-5
    np.testing.assert_allclose(eig.max(), 1.0, atol=1e-5)  # D^-1/2 (A+I) D^-1/2 has spectral radius 1
    # entry (i, j) is 1 / sqrt(d_i d_j) on every edge and self loop
    d = raw.sum(1)
    np.testing.assert_allclose(a, raw / np.sqrt(np.outer(d, d)), rtol=1e-6)


def test_pooling_matrix_smplx133():
    spec = get_skeleton("smplx133")
    for k in (5, 7, 9):
        m = spec.pooling_matrix(k)
        assert m.shape == (k, spec.num_joints) and len(spec.atomic_joint_names[k]) == k
        np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)  # averaging
        assert ((m > 0).sum(0) == 1).all()  # every joint pooled into exactly one atomic joint
    with pytest.raises(ValueError, match="num_atomic=6"):
        spec.pooling_matrix(6)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_joint_slices_cover_features(spec):
    covered = np.concatenate([np.arange(spec.feature_dim)[s] for s in spec.joint_slices])
    np.testing.assert_array_equal(covered, np.arange(spec.feature_dim))
    assert [s.stop - s.start for s in spec.joint_slices] == list(spec.joint_dims)


@pytest.mark.parametrize(
    "overrides,match",
    [
        (dict(parents=(-1, 0, 1, 1)), "parents"),
        (dict(joint_dims=(3, 3)), "joint_dims"),
        (dict(parents=(-1, 0, 1, 7, 0)), "parent of joint 3"),
        (dict(parents=(-1, 1, 1, 1, 0)), "parent of joint 1"),
        (dict(parts={"body": (0, 1), "left_hand": (2,), "right_hand": (3,)}), "parts"),
        (dict(parts={"body": (0, 1, 2), "left_hand": (2,), "right_hand": (3,), "face": (4,)}), "parts"),
        (dict(pooling_groups={2: ((0, 1, 4), (2,))}), "pooling_groups"),
        (dict(pooling_groups={3: ((0, 1, 4), (2, 3))}), "pooling_groups"),
        (dict(position_parents=(-1, 0)), "position_parents"),
    ],
)
def test_invalid_specs_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        SkeletonSpec(**toy_kwargs(**overrides))


def test_position_view_and_feature_check():
    spec = SPECS[0]
    x = np.arange(2 * 4 * 15, dtype=np.float32).reshape(2, 4, 15)
    pos = spec.to_positions(x)
    assert pos.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(pos[1, 2, 3], x[1, 2, 9:12])
    assert torch.is_tensor(spec.to_positions(torch.tensor(x)))
    assert spec.position_bones == [(0, 1), (1, 2), (1, 3), (0, 4)]
    with pytest.raises(ValueError, match="`poses`.*15"):
        spec.check_features(np.zeros((4, 14)))
    with pytest.raises(ValueError, match="`features`"):
        spec.to_positions(np.zeros(15))


def test_registry(monkeypatch):
    assert {"smplx133", "holistic", "pt50"} <= set(list_skeletons())
    assert get_skeleton("smplx133") is get_skeleton("smplx133")  # cached
    monkeypatch.setattr(spec_module, "_REGISTRY", dict(spec_module._REGISTRY))
    monkeypatch.setattr(spec_module, "_CACHE", dict(spec_module._CACHE))
    register_skeleton("toy_test")(lambda: SkeletonSpec(**toy_kwargs(name="toy_test")))
    assert get_skeleton("toy_test").name == "toy_test" and "toy_test" in list_skeletons()
    with pytest.raises(ValueError, match="Unknown skeleton 'nope'"):
        get_skeleton("nope")

"""Tests of the `smplx133` skeleton: layout, proxy forward kinematics vs `smplx` itself, axis conventions."""

import numpy as np
import pytest
import smplx
import smplx.joint_names
import torch
from smplx.lbs import batch_rodrigues
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from hf_sign.skeletons import (
    PROXY_FINGERTIPS,
    PROXY_REST_JOINTS,
    REST_ARMS_DOWN,
    SMPLX_JOINT_NAMES,
    axis_angle_to_matrix,
    feature_slice,
    get_skeleton,
    pose_features,
    rest_pose_features,
    smplx133 as smplx133_module,
    smplx133_to_joints,
    write_proxy_smplx_model,
)

SPEC = get_skeleton("smplx133")
P = {n: i for i, n in enumerate(SPEC.position_joint_names)}
HAND_SMPLX = {
    "index": (25, 26, 27),
    "middle": (28, 29, 30),
    "ring": (34, 35, 36),
    "pinky": (31, 32, 33),
    "thumb": (37, 38, 39),
}


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("smplx_proxy")
    write_proxy_smplx_model(root)
    return root


def random_features(shape, scale=0.6, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).normal(scale=scale, size=shape + (133,)).astype(dtype)


def joints(**kw):
    return smplx133_to_joints(pose_features(**kw)[None].astype(np.float64))[0]


# ------------------------------------------------------------------------------------------ layout
def test_spec_layout():
    assert SPEC.num_joints == 42 and SPEC.feature_dim == 133
    assert SPEC.fps == 24 and SPEC.feature_kind == "axis_angle" and not SPEC.y_down
    sl = SPEC.joint_slices
    assert (sl[0], sl[9], sl[10], sl[24], sl[25], sl[39], sl[40], sl[41]) == (
        slice(0, 3), slice(27, 30), slice(30, 33), slice(72, 75), slice(75, 78), slice(117, 120),
        slice(120, 123), slice(123, 133))
    assert SPEC.joint_names[10:13] == ("left_index1", "left_index2", "left_index3")
    assert SPEC.joint_names[22:25] == ("left_thumb1", "left_thumb2", "left_thumb3")
    p = SPEC.parents
    assert p[:10] == (-1, 0, 0, 0, 1, 2, 4, 5, 6, 7)
    assert p[10:13] == (8, 10, 11) and p[25:28] == (9, 25, 26) and p[37:40] == (9, 37, 38)
    assert p[40:] == (3, 40)
    assert SPEC.parts["face"] == (40, 41) and SPEC.parts["left_hand"] == tuple(range(10, 25))
    assert SPEC.pooling_groups[7][5] == (8,) + tuple(range(10, 25))
    assert SPEC.atomic_joint_names[9][5] == "left_elbow" and SPEC.pooling_groups[9][5] == (6, 8)
    assert SPEC.num_position_joints == 54 and SPEC.root_index == 0 and SPEC.wrist_indices == (12, 33)
    assert SPEC.position_joint_names[12:17] == (
        "left_wrist",
        "left_thumb_cmc",
        "left_thumb_mcp",
        "left_thumb_ip",
        "left_thumb_tip",
    )
    assert SPEC.position_joint_names[53] == "right_pinky_tip"
    assert all(-1 <= q < c for c, q in enumerate(SPEC.position_parents))
    assert SMPLX_JOINT_NAMES == tuple(smplx.joint_names.JOINT_NAMES[:55])  # the proxy uses SMPL-X's joint order
    assert feature_slice("expression") == slice(123, 133) and feature_slice("right_wrist") == slice(27, 30)
    with pytest.raises(ValueError, match="left_pinkie"):
        pose_features(left_pinkie1=(0, 0, 1))


# -------------------------------------------------------------------------------- FK vs smplx
@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
def test_proxy_fk_matches_smplx_on_proxy_model(proxy_dir, dtype, atol):
    feats = torch.tensor(random_features((6,), scale=0.8), dtype=dtype)
    ours = smplx133_to_joints(feats)
    # Oracle: smplx itself on the generated file, with the 133 features spread over its pose arguments.
    model = smplx.create(model_path=str(proxy_dir), model_type="smplx", gender="neutral", use_pca=False,
                         flat_hand_mean=True, num_expression_coeffs=10, batch_size=6, dtype=dtype)
    with torch.no_grad():
        out = model(body_pose=torch.cat([torch.zeros(6, 33, dtype=dtype), feats[:, :30]], 1),
                    left_hand_pose=feats[:, 30:75], right_hand_pose=feats[:, 75:120],
                    jaw_pose=feats[:, 120:123], expression=feats[:, 123:133])
    body_src = [0, 3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19]
    torch.testing.assert_close(ours[:, :12], out.joints[:, body_src], atol=atol, rtol=0)
    for side, base, wrist in (("left", 12, 20), ("right", 33, 21)):
        torch.testing.assert_close(ours[:, base], out.joints[:, wrist], atol=atol, rtol=0)
        for f, finger in enumerate(("thumb", "index", "middle", "ring", "pinky")):
            src = [j + (15 if side == "right" else 0) for j in HAND_SMPLX[finger]]
            rows = slice(base + 1 + 4 * f, base + 4 + 4 * f)
            torch.testing.assert_close(ours[:, rows], out.joints[:, src], atol=atol, rtol=0)
            tip = out.vertices[:, SMPLX_VERTEX_IDS["smplx"][f"{side[0]}{finger}"]]  # smplx's fingertip vertex
            torch.testing.assert_close(ours[:, base + 4 + 4 * f], tip, atol=atol, rtol=0)


def test_dispatch_through_smplx_model_dir(proxy_dir):
    feats = random_features((2, 3), seed=1)  # batch of 2 sequences x 3 frames
    via_smplx = smplx133_to_joints(feats, model_dir=proxy_dir)
    assert via_smplx.shape == (2, 3, 54, 3) and isinstance(via_smplx, np.ndarray)
    np.testing.assert_allclose(via_smplx, smplx133_to_joints(feats), atol=1e-6, rtol=0)
    # the folder holding SMPLX_NEUTRAL.npz and the file itself work too; spec.to_positions forwards model_dir
    np.testing.assert_allclose(SPEC.to_positions(feats, model_dir=proxy_dir / "smplx"), via_smplx, atol=1e-12)
    np.testing.assert_allclose(
        smplx133_to_joints(feats, model_dir=proxy_dir / "smplx" / "SMPLX_NEUTRAL.npz"), via_smplx, atol=1e-12
    )
    x = torch.tensor(feats, requires_grad=True)
    smplx133_to_joints(x, model_dir=proxy_dir).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[..., :120].abs().sum() > 0


def test_bad_model_dir_raises(tmp_path):
    with pytest.raises(ValueError, match="SMPLX_NEUTRAL"):
        smplx133_to_joints(np.zeros((1, 133)), model_dir=tmp_path)


def test_env_var_selects_smplx(proxy_dir, tmp_path, monkeypatch):
    feats = random_features((4,), seed=2)
    monkeypatch.setenv("HF_SIGN_SMPLX_DIR", str(tmp_path))  # empty folder: proves the env var is read
    with pytest.raises(ValueError, match=str(tmp_path.name)):
        smplx133_to_joints(feats)
    monkeypatch.setenv("HF_SIGN_SMPLX_DIR", str(proxy_dir))
    calls = []
    real = smplx133_module.smplx_forward_kinematics
    monkeypatch.setattr(smplx133_module, "smplx_forward_kinematics", lambda *a, **k: calls.append(1) or real(*a, **k))
    expected = smplx133_module.proxy_forward_kinematics(torch.tensor(feats)).numpy()
    np.testing.assert_allclose(smplx133_to_joints(feats), expected, atol=1e-6)
    assert calls, "HF_SIGN_SMPLX_DIR was set but smplx was not used"


def test_proxy_file_is_cached(tmp_path):
    path = write_proxy_smplx_model(tmp_path)
    assert path == tmp_path / "smplx" / "SMPLX_NEUTRAL.npz"
    mtime = path.stat().st_mtime_ns
    assert write_proxy_smplx_model(tmp_path) == path and path.stat().st_mtime_ns == mtime
    with np.load(path) as data:
        assert data["v_template"].shape == (10475, 3) and data["J_regressor"].shape == (55, 10475)
        assert data["posedirs"].shape == (10475, 3, 486) and data["weights"].shape == (10475, 55)


# ---------------------------------------------------------------------------------- FK properties
def test_zero_pose_is_rest_skeleton():
    j = smplx133_to_joints(np.zeros((1, 133)))[0]
    src = [0, 3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19]
    np.testing.assert_allclose(j[:12], PROXY_REST_JOINTS[src], atol=1e-12)
    np.testing.assert_allclose(j[P["left_wrist"]], PROXY_REST_JOINTS[20], atol=1e-12)
    np.testing.assert_allclose(j[P["right_index_pip"]], PROXY_REST_JOINTS[41], atol=1e-12)
    np.testing.assert_allclose(j[P["left_thumb_tip"]], PROXY_FINGERTIPS["lthumb"][1], atol=1e-12)
    np.testing.assert_allclose(j[P["right_pinky_tip"]], PROXY_FINGERTIPS["rpinky"][1], atol=1e-12)
    np.testing.assert_allclose(j[33:, 0], -j[12:33, 0], atol=1e-12)  # left/right mirror images
    # realistic proportions: forearm ~0.25 m, hand (wrist -> middle tip) ~0.19 m, shoulders ~0.35 m apart
    assert 0.22 < np.linalg.norm(j[P["left_wrist"]] - j[P["left_elbow"]]) < 0.28
    assert 0.17 < np.linalg.norm(j[P["left_middle_tip"]] - j[P["left_wrist"]]) < 0.20
    assert 0.3 < np.linalg.norm(j[P["left_shoulder"]] - j[P["right_shoulder"]]) < 0.42


def test_bone_lengths_preserved_under_random_poses():
    rest = smplx133_to_joints(np.zeros((1, 133)))[0]
    posed = smplx133_to_joints(random_features((8,), scale=1.5, seed=3))
    bones = np.array(SPEC.position_bones)
    rest_len = np.linalg.norm(rest[bones[:, 1]] - rest[bones[:, 0]], axis=-1)
    posed_len = np.linalg.norm(posed[:, bones[:, 1]] - posed[:, bones[:, 0]], axis=-1)
    np.testing.assert_allclose(posed_len, np.broadcast_to(rest_len, posed_len.shape), atol=1e-10)
    assert np.abs(posed - rest).max() > 0.1  # the pose really moved the joints


def test_numpy_torch_agree_and_types():
    f64 = random_features((2, 5), seed=4)
    out_np = smplx133_to_joints(f64)
    out_pt = smplx133_to_joints(torch.tensor(f64))
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float64 and torch.is_tensor(out_pt)
    np.testing.assert_allclose(out_np, out_pt.numpy(), atol=1e-12)
    out32 = smplx133_to_joints(f64.astype(np.float32))
    assert out32.dtype == np.float32 and out32.shape == (2, 5, 54, 3)
    np.testing.assert_allclose(out32, out_np, atol=1e-5)
    assert smplx133_to_joints(np.zeros((3, 133), dtype=np.int64)).dtype == np.float32


def test_gradients_flow_including_zero_pose():
    x = torch.tensor(random_features((2, 3), seed=5), requires_grad=True)
    smplx133_to_joints(x).pow(2).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad[..., :120].abs().sum(-1) > 0).all()
    assert (x.grad[..., 120:] == 0).all()  # jaw and expression move no position joint
    z = torch.zeros(1, 133, dtype=torch.float64, requires_grad=True)
    smplx133_to_joints(z)[:, P["left_index_tip"]].sum().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    rot = torch.tensor(random_features((4,), seed=6)[:, :6].reshape(4, 2, 3), requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (rot,))


def test_rodrigues_matches_smplx():
    r = torch.tensor(
        np.concatenate([random_features((50,), scale=1.5, seed=7)[:, :3], np.zeros((1, 3)), np.full((1, 3), 1e-6)])
    )
    R = axis_angle_to_matrix(r)
    torch.testing.assert_close(R, batch_rodrigues(r), atol=1e-7, rtol=0)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3, dtype=r.dtype).expand_as(R), atol=1e-12, rtol=0)


@pytest.mark.parametrize("shape", [(133,), (4, 132), (2, 3, 134)])
def test_bad_shapes_raise(shape):
    with pytest.raises(ValueError, match="features"):
        smplx133_to_joints(np.zeros(shape))
    with pytest.raises(ValueError, match="features"):
        SPEC.to_positions(torch.zeros(shape))


# ------------------------------------------------------------------------------- axis conventions
def test_rest_pose_arms_down():
    assert REST_ARMS_DOWN.shape == (133,) and not REST_ARMS_DOWN.flags.writeable
    np.testing.assert_array_equal(rest_pose_features(), REST_ARMS_DOWN)
    j = smplx133_to_joints(REST_ARMS_DOWN[None].astype(np.float64))[0]
    for side in ("left", "right"):
        sh, el, wr = j[P[f"{side}_shoulder"]], j[P[f"{side}_elbow"]], j[P[f"{side}_wrist"]]
        assert wr[1] < el[1] - 0.15 < sh[1] - 0.3  # hanging: wrist below elbow below shoulder
        assert 0.15 < abs(wr[0]) < 0.35  # beside the hips, not into the body nor out to the side
        assert wr[2] > sh[2] + 0.02  # elbows slightly bent: the hands are a little in front
        assert j[P[f"{side}_middle_tip"], 1] < wr[1] - 0.1  # fingers point down
    np.testing.assert_allclose(j[33:, 0], -j[12:33, 0], atol=1e-6)
    np.testing.assert_allclose(j[33:, 1:], j[12:33, 1:], atol=1e-6)


def test_shoulder_lowers_arm_and_swings_forward():
    down = joints(left_shoulder=(0, 0, -np.pi / 2), right_shoulder=(0, 0, np.pi / 2))
    for side in ("left", "right"):
        # straight down (the rest arm slopes 2 degrees, hence the 2 cm tolerance)
        np.testing.assert_allclose(down[P[f"{side}_wrist"], 0], down[P[f"{side}_shoulder"], 0], atol=0.02)
        assert down[P[f"{side}_wrist"], 1] < down[P[f"{side}_shoulder"], 1] - 0.45
    fwd = joints(left_shoulder=(0, -1.0, 0), right_shoulder=(0, 1.0, 0))
    assert fwd[P["left_wrist"], 2] > 0.3 and fwd[P["right_wrist"], 2] > 0.3


def test_elbow_flexes_forward_and_wrist_and_fingers_curl():
    for shoulder in (0.0, 1.3):  # T-pose and lowered arm
        j = joints(
            left_shoulder=(0, 0, -shoulder),
            left_elbow=(0, -1.2, 0),
            right_shoulder=(0, 0, shoulder),
            right_elbow=(0, 1.2, 0),
        )
        ref = joints(left_shoulder=(0, 0, -shoulder), right_shoulder=(0, 0, shoulder))
        for side in ("left", "right"):
            assert j[P[f"{side}_wrist"], 2] > ref[P[f"{side}_wrist"], 2] + 0.2
    rest = joints()
    flex = joints(left_wrist=(0, 0, -1), right_wrist=(0, 0, 1))  # towards the palm (-y in the T-pose)
    curl = joints(
        **{f"{s}_index{i}": (0, 0, -0.8 * sgn) for s, sgn in (("left", 1), ("right", -1)) for i in (1, 2, 3)}
    )
    for side in ("left", "right"):
        assert flex[P[f"{side}_middle_tip"], 1] < rest[P[f"{side}_middle_tip"], 1] - 0.1
        palm = rest[[P[f"{side}_wrist"], P[f"{side}_index_mcp"], P[f"{side}_pinky_mcp"]]].mean(0)
        tip, tip0 = curl[P[f"{side}_index_tip"]], rest[P[f"{side}_index_tip"]]
        assert tip[1] < tip0[1] - 0.05  # towards the palm side
        assert np.linalg.norm(tip - palm) < np.linalg.norm(tip0 - palm) - 0.03
        np.testing.assert_allclose(
            curl[P[f"{side}_middle_tip"]], rest[P[f"{side}_middle_tip"]]
        )  # only the index moved
    thumb = joints(
        left_thumb1=(0, 0.5, 0), left_thumb2=(0, 0.5, 0), right_thumb1=(0, -0.5, 0), right_thumb2=(0, -0.5, 0)
    )
    thumb_flex = joints(left_thumb2=(0, 0, -0.6), right_thumb2=(0, 0, 0.6))
    for side in ("left", "right"):
        assert thumb[P[f"{side}_thumb_tip"], 2] < rest[P[f"{side}_thumb_tip"], 2] - 0.04  # towards the pinky
        assert thumb_flex[P[f"{side}_thumb_tip"], 1] < rest[P[f"{side}_thumb_tip"], 1] - 0.02  # towards the palm


def test_hands_in_front_of_chest_example_and_mirror_rule():
    j = joints(
        left_shoulder=(0, -0.5, -1.2), left_elbow=(0, -2.0, 0), right_shoulder=(0, 0.5, 1.2), right_elbow=(0, 2.0, 0)
    )
    for side in ("left", "right"):
        wr = j[P[f"{side}_wrist"]]
        assert abs(wr[0]) < 0.2 and j[P["spine3"], 1] - 0.1 < wr[1] < j[P["neck"], 1]
        assert wr[2] > j[P["spine3"], 2] + 0.15
    # mirror rule: a random left-side pose with (x, -y, -z) on the right side gives mirrored positions
    left = random_features((), seed=8)
    f = left.copy()
    for name in smplx133_module.FEATURE_JOINT_NAMES[:40]:
        if name.startswith("left_"):
            sl, sr = feature_slice(name), feature_slice("right_" + name[5:])
            f[sr] = left[sl] * np.array([1.0, -1.0, -1.0])
        elif not name.startswith("right_"):
            f[feature_slice(name)] = 0.0  # midline joints stay neutral
    m = smplx133_to_joints(f[None])[0]
    np.testing.assert_allclose(m[33:], m[12:33] * np.array([-1.0, 1.0, 1.0]), atol=1e-10)


def test_proxy_kinematics_in_chunks_equals_one_pass():
    feats = torch.tensor(random_features((10,), scale=1.0, seed=8), requires_grad=True)
    whole = smplx133_module.proxy_forward_kinematics(feats, chunk_size=64)
    chunked = smplx133_module.proxy_forward_kinematics(feats, chunk_size=3)
    torch.testing.assert_close(chunked, whole, atol=0, rtol=0)
    chunked.sum().backward()
    assert torch.isfinite(feats.grad).all() and feats.grad[:, :120].abs().sum() > 0
    assert smplx133_to_joints(np.zeros((0, 133))).shape == (0, 54, 3)  # no frames, no chunk

"""BVH export (hf_sign.render.bvh_export), read back by the `bvh` parser from PyPI; forward kinematics over the parsed
hierarchy (written here) reproduces the input joint positions."""

from dataclasses import replace

import numpy as np
import pytest

from hf_sign.cli import main
from hf_sign.render import render_to_file, save_npz
from hf_sign.render.bvh_export import JOINT_CHANNELS, ROOT_CHANNELS, bvh_text, matrix_to_euler_zxy, save_bvh
from hf_sign.skeletons import REST_ARMS_DOWN, get_skeleton

bvh = pytest.importorskip("bvh")
TOLERANCE = 1e-5  # in the skeleton's units: metres for smplx133 (9-digit text numbers, float64 rotations)


def axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    a = np.radians(degrees)
    c, s, one, zero = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    rows = {
        "X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
        "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
        "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]],
    }[axis]
    return np.moveaxis(np.array(rows), -1, 0)  # (T, 3, 3)


def parse(path):
    with open(path) as fh:
        return bvh.Bvh(fh.read())


def forward_kinematics(mocap):
    """`(names, positions (T, N, 3))`: each joint's rotation is the product of its channel rotations in file order."""
    frames = np.array(mocap.frames, dtype=np.float64)
    joints = mocap.get_joints()
    names = [j.name for j in joints]
    positions = np.zeros((len(frames), len(joints), 3))
    rotations = {}
    column = 0
    for k, joint in enumerate(joints):
        count, *channels = joint["CHANNELS"]
        offset = np.array([float(v) for v in joint["OFFSET"]])
        local, translation = np.broadcast_to(np.eye(3), (len(frames), 3, 3)), np.zeros((len(frames), 3))
        for i, channel in enumerate(channels):
            values = frames[:, column + i]
            if channel.endswith("position"):
                translation[:, "XYZ".index(channel[0])] = values
            else:
                local = local @ axis_rotation(channel[0], values)
        column += int(count)
        parent = mocap.joint_parent(joint.name)
        if parent is None:
            positions[:, k] = offset + translation
            rotations[joint.name] = local
        else:
            positions[:, k] = positions[:, names.index(parent.name)] + rotations[parent.name] @ offset
            rotations[joint.name] = rotations[parent.name] @ local
    return names, positions


def check_file(path, names, num_frames, fps):
    mocap = parse(path)
    assert mocap.get_joints_names() == names
    assert mocap.joint_channels(names[0]) == list(ROOT_CHANNELS)
    assert all(mocap.joint_channels(n) == list(JOINT_CHANNELS) for n in names[1:])
    assert mocap.nframes == num_frames and len(mocap.frames) == num_frames
    assert mocap.frame_time == pytest.approx(1.0 / fps, rel=1e-8)
    assert all(len(row) == 6 + 3 * (len(names) - 1) for row in mocap.frames)
    return mocap


def depth_first(spec):
    order, stack = [], [spec.position_parents.index(-1)]
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed([c for c, p in enumerate(spec.position_parents) if p == j]))
    return [spec.position_joint_names[j] for j in order]


def smplx133_features(num_frames=5, seed=0):
    noise = np.random.default_rng(seed).normal(scale=0.4, size=(num_frames, 133))
    return (REST_ARMS_DOWN[None] + noise).astype(np.float32)


def rigid_motion(points, seed=0):
    """`points` (J, 3) moved rigidly per frame: random rotations and translations (bone lengths stay constant)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(4):
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        frames.append(points @ (q * np.sign(np.linalg.det(q))).T + rng.normal(size=3))
    return np.stack(frames)


def test_euler_order_is_z_x_y():
    angles = np.array([[30.0, -50.0, 70.0]])
    rot = axis_rotation("Z", angles[:, 0]) @ axis_rotation("X", angles[:, 1]) @ axis_rotation("Y", angles[:, 2])
    np.testing.assert_allclose(matrix_to_euler_zxy(rot), angles, atol=1e-9)


def test_smplx133_features_keep_their_rotations(tmp_path):
    spec = get_skeleton("smplx133")
    features = smplx133_features()
    path = save_bvh(features, "smplx133", tmp_path / "out" / "a.bvh", fps=24.0)
    mocap = check_file(path, depth_first(spec), num_frames=5, fps=24.0)
    assert len(mocap.get_joints_names()) == 54  # pelvis, spine1-3, neck, collars, head, arms, 2 x 21 hand joints
    names, positions = forward_kinematics(mocap)
    expected = np.asarray(spec.to_positions(features), dtype=np.float64)
    order = [spec.position_joint_names.index(n) for n in names]
    np.testing.assert_allclose(positions, expected[:, order], atol=TOLERANCE, rtol=0)
    # the rotation channels are the features' rotations: zero features give zero angles
    zero = parse(save_bvh(np.zeros((2, 133)), spec, tmp_path / "z.bvh", fps=24.0))
    assert np.abs(np.array(zero.frames, dtype=float)[:, 3:]).max() < 1e-9


def test_positions_of_a_rigid_skeleton_round_trip(tmp_path):
    spec = get_skeleton("smplx133")
    positions = np.asarray(spec.to_positions(smplx133_features(seed=1)), dtype=np.float64)
    mocap = parse(save_bvh(positions, spec, tmp_path / "p.bvh", fps=24.0))
    names, fk = forward_kinematics(mocap)
    real = [k for k, n in enumerate(names) if n in spec.position_joint_names]
    assert [names[k] for k in real] == depth_first(spec)
    helpers = [n for n in names if n not in spec.position_joint_names]
    assert "spine3_to_neck" in helpers and "left_wrist_to_left_thumb_cmc" in helpers
    order = [spec.position_joint_names.index(names[k]) for k in real]
    np.testing.assert_allclose(fk[:, real], positions[:, order], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("skeleton", ["holistic", "pt50"])
def test_image_axis_skeletons_are_written_y_up(skeleton, tmp_path):
    spec = get_skeleton(skeleton)
    rest = np.random.default_rng(2).normal(scale=50.0, size=(spec.num_position_joints, 3))
    positions = rigid_motion(rest)
    features = positions.reshape(len(positions), -1)  # position skeletons: the features are xyz per joint
    path = render_to_file(features, spec, tmp_path / "h.bvh", fps=spec.fps)
    names, fk = forward_kinematics(parse(path))
    real = [k for k, n in enumerate(names) if n in spec.position_joint_names]
    order = [spec.position_joint_names.index(names[k]) for k in real]
    np.testing.assert_allclose(fk[:, real], positions[:, order] * [1, -1, -1], atol=1e-4, rtol=0)


def test_fitted_error_is_the_bone_length_deviation(tmp_path):
    spec = get_skeleton("pt50")
    positions = rigid_motion(np.random.default_rng(3).normal(size=(50, 3)))[:3]
    nose, neck = spec.position_joint_names.index("nose"), spec.position_joint_names.index("neck")
    bone = positions[0, nose] - positions[0, neck]
    positions[0, nose] = positions[0, neck] + 1.5 * bone  # frame 0: the nose bone 50% longer than its median
    names, fk = forward_kinematics(parse(save_bvh(positions, spec, tmp_path / "s.bvh", fps=25)))
    flipped = positions * [1, -1, -1]
    error = np.linalg.norm(fk[:, names.index("nose")] - flipped[:, nose], axis=-1)
    np.testing.assert_allclose(error, [0.5 * np.linalg.norm(bone), 0, 0], atol=1e-6)
    others = [k for k, n in enumerate(names) if n in spec.position_joint_names and n != "nose"]
    order = [spec.position_joint_names.index(names[k]) for k in others]
    np.testing.assert_allclose(fk[:, others], flipped[:, order], atol=1e-6)


def test_cli_render_writes_bvh(tmp_path, capsys):
    save_npz(tmp_path / "x.npz", smplx133_features(3), "smplx133", 24.0, text="noise")
    assert main(["render", str(tmp_path / "x.npz"), "--out", str(tmp_path / "x.bvh")]) == 0
    check_file(tmp_path / "x.bvh", depth_first(get_skeleton("smplx133")), num_frames=3, fps=24.0)
    assert main(["render", str(tmp_path / "x.npz"), "--out", str(tmp_path / "y.bvh"), "--reference",
                 str(tmp_path / "x.npz")]) == 2  # fmt: skip
    assert "reference" in capsys.readouterr().err


def test_bad_inputs_raise(tmp_path):
    spec = get_skeleton("smplx133")
    features = smplx133_features(4)
    features[2, 7] = np.nan
    with pytest.raises(ValueError, match="NaN/inf values in frame 2"):
        bvh_text(features, spec, 24)
    with pytest.raises(ValueError, match=r"features \(num_frames >= 1, 133\)"):
        bvh_text(np.zeros((4, 132)), spec, 24)  # wrong frame width
    with pytest.raises(ValueError, match="num_frames >= 1"):
        bvh_text(np.zeros((0, 133)), spec, 24)  # empty sequence
    with pytest.raises(ValueError, match="Unknown skeleton"):
        save_bvh(np.zeros((2, 133)), "smplx999", tmp_path / "u.bvh", 24)
    with pytest.raises(ValueError, match="fps"):
        bvh_text(np.zeros((2, 133)), spec, 0)
    forest = replace(spec, position_parents=(-1,) * spec.num_position_joints)
    with pytest.raises(ValueError, match="one root"):
        bvh_text(np.zeros((2, 54, 3)), forest, 24)
    assert not (tmp_path / "u.bvh").exists()

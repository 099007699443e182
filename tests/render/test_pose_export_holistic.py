"""`.pose` files the pose-format ecosystem opens: MediaPipe Holistic names and counts (as spoken-to-signed's files),
pose-format's visualiser and shoulder normalisation, and hf-sign's own reader (what `hf-sign evaluate` reads)."""

from pathlib import Path

import numpy as np
import pytest
from pose_format import Pose
from pose_format.utils.generic import pose_normalization_info

from hf_sign.data.pose_io import pose_to_holistic, read_pose_file
from hf_sign.render import mediapipe_mapping, pose_to_positions, render_to_file
from hf_sign.render.pose_export import BODY_POINTS, POSE_WORLD, fit_projection
from hf_sign.skeletons import REST_ARMS_DOWN, get_skeleton, pose_features


def spoken_to_signed_file() -> Path:
    package = pytest.importorskip("spoken_to_signed")
    files = sorted((Path(package.__file__).parent / "assets").rglob("*.pose"))
    assert files, "spoken-to-signed ships .pose files in its assets"
    return files[0]


def demo_features(num_frames=12):
    """A short smplx133 sequence like the demo's output: from the rest pose, the right arm raises and waves."""
    t = np.linspace(0, 1, num_frames)
    return np.stack(
        [
            pose_features(REST_ARMS_DOWN, right_shoulder=(0, 0.5 * s, 1.35 - 0.8 * s), right_elbow=(0, 1.5 * s, 0))
            for s in np.sin(np.pi * t)
        ]
    )


def read(path):
    return Pose.read(Path(path).read_bytes())


def offsets(pose):
    out, start = {}, 0
    for c in pose.header.components:
        out[c.name] = start
        start += len(c.points)
    return out


@pytest.fixture(scope="module")
def demo_pose(tmp_path_factory):
    spec = get_skeleton("smplx133")
    features = demo_features()
    path = render_to_file(features, spec, tmp_path_factory.mktemp("pose") / "demo.pose", fps=spec.fps)
    return read(path), np.asarray(spec.to_positions(features), dtype=np.float32), path


@pytest.mark.parametrize("skeleton", ["smplx133", "holistic", "pt50"])
def test_names_and_counts_equal_spoken_to_signed(skeleton, tmp_path):
    reference = read(spoken_to_signed_file()).header
    spec = get_skeleton(skeleton)
    positions = np.random.default_rng(0).normal(size=(2, spec.num_position_joints, 3)).astype(np.float32)
    header = read(render_to_file(positions, spec, tmp_path / "a.pose", fps=25)).header
    assert [(c.name, list(c.points), c.format) for c in header.components] == [
        (c.name, list(c.points), c.format) for c in reference.components
    ]
    assert header.total_points() == 586
    assert (
        (header.dimensions.width, header.dimensions.height)
        == (reference.dimensions.width, reference.dimensions.height)
        == (500, 500)
    )


def test_visualizer_draws_the_demo_pose_filling_the_frame(demo_pose):
    pytest.importorskip("cv2")
    from pose_format.pose_visualizer import PoseVisualizer

    pose, _, _ = demo_pose
    frames = list(PoseVisualizer(pose).draw())
    assert len(frames) == 12 and frames[0].shape == (500, 500, 3)
    for frame in frames:
        drawn = np.argwhere((frame < 250).any(-1))
        drawn = drawn[(drawn > 20).any(1)]  # leave out the world landmarks, metres drawn at the pixel origin
        extent = drawn.max(0) - drawn.min(0)
        assert extent.max() >= 0.8 * 500 and drawn.min() >= 0 and drawn.max() < 500


def test_pose_normalization_info_finds_the_shoulders(demo_pose):
    pose, positions, path = demo_pose
    info = pose_normalization_info(pose.header)
    assert (info.p1, info.p2) == (BODY_POINTS.index("RIGHT_SHOULDER"), BODY_POINTS.index("LEFT_SHOULDER"))
    normalized = read(path).normalize(info)
    data = np.asarray(normalized.body.data)
    distance = np.linalg.norm(data[:, 0, info.p1] - data[:, 0, info.p2], axis=-1)
    np.testing.assert_allclose(distance.mean(), 1.0, rtol=1e-5)
    spec = get_skeleton("smplx133")
    shoulders = np.linalg.norm(
        positions[:, spec.position_joint_names.index("left_shoulder")]
        - positions[:, spec.position_joint_names.index("right_shoulder")],
        axis=-1,
    )
    assert shoulders.std() < 1e-5  # the metric shoulder width is constant, so is the normalised one
    assert distance.std() < 1e-4


def test_missing_points_have_confidence_zero(demo_pose):
    pose, _, _ = demo_pose
    data, conf = np.asarray(pose.body.data.data), np.asarray(pose.body.confidence)
    start = offsets(pose)
    written = {(c, p) for _, c, p in mediapipe_mapping(get_skeleton("smplx133"))}
    for c in pose.header.components:
        name = "POSE_LANDMARKS" if c.name == POSE_WORLD else c.name
        for i, point in enumerate(c.points):
            k = start[c.name] + i
            if (name, point) in written:
                assert (conf[:, 0, k] == 1).all(), (c.name, point)
            else:
                assert (conf[:, 0, k] == 0).all() and (data[:, 0, k] == 0).all(), (c.name, point)
    assert conf[:, 0, start["FACE_LANDMARKS"] : start["LEFT_HAND_LANDMARKS"]].max() == 0  # smplx133: no face points
    assert conf[:, 0, BODY_POINTS.index("NOSE")].max() == 0 and conf[:, 0, BODY_POINTS.index("LEFT_HIP")].max() == 0


def test_world_landmarks_are_the_metric_input_and_the_projection_round_trips(demo_pose):
    pose, positions, _ = demo_pose
    spec = get_skeleton("smplx133")
    data = np.asarray(pose.body.data.data)
    world_start = offsets(pose)[POSE_WORLD]
    image_axes = np.float32([1, -1, -1])
    mapping = mediapipe_mapping(spec)
    for joint, component, point in mapping:
        if component == "POSE_LANDMARKS":
            k = BODY_POINTS.index(point)
            np.testing.assert_array_equal(data[:, 0, world_start + k], positions[:, joint] * image_axes)
    # pixels = scale * world + offset, one scale and offset per file (x, y in the canvas, z centred on 0)
    joints = sorted({j for j, _, _ in mapping})
    world = positions[:, joints] * image_axes
    scale, offset = fit_projection(world, np.ones(world.shape[:2], bool))
    left_thumb_tip = spec.position_joint_names.index("left_thumb_tip")
    k = offsets(pose)["LEFT_HAND_LANDMARKS"] + 4
    np.testing.assert_allclose(data[:, 0, k], scale * positions[:, left_thumb_tip] * image_axes + offset, atol=1e-3)
    back = pose_to_positions(pose, spec)
    np.testing.assert_allclose(back[:, joints], positions[:, joints], atol=1e-5, rtol=0)


def test_hf_sign_reader_reads_the_demo_pose(demo_pose):
    pose, positions, path = demo_pose
    with pytest.raises(ValueError, match="missing"):  # nose, eyes, ears, hips: never written
        pose_to_holistic(read_pose_file(path), face=False)
    features, confidence = pose_to_holistic(read_pose_file(path), face=False, allow_missing=True)
    holistic = get_skeleton("holistic_noface")
    joints = features.reshape(len(features), holistic.num_position_joints, 3)
    data = np.asarray(pose.body.data.data)
    for name in ("left_shoulder", "right_elbow", "left_hand_index_finger_tip", "right_hand_wrist"):
        j = holistic.position_joint_names.index(name)
        assert (confidence[:, j] == 1).all()
    left_shoulder = holistic.position_joint_names.index("left_shoulder")
    np.testing.assert_array_equal(joints[:, left_shoulder], data[:, 0, BODY_POINTS.index("LEFT_SHOULDER")])
    assert (confidence[:, holistic.position_joint_names.index("nose")] == 0).all()
    assert positions.shape[0] == len(features)


def test_holistic_export_reads_back_through_pose_to_holistic(tmp_path):
    source = read_pose_file(spoken_to_signed_file())
    features, _ = pose_to_holistic(source, allow_missing=True)
    spec = get_skeleton("holistic")
    positions = features.reshape(len(features), spec.num_position_joints, 3)
    path = render_to_file(features, spec, tmp_path / "h.pose", fps=25)
    pose = read(path)
    size = np.array([pose.header.dimensions.width, pose.header.dimensions.height])
    assert (size >= 500).all() and (size >= positions[..., :2].max((0, 1))).all()  # covers every point
    back, confidence = pose_to_holistic(read_pose_file(path))  # every holistic point written: nothing missing
    assert (confidence == 1).all()
    # MediaPipe pixels are written as they are: the features come back bit for bit (the neck re-derived the same)
    np.testing.assert_array_equal(back, features)
    mapped = sorted({j for j, _, _ in mediapipe_mapping(spec)})
    np.testing.assert_array_equal(pose_to_positions(pose, spec)[:, mapped], positions[:, mapped])
    # centred (negative) image-axis coordinates are not pixels: projected into the canvas like metric ones
    centred = positions - positions.mean((0, 1))
    back, _ = pose_to_holistic(read_pose_file(render_to_file(centred, spec, tmp_path / "c.pose", fps=25)))
    scale, offset = fit_projection(centred[:, mapped], np.ones((len(centred), len(mapped)), bool))
    np.testing.assert_allclose(back.reshape(centred.shape), scale * centred + offset, atol=1e-3)

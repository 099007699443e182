"""pose-format `.pose` reading (`hf_sign.data.pose_io`) and the `pose-dir` converter.

Fixtures are written by the tests in the exact `.pose` format with pose-format's own writer, on a
MediaPipe Holistic header (586 points) built here, so no download or mediapipe install is needed.
"""

import json

import numpy as np
import pytest
from datasets import load_dataset
from pose_format import Pose
from pose_format.numpy import NumPyPoseBody
from pose_format.pose_header import PoseHeader, PoseHeaderComponent, PoseHeaderDimensions

from hf_sign.data.converters.base import ConversionError
from hf_sign.data.converters.pose_dir import convert_pose_dir, hash_split
from hf_sign.data.pose_io import pose_to_holistic, read_pose_file
from hf_sign.skeletons.holistic import HAND_POINTS
from hf_sign.skeletons.spec import get_skeleton

POSE_POINTS = [
    "NOSE", "LEFT_EYE_INNER", "LEFT_EYE", "LEFT_EYE_OUTER", "RIGHT_EYE_INNER", "RIGHT_EYE", "RIGHT_EYE_OUTER",
    "LEFT_EAR", "RIGHT_EAR", "MOUTH_LEFT", "MOUTH_RIGHT", "LEFT_SHOULDER", "RIGHT_SHOULDER", "LEFT_ELBOW",
    "RIGHT_ELBOW", "LEFT_WRIST", "RIGHT_WRIST", "LEFT_PINKY", "RIGHT_PINKY", "LEFT_INDEX", "RIGHT_INDEX",
    "LEFT_THUMB", "RIGHT_THUMB", "LEFT_HIP", "RIGHT_HIP", "LEFT_KNEE", "RIGHT_KNEE", "LEFT_ANKLE", "RIGHT_ANKLE",
    "LEFT_HEEL", "RIGHT_HEEL", "LEFT_FOOT_INDEX", "RIGHT_FOOT_INDEX",
]
RIGHT_HAND_START = 33 + 478 + 21  # flat index of RIGHT_HAND_LANDMARKS/WRIST in the 586-point layout


def holistic_header(fmt="XYZC", hand_points=HAND_POINTS):
    comps = [
        ("POSE_LANDMARKS", POSE_POINTS),
        ("FACE_LANDMARKS", [str(i) for i in range(478)]),
        ("LEFT_HAND_LANDMARKS", list(hand_points)),
        ("RIGHT_HAND_LANDMARKS", list(hand_points)),
        ("POSE_WORLD_LANDMARKS", POSE_POINTS),
    ]
    components = [PoseHeaderComponent(n, p, [], [], fmt) for n, p in comps]
    return PoseHeader(0.2, PoseHeaderDimensions(500, 500, 0), components)


def make_pose(num_frames=8, header=None, seed=0):
    """A smooth synthetic holistic pose: every point moves linearly in time, confidence 1."""
    header = header or holistic_header()
    points, dims = header.total_points(), header.num_dims()
    rng = np.random.default_rng(seed)
    base = rng.uniform(100, 400, size=(points, dims)).astype(np.float32)
    vel = rng.uniform(-3, 3, size=(points, dims)).astype(np.float32)
    data = base[None] + np.arange(num_frames, dtype=np.float32)[:, None, None] * vel[None]
    conf = np.ones((num_frames, 1, points), dtype=np.float32)
    return Pose(header, NumPyPoseBody(25.0, data[:, None], conf))


def write(pose, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pose.write(fh)
    return path


# ------------------------------------------------------------------------------------------ pose_io
def test_pose_to_holistic_synthetic_shapes_and_neck():
    pose = make_pose()
    feats, conf = pose_to_holistic(pose, source="x.pose")
    spec = get_skeleton("holistic")
    assert feats.shape == (8, spec.feature_dim) and feats.dtype == np.float32
    assert conf.shape == (8, spec.num_joints)
    p = feats.reshape(8, -1, 3)
    raw = np.asarray(pose.body.data.data)[:, 0]
    np.testing.assert_allclose(p[:, 0], (raw[:, 11] + raw[:, 12]) / 2, rtol=1e-6)  # neck = shoulder midpoint
    np.testing.assert_allclose(p[:, spec.wrist_indices[1]], raw[:, RIGHT_HAND_START])
    feats_nf, _ = pose_to_holistic(pose, face=False)
    assert feats_nf.shape == (8, get_skeleton("holistic_noface").feature_dim)


def test_missing_hand_frames_are_interpolated_and_held_at_ends():
    pose = make_pose()
    hand = slice(RIGHT_HAND_START, RIGHT_HAND_START + 21)
    expected = np.asarray(pose.body.data.data)[:, 0, hand].copy()
    for t in (0, 3, 4):  # an undetected hand: MediaPipe writes zeros with confidence 0
        pose.body.data.data[t, 0, hand] = 0
        pose.body.confidence[t, 0, hand] = 0
    feats, conf = pose_to_holistic(pose, source="gap.pose")
    spec = get_skeleton("holistic")
    rh = feats.reshape(8, -1, 3)[:, list(spec.parts["right_hand"])]
    np.testing.assert_allclose(rh[3], expected[3], rtol=1e-5)  # linear motion -> exact interpolation
    np.testing.assert_allclose(rh[4], expected[4], rtol=1e-5)
    np.testing.assert_allclose(rh[0], expected[1], rtol=1e-6)  # held before the first detection
    assert (conf[[0, 3, 4]][:, list(spec.parts["right_hand"])] == 0).all()
    assert (conf[[1, 2, 5]][:, list(spec.parts["right_hand"])] == 1).all()


def test_never_detected_hand_needs_allow_missing():
    pose = make_pose()
    hand = slice(RIGHT_HAND_START, RIGHT_HAND_START + 21)
    pose.body.confidence[:, 0, hand] = 0
    with pytest.raises(ValueError, match=r"nohand\.pose.*right_hand_wrist"):
        pose_to_holistic(pose, source="nohand.pose")
    feats, conf = pose_to_holistic(pose, source="nohand.pose", allow_missing=True)
    spec = get_skeleton("holistic")
    p = feats.reshape(8, -1, 3)
    raw_wrist = np.asarray(pose.body.data.data)[:, 0, POSE_POINTS.index("RIGHT_WRIST")]
    for j in spec.parts["right_hand"]:  # collapsed onto the body-pose wrist
        np.testing.assert_allclose(p[:, j], raw_wrist)


def test_nan_names_file_and_frame():
    pose = make_pose()
    pose.body.data.data[3, 0, 5, 1] = np.nan
    with pytest.raises(ValueError, match=r"bad\.pose.*frame 3"):
        pose_to_holistic(pose, source="bad.pose")


def test_read_pose_file_errors_name_the_file(tmp_path):
    good = write(make_pose(), tmp_path / "good.pose")
    assert read_pose_file(good).body.data.shape[:3] == (8, 1, 586)
    data = good.read_bytes()
    (tmp_path / "cut.pose").write_bytes(data[: len(data) - 3000])
    with pytest.raises(ValueError, match=r"cut\.pose.*truncated.*frame \d+ of 8"):
        read_pose_file(tmp_path / "cut.pose")
    (tmp_path / "zero.pose").write_bytes(b"")
    with pytest.raises(ValueError, match=r"zero\.pose.*empty"):
        read_pose_file(tmp_path / "zero.pose")
    with pytest.raises(ValueError, match=r"absent\.pose.*not found"):
        read_pose_file(tmp_path / "absent.pose")


def test_real_lexicon_clip():
    pytest.importorskip("spoken_to_signed")
    from hf_sign.data.fingerspelling_clips import lexicon_root

    rel = "ase/fs-stse28e9ac023b0e29ca0a3acc12dc46540.pose"  # ASL "A" (index.csv row 1)
    path = lexicon_root() / rel
    if not path.is_file():
        pytest.skip(f"{rel} not in this spoken-to-signed version")
    pose = read_pose_file(path)
    with pytest.raises(ValueError, match="left_hand"):  # the ASL clips never show the left hand
        pose_to_holistic(pose, source=rel)
    feats, conf = pose_to_holistic(pose, source=rel, allow_missing=True)
    spec = get_skeleton("holistic")
    T = pose.body.data.shape[0]
    assert feats.shape == (T, 216) and np.isfinite(feats).all()
    p = feats.reshape(T, -1, 3)
    names = spec.joint_names
    shoulder_width = np.linalg.norm(
        p[:, names.index("left_shoulder"), :2] - p[:, names.index("right_shoulder"), :2], axis=-1
    )
    detected = conf[:, spec.wrist_indices[1]] > 0
    assert detected.sum() > T // 2
    gap = np.linalg.norm(p[:, spec.wrist_indices[1], :2] - p[:, names.index("right_wrist"), :2], axis=-1)
    assert (gap[detected] < 0.25 * shoulder_width[detected]).all()  # hand wrist sits on the body's wrist
    assert (p[:, names.index("nose"), 1] < p[:, names.index("neck"), 1]).all()  # y down: head above neck


# ---------------------------------------------------------------------------------------- pose-dir
@pytest.fixture()
def pose_dir(tmp_path):
    src = tmp_path / "src"
    write(make_pose(seed=1), src / "clips" / "good1.pose")
    write(make_pose(num_frames=6, seed=2), src / "clips" / "good2.pose")
    nan = make_pose(seed=3)
    nan.body.data.data[3, 0, 100, 0] = np.nan
    write(nan, src / "clips" / "nan.pose")
    write(make_pose(header=holistic_header(fmt="XYC")), src / "clips" / "dims2d.pose")
    write(make_pose(header=holistic_header(hand_points=HAND_POINTS[:20])), src / "clips" / "points20.pose")
    data = write(make_pose(seed=4), src / "clips" / "cut.pose").read_bytes()
    (src / "clips" / "cut.pose").write_bytes(data[: len(data) // 2])
    empty = make_pose()
    empty.body = NumPyPoseBody(25.0, np.zeros((0, 1, 586, 3), np.float32), np.zeros((0, 1, 586), np.float32))
    write(empty, src / "clips" / "empty.pose")
    return src


BAD = {
    "clips/nan.pose": r"nan\.pose.*frame 3",
    "clips/dims2d.pose": r"dims2d\.pose.*'XYC'.*expected 'XYZC'",
    "clips/points20.pose": r"points20\.pose.*PINKY_TIP",
    "clips/cut.pose": r"cut\.pose.*truncated.*frame",
    "clips/empty.pose": r"empty\.pose.*0 frames",
    "clips/missing.pose": r"missing\.pose.*not found",
}


def write_csv(src, paths, header="path,text,gloss,split,language,signer", splits=None):
    lines = [header]
    for i, p in enumerate(paths):
        split = (splits or ["train"] * len(paths))[i]
        lines.append(f"{p},sentence {i},HELLO WORLD,{split},ase,s{i % 2}")
    (src / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("bad", sorted(BAD))
def test_bad_file_stops_conversion_naming_file_and_frame(pose_dir, tmp_path, bad):
    write_csv(pose_dir, ["clips/good1.pose", bad])
    with pytest.raises(ConversionError, match=BAD[bad]):
        convert_pose_dir(pose_dir, tmp_path / "out")


def test_skip_invalid_reports_every_bad_file(pose_dir, tmp_path):
    paths = ["clips/good1.pose", *sorted(BAD), "clips/good2.pose"]
    write_csv(pose_dir, paths, splits=["train"] + ["validation"] * len(BAD) + ["test"])
    out = tmp_path / "out"
    dd, skipped = convert_pose_dir(pose_dir, out, skip_invalid=True)
    assert {s["item"] for s in skipped} == set(BAD)
    for s in skipped:
        assert s["item"].split("/")[-1] in s["error"]
    report = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert {r["item"] for r in report} == set(BAD)
    loaded = load_dataset(str(out))
    assert loaded["train"]["id"] == ["clips/good1"] and loaded["test"]["id"] == ["clips/good2"]
    assert "validation" not in dd and "validation" not in loaded  # empty splits are not written
    row = loaded["train"][0]
    assert row["gloss"] == ["HELLO", "WORLD"] and row["language"] == "ase" and row["signer"] == "s0"
    assert row["representation"] == "holistic" and row["fps"] == 25.0 and row["num_frames"] == 8
    assert np.asarray(row["poses"]).shape == (8, 216)
    card = (out / "README.md").read_text()
    assert "Skipped items: 6" in card and "Filled landmarks" in card


def test_hash_split_and_defaults_without_optional_columns(pose_dir, tmp_path):
    (pose_dir / "meta.csv").write_text("path,text\nclips/good1.pose,hello\nclips/good2.pose,bye\n", encoding="utf-8")
    dd, skipped = convert_pose_dir(pose_dir, tmp_path / "out", csv=pose_dir / "meta.csv", language="gsg", face=False)
    assert skipped == []
    rows = {r["id"]: (split, r) for split in dd for r in dd[split]}
    for rel in ("clips/good1.pose", "clips/good2.pose"):
        split, row = rows[rel[:-5]]
        assert split == hash_split(rel)
        assert row["language"] == "gsg" and row["gloss"] == [] and row["representation"] == "holistic_noface"


def test_csv_errors_name_the_column(pose_dir, tmp_path):
    (pose_dir / "metadata.csv").write_text("path,sentence\nclips/good1.pose,hello\n", encoding="utf-8")
    with pytest.raises(ConversionError, match="'text'"):
        convert_pose_dir(pose_dir, tmp_path / "out")
    (pose_dir / "metadata.csv").write_text("path,text,split\nclips/good1.pose,hello,dev\n", encoding="utf-8")
    with pytest.raises(ConversionError, match="'dev'"):
        convert_pose_dir(pose_dir, tmp_path / "out")

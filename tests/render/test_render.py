"""Drawing, video writing and render inputs (hf_sign.render)."""

import numpy as np
import pytest

from hf_sign.render import (
    PART_COLORS,
    draw_frames,
    load_render_input,
    render_panels,
    render_to_file,
    save_gif,
    save_mp4,
    save_npz,
    save_video,
)
from hf_sign.skeletons.spec import SkeletonSpec, get_skeleton

BG = np.array([255, 255, 255], dtype=np.uint8)


def stick_spec(y_down: bool = False) -> SkeletonSpec:
    """5-joint stick figure: pelvis -> neck -> {head, left_hand, right_hand}."""
    names = ("pelvis", "neck", "head", "left_hand", "right_hand")
    parents = (-1, 0, 1, 1, 1)
    parts = {"body": (0, 1), "face": (2,), "left_hand": (3,), "right_hand": (4,)}
    return SkeletonSpec(
        name="stick5", joint_names=names, parents=parents, joint_dims=(3,) * 5, parts=parts,
        pooling_groups={}, atomic_joint_names={}, position_joint_names=names, position_parents=parents,
        position_parts=parts, root_index=0, wrist_indices=(3, 4), fps=25.0, y_down=y_down,
    )


REST = np.array([[0, 0, 0], [0, 0.5, 0], [0, 0.7, 0], [0.3, 0.3, 0.1], [-0.3, 0.3, 0.1]], dtype=np.float32)


def seq(num_frames=6, move=0.0):
    """Rest pose repeated; the left hand rises by `move` over the sequence."""
    pos = np.repeat(REST[None], num_frames, 0).copy()
    pos[:, 3, 1] += np.linspace(0.0, move, num_frames)
    return pos


def color_mask(img, part):
    return (img == np.array(PART_COLORS[part], dtype=np.uint8)).all(-1)


def centroid(mask):
    rows, cols = np.nonzero(mask)
    assert len(rows) > 0, "expected pixels of that colour"
    return rows.mean(), cols.mean()


def test_draw_frames_shape_dtype_and_content():
    frames = draw_frames(seq(4), stick_spec(), size=(120, 100), title="hi")
    assert frames.shape == (4, 100, 120, 3) and frames.dtype == np.uint8
    assert (frames[0] != BG).any(-1).sum() > 50
    for part in ("body", "left_hand", "right_hand", "face"):
        assert color_mask(frames[0], part).any(), part


def test_different_poses_give_different_images():
    a = draw_frames(seq(1), stick_spec(), size=(96, 96), frame_counter=False)
    other = seq(1)
    other[0, 4] = [-0.3, 0.7, 0.1]  # raise the right hand
    b = draw_frames(other, stick_spec(), size=(96, 96), frame_counter=False)
    assert not np.array_equal(a, b)


def test_moving_joint_moves_pixels_with_fixed_scale():
    frames = draw_frames(seq(5, move=0.6), stick_spec(), size=(128, 128), frame_counter=False)
    # One scale for the whole sequence: the static joints are drawn identically in every frame (the hand
    # ends above the head, so a per-frame fit would rescale and move them) ...
    for part in ("face", "right_hand"):
        assert np.array_equal(color_mask(frames[0], part), color_mask(frames[-1], part))
    # ... while the rising left hand moves up in the image.
    r0, _ = centroid(color_mask(frames[0], "left_hand"))
    r1, _ = centroid(color_mask(frames[-1], "left_hand"))
    assert r1 < r0 - 5


def test_y_up_flip_and_left_appears_on_the_right():
    img = draw_frames(seq(1), stick_spec(y_down=False), size=(128, 128), frame_counter=False)[0]
    head_row, _ = centroid(color_mask(img, "face"))
    body_row, _ = centroid(color_mask(img, "body"))
    assert head_row < body_row  # larger y (head) is higher in the image
    _, left_col = centroid(color_mask(img, "left_hand"))
    _, right_col = centroid(color_mask(img, "right_hand"))
    assert left_col > 64 > right_col  # +x = the signer's left, seen on the image right
    down = draw_frames(seq(1), stick_spec(y_down=True), size=(128, 128), frame_counter=False)[0]
    assert centroid(color_mask(down, "face"))[0] > centroid(color_mask(down, "body"))[0]


def test_side_view_uses_depth():
    pos = seq(1)
    pos[0, 2] = [0.0, 0.7, 0.3]  # head leans forward (+z)
    img = draw_frames(pos, stick_spec(), size=(128, 128), view="side", frame_counter=False)[0]
    assert centroid(color_mask(img, "face"))[1] > centroid(color_mask(img, "body"))[1]
    with pytest.raises(ValueError, match="view"):
        draw_frames(pos, stick_spec(), view="top")


def test_nan_joints_are_skipped():
    pos = seq(2)
    pos[:, 3] = np.nan
    frames = draw_frames(pos, stick_spec(), size=(96, 96))
    assert not color_mask(frames[0], "left_hand").any()
    assert color_mask(frames[0], "right_hand").any()


def test_bad_positions_shape_raises():
    with pytest.raises(ValueError, match="positions.*\\(num_frames >= 1, 5, 3\\)"):
        draw_frames(np.zeros((3, 4, 3)), stick_spec())


def test_panels_width_titles_padding_and_shared_scale():
    w, h = 100, 90
    long_, short = seq(6, move=0.3), seq(3) * 0.5
    frames = render_panels([long_, short], stick_spec(), titles=["reference", "generated"], size=(w, h))
    assert frames.shape == (6, h, 2 * w, 3)
    # titles: dark text pixels in the top strip of both panels
    for k in range(2):
        assert (frames[0, :12, k * w:(k + 1) * w] < 100).all(-1).any()
    # the shorter sequence holds its last frame (counter included)
    assert np.array_equal(frames[2, :, w:], frames[5, :, w:])
    assert not np.array_equal(frames[2, :, :w], frames[5, :, :w])
    # shared scale: the half-size figure is drawn about half as tall
    def height(img):
        rows = np.nonzero(color_mask(img, "body") | color_mask(img, "face"))[0]
        return rows.max() - rows.min()
    ratio = height(frames[0, :, w:]) / height(frames[0, :, :w])
    assert 0.4 < ratio < 0.6
    with pytest.raises(ValueError, match="titles"):
        render_panels([long_, short], stick_spec(), titles=["only one"])
    mixed = render_panels([long_, short], [stick_spec(), stick_spec(y_down=True)], size=(w, h))  # one spec per panel
    assert mixed.shape == (6, h, 2 * w, 3)
    with pytest.raises(ValueError, match="spec"):
        render_panels([long_, short], [stick_spec()])


def test_gif_and_mp4_written_and_read_back(tmp_path):
    import imageio.v2 as iio2
    import imageio.v3 as iio

    frames = draw_frames(seq(5, move=0.3), stick_spec(), size=(65, 49))  # odd size on purpose
    gif = save_gif(frames, tmp_path / "a.gif", fps=10)
    back = iio.imread(gif, plugin="pillow", index=None)
    assert back.shape[:3] == (5, 49, 65)
    mp4 = save_video(frames, tmp_path / "sub" / "a.mp4", fps=10)
    reader = iio2.get_reader(str(mp4), format="FFMPEG")
    video = [f for f in reader]
    reader.close()
    assert len(video) == 5 and video[0].shape == (50, 66, 3)  # padded to even for yuv420p
    assert save_video(frames, tmp_path / "b.GIF", fps=10).exists()
    with pytest.raises(ValueError, match=r"\.gif.*\.mp4"):
        save_video(frames, tmp_path / "a.avi", fps=10)
    with pytest.raises(ValueError, match="uint8"):
        save_mp4(frames.astype(np.float32), tmp_path / "c.mp4", fps=10)


def test_npz_round_trip_and_errors(tmp_path):
    poses = np.random.default_rng(0).normal(size=(7, 15)).astype(np.float32)
    path = save_npz(tmp_path / "x.npz", poses, "stick5", 25, text="hello", gloss=["HELLO", "YOU"])
    item = load_render_input(path)
    assert np.array_equal(item.features, poses)
    assert (item.representation, item.fps, item.text, item.gloss) == ("stick5", 25.0, "hello", ["HELLO", "YOU"])
    np.savez(tmp_path / "bad.npz", poses=poses, fps=np.array(25.0))
    with pytest.raises(ValueError, match="representation"):
        load_render_input(tmp_path / "bad.npz")
    np.savez(tmp_path / "min.npz", poses=poses, fps=np.array(24.0), representation=np.array("stick5"))
    item = load_render_input(tmp_path / "min.npz")
    assert item.text == "" and item.gloss == []
    with pytest.raises(FileNotFoundError):
        load_render_input(tmp_path / "missing.npz")


def test_load_render_input_from_dataset_dir(tmp_path):
    from hf_sign.data.io import save_corpus
    from hf_sign.data.schema import make_sample, sign_features

    rng = np.random.default_rng(0)
    rows = [
        make_sample(id=f"s{i}", text=f"sentence {i}", poses=rng.normal(size=(4 + i, 15)), fps=25.0,
                    representation="stick5", gloss=["A", f"B{i}"])
        for i in range(2)
    ]
    save_corpus({"train": rows[:1], "test": rows}, sign_features(15), tmp_path / "ds", card="# tiny\n")
    item = load_render_input(tmp_path / "ds", split="test", index=1)
    assert item.features.shape == (5, 15) and item.features.dtype == np.float32
    assert np.array_equal(item.features, rows[1]["poses"])
    assert (item.text, item.gloss, item.representation, item.fps) == ("sentence 1", ["A", "B1"], "stick5", 25.0)
    with pytest.raises(ValueError, match=r"index.*valid: 0\.\.1"):
        load_render_input(tmp_path / "ds", split="test", index=2)
    with pytest.raises(ValueError, match=r"split.*'test', 'train'"):
        load_render_input(tmp_path / "ds", split="validation")


def test_render_to_file_features_reference_and_pose(tmp_path):
    import imageio.v3 as iio

    spec = stick_spec()
    features = seq(4, move=0.2).reshape(4, 15)  # position features: xyz per joint
    out = render_to_file(features, spec, tmp_path / "r.gif", fps=8, reference=seq(3), text="hello", size=(80, 80))
    assert iio.imread(out, plugin="pillow", index=None).shape[:3] == (4, 80, 160)
    with pytest.raises(ValueError, match="no joint with a MediaPipe Holistic point"):  # .pose: MediaPipe layout
        render_to_file(seq(3), spec, tmp_path / "r.pose", fps=8)
    with pytest.raises(ValueError, match="expected one of"):
        render_to_file(seq(3), spec, tmp_path / "r.png", fps=8)
    with pytest.raises(ValueError, match="features_or_positions"):
        render_to_file(np.zeros((3, 7)), spec, tmp_path / "r.gif", fps=8)


def test_smplx133_rest_pose_renders():
    spec = get_skeleton("smplx133")
    features = np.zeros((3, spec.feature_dim), dtype=np.float32)
    positions = np.asarray(spec.to_positions(features))
    assert positions.shape == (3, spec.num_position_joints, 3)
    frames = draw_frames(positions, spec, size=(128, 128), title="rest")
    assert frames.shape == (3, 128, 128, 3)
    for part in ("body", "left_hand", "right_hand"):
        assert color_mask(frames[0], part).any(), part
    # the signer's left hand (+x in SMPL-X) is drawn on the right of the image
    assert centroid(color_mask(frames[0], "left_hand"))[1] > centroid(color_mask(frames[0], "right_hand"))[1]

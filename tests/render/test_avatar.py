"""Avatar and skeleton control frames: shapes, styles, one framing per sequence, pixel alignment, hand boxes and
errors."""

from __future__ import annotations

import numpy as np
import pytest

from hf_sign.render.avatar import (
    AVATAR_STYLES,
    SKELETON_COLORS,
    AvatarStyle,
    draw_avatar_frames,
    draw_skeleton_frames,
    get_avatar_style,
    hand_boxes,
)
from hf_sign.skeletons.smplx133 import pose_features, rest_pose_features
from hf_sign.skeletons.spec import get_skeleton

SPEC = get_skeleton("smplx133")


def _sequence(num_frames: int = 6) -> np.ndarray:
    """Positions `(T, 54, 3)`: from the rest pose to both hands in front of the chest."""
    rest = rest_pose_features()
    chest = pose_features(
        left_shoulder=(0, -0.5, -1.2), left_elbow=(0, -2.0, 0), right_shoulder=(0, 0.5, 1.2), right_elbow=(0, 2.0, 0)
    )
    w = np.linspace(0, 1, num_frames, dtype=np.float32)[:, None]
    return np.asarray(SPEC.to_positions(((1 - w) * rest + w * chest).astype(np.float32)))


@pytest.fixture(scope="module")
def positions():
    return _sequence()


def test_shapes_and_dtypes(positions):
    avatar = draw_avatar_frames(positions, SPEC, "studio", size=48)
    control = draw_skeleton_frames(positions, SPEC, size=48)
    assert avatar.shape == control.shape == (6, 48, 48, 3)
    assert avatar.dtype == control.dtype == np.uint8
    assert draw_avatar_frames(positions, SPEC, AVATAR_STYLES[1], frames=[2, 4]).shape == (2, 64, 64, 3)


def test_presets_are_distinct_and_drawn_in_their_colours(positions):
    assert len(AVATAR_STYLES) >= 6 and len({s.name for s in AVATAR_STYLES}) == len(AVATAR_STYLES)
    frames = [draw_avatar_frames(positions, SPEC, s, frames=[3])[0] for s in AVATAR_STYLES]
    for style, frame in zip(AVATAR_STYLES, frames):
        assert tuple(frame[0, 0]) == style.background  # a corner is background
        clothing = np.all(frame == np.array(style.clothing, dtype=np.uint8), axis=-1).mean()
        assert clothing > 0.05, style.name  # the torso is filled with the clothing colour
    for i in range(len(frames)):
        for j in range(i + 1, len(frames)):
            assert np.abs(frames[i].astype(int) - frames[j].astype(int)).mean() > 10, (i, j)


def test_one_framing_per_sequence(positions):
    full = draw_avatar_frames(positions, SPEC, "warm")
    np.testing.assert_array_equal(draw_avatar_frames(positions, SPEC, "warm", frames=[4])[0], full[4])
    # the body does not move in this sequence: the head ring of the control image stays put while the arms move
    control = draw_skeleton_frames(positions, SPEC)
    head = np.all(control == np.array(SKELETON_COLORS["head"], dtype=np.uint8), axis=-1)
    assert head[0].sum() > 5
    np.testing.assert_array_equal(head[0], head[-1])
    assert np.abs(control[0].astype(int) - control[-1].astype(int)).sum() > 0  # the arms did move


def test_control_pixels_lie_on_the_avatar(positions):
    style = AVATAR_STYLES[0]
    avatar = draw_avatar_frames(positions, SPEC, style)
    control = draw_skeleton_frames(positions, SPEC)
    bone = control.max(-1) > 100
    figure = np.abs(avatar.astype(int) - np.array(style.background)).sum(-1) > 30
    assert bone.sum() > 100
    assert (figure & bone).sum() / bone.sum() > 0.9


def test_hand_shading_changes_only_the_hands(positions):
    shaded = AVATAR_STYLES[0]
    flat = AvatarStyle(**{**shaded.__dict__, "hand_shading": False})
    a = draw_avatar_frames(positions, SPEC, shaded).astype(int)
    b = draw_avatar_frames(positions, SPEC, flat).astype(int)
    diff = np.abs(a - b).sum(-1) > 0
    assert diff.any()
    inside = np.zeros_like(diff)
    for t, frame_boxes in enumerate(hand_boxes(positions, SPEC, 64)):
        for x0, y0, x1, y1 in frame_boxes:
            inside[t, y0:y1, x0:x1] = True
    assert not (diff & ~inside).any()


def test_hand_boxes_hold_the_hands(positions):
    boxes = hand_boxes(positions, SPEC, 64)
    assert boxes.shape == (6, 2, 4) and boxes.dtype == np.int64
    assert (boxes[..., :2] >= 0).all() and (boxes[..., 2:] <= 64).all() and (boxes[..., 2:] > boxes[..., :2]).all()
    control = draw_skeleton_frames(positions, SPEC, supersample=1)  # exact colours, no anti-aliasing
    for k, side in enumerate(("left", "right")):
        colours = [
            np.array(SKELETON_COLORS[f"{side}_{f}"], dtype=np.uint8)
            for f in ("palm", "thumb", "index", "middle", "ring", "pinky")
        ]
        for t in range(len(positions)):
            ys, xs = np.nonzero(np.any([np.all(control[t] == c, axis=-1) for c in colours], axis=0))
            x0, y0, x1, y1 = boxes[t, k]
            assert len(xs) and (xs >= x0).all() and (xs < x1).all() and (ys >= y0).all() and (ys < y1).all()


def test_bad_inputs(positions):
    with pytest.raises(ValueError, match="style"):
        get_avatar_style("nope")
    with pytest.raises(ValueError, match="style"):
        draw_avatar_frames(positions, SPEC, "nope")
    with pytest.raises(ValueError, match="positions"):
        draw_skeleton_frames(positions[:, :10], SPEC)
    with pytest.raises(ValueError, match="frames"):
        draw_avatar_frames(positions, SPEC, "studio", frames=[6])
    with pytest.raises(ValueError, match="size"):
        draw_skeleton_frames(positions, SPEC, size=8)
    pt50 = get_skeleton("pt50")
    with pytest.raises(ValueError, match="lack the joints"):
        draw_skeleton_frames(np.zeros((2, pt50.num_position_joints, 3)), pt50)

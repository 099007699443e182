"""`pt50`: the 50-joint 3D skeleton of Progressive Transformers (Saunders et al., ECCV 2020).

Progressive Transformers (PT) trains on PHOENIX-2014T poses that were estimated with OpenPose (2D) and
lifted to 3D by an inverse-kinematics model (Zelinka & Kanis). PT's `.skels` files store, per frame,
50 joints x (x, y, z) = 150 numbers followed by one counter value (see
`hf_sign.data.converters.phoenix_skels`); this spec describes the 150 numbers.

Joint order (from the bone list of PT's `plot_videos.py`, checked against the released sample data):

| index | joints |
|---|---|
| 0 | nose (OpenPose body 0; PT's plot calls it "head") |
| 1 | neck (OpenPose body 1; the data are centred on it: always (0, 0, 0) in PT's files) |
| 2, 3, 4 | right shoulder, right elbow, right wrist (OpenPose body 2-4) |
| 5, 6, 7 | left shoulder, left elbow, left wrist (OpenPose body 5-7) |
| 8..28 | left hand, 21 OpenPose hand keypoints: wrist, thumb cmc/mcp/ip/tip, then index, middle, ring, pinky |
|  | (mcp, pip, dip, tip each) |
| 29..49 | right hand, same order |

Sides follow OpenPose's convention (the subject's right for body 2-4). PT's plot code labels the arm
2-3 "left" in a comment, but it attaches that arm to the hand block 29..49 and the arm 5-6 to the
block 8..28, exactly as OpenPose's right/left hands; in the sample data the body wrist 7 and the hand
wrist 8 coincide, as do 4 and 29. Whether "right" is the signer's right also depends on whether the
source video was mirrored, which the files do not say.

Coordinates are image-like: y grows downwards (the nose has negative y relative to the neck), so
`y_down=True` and renderers flip y. PT's data are also scaled (its plot code multiplies by 3 before
drawing); hf-sign keeps the values as stored.

Topology: like PT's drawing, each hand's root (its wrist keypoint) hangs from the elbow, not from the
body wrist; the body wrists 4 and 7 are leaves under the elbows. The neck is the root.
"""

from __future__ import annotations

from typing import List, Tuple

from .spec import SkeletonSpec, register_skeleton

BODY_JOINTS = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)
BODY_PARENTS = (1, -1, 1, 2, 3, 1, 5, 6)

# OpenPose / MediaPipe hand order: wrist, then 4 joints per finger from the palm outwards.
HAND_JOINTS = (
    "wrist",
    "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)

LEFT_HAND_START = 8
RIGHT_HAND_START = 29
NUM_JOINTS = 50
VALUES_PER_FRAME = 151  # 150 coordinates + PT's counter value


def _hand_parents(start: int, elbow: int) -> List[int]:
    """Parents of one 21-joint hand block starting at `start`; the hand wrist hangs from `elbow`."""
    parents = [elbow]
    for finger in range(5):
        base = start + 1 + 4 * finger
        parents += [start, base, base + 1, base + 2]
    return parents


def _names() -> Tuple[str, ...]:
    return (
        BODY_JOINTS
        + tuple(f"left_hand_{n}" for n in HAND_JOINTS)
        + tuple(f"right_hand_{n}" for n in HAND_JOINTS)
    )


def _parents() -> Tuple[int, ...]:
    return tuple(
        list(BODY_PARENTS)
        + _hand_parents(LEFT_HAND_START, elbow=6)
        + _hand_parents(RIGHT_HAND_START, elbow=3)
    )


def _hand(start: int) -> Tuple[int, ...]:
    return tuple(range(start, start + 21))


def _hand_split(start: int) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """Radial side (wrist, thumb, index: 9 joints) and ulnar side (middle, ring, pinky: 12 joints)."""
    return tuple(range(start, start + 9)), tuple(range(start + 9, start + 21))


@register_skeleton("pt50")
def pt50_skeleton() -> SkeletonSpec:
    """The Progressive Transformers 50-joint skeleton (positions, 150 features, 25 fps, y down)."""
    names = _names()
    parents = _parents()
    left_hand, right_hand = _hand(LEFT_HAND_START), _hand(RIGHT_HAND_START)
    l_radial, l_ulnar = _hand_split(LEFT_HAND_START)
    r_radial, r_ulnar = _hand_split(RIGHT_HAND_START)
    # Pooling groups (Sign-SALD atomic joints). With only nose and neck on the midline, a symmetric
    # partition has one central group plus k groups per side: 5 = 1 + 2*2, 7 = 1 + 2*3, 9 = 1 + 2*4.
    pooling = {
        5: ((0, 1), (5, 6, 7), (2, 3, 4), left_hand, right_hand),
        7: ((0, 1), (5,), (2,), (6, 7), (3, 4), left_hand, right_hand),
        9: ((0, 1), (5,), (2,), (6, 7), (3, 4), l_radial, r_radial, l_ulnar, r_ulnar),
    }
    atomic = {
        5: ("head_neck", "left_arm", "right_arm", "left_hand", "right_hand"),
        7: ("head_neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_hand", "right_hand"),
        9: (
            "head_neck", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
            "left_hand_radial", "right_hand_radial", "left_hand_ulnar", "right_hand_ulnar",
        ),
    }
    parts = {"body": tuple(range(8)), "left_hand": left_hand, "right_hand": right_hand}
    return SkeletonSpec(
        name="pt50",
        joint_names=names,
        parents=parents,
        joint_dims=(3,) * NUM_JOINTS,
        parts=parts,
        pooling_groups=pooling,
        atomic_joint_names=atomic,
        position_joint_names=names,
        position_parents=parents,
        position_parts=dict(parts),
        root_index=1,  # neck: PT's data are centred on it
        wrist_indices=(LEFT_HAND_START, RIGHT_HAND_START),  # hand-block wrists, the roots of the hand trees
        fps=25.0,  # PHOENIX-2014T video rate; PT plots at 25 fps
        feature_kind="position",
        y_down=True,
    )

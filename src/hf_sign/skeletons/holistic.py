"""`holistic`: MediaPipe Holistic (as stored by pose-format) reduced to upper body + hands (+ a face subset).

The features *are* the positions: `x, y, z` per joint, in pose-format's units (pixels of the source
frame for `x`/`y`; `z` on the same pixel scale with an arbitrary origin), image axes (y grows
downwards, hence `y_down=True`). Nothing is normalised here; that is `PoseNormalizer`'s job.

Joint table (feature view == position view). Each joint names the pose-format component and point
it is read from (`hf_sign.data.pose_io.pose_to_holistic`); `neck` is the only derived joint (the
midpoint of the two shoulders, as in OpenPose BODY_25), added so that the body forms one tree with
a stable root between the shoulders.

| index | joints | source |
|---|---|---|
| 0 | neck | midpoint of POSE_LANDMARKS LEFT/RIGHT_SHOULDER |
| 1..13 | nose, left/right eye, left/right ear, shoulders, elbows, wrists, hips | POSE_LANDMARKS |
| 14..34 | left hand, 21 joints in MediaPipe hand order (wrist, thumb_cmc ... pinky_tip) | LEFT_HAND_LANDMARKS |
| 35..55 | right hand, same order | RIGHT_HAND_LANDMARKS |
| 56..71 | face subset: brows (3 points each), upper/lower eyelids, nose tip, mouth corners, inner lips, chin | (*) |

(*) FACE_LANDMARKS, by MediaPipe face-mesh id.

"Left" and "right" are the signer's own sides (MediaPipe's convention). Legs are dropped (sign
language framing rarely shows them). The registered default `"holistic"` includes the 16 face points
(72 joints, 216 features) because brows, eyelids and mouth carry grammar (questions, negation,
mouthing); `"holistic_noface"` (56 joints, 168 features) is the same skeleton without them.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from .spec import SkeletonSpec, register_skeleton

POSE = "POSE_LANDMARKS"
FACE = "FACE_LANDMARKS"
LEFT_HAND = "LEFT_HAND_LANDMARKS"
RIGHT_HAND = "RIGHT_HAND_LANDMARKS"

# MediaPipe hand landmark names (pose-format point names), in MediaPipe order, and each one's parent
# inside the hand (-1: the hand wrist, attached to the body's pose wrist).
HAND_POINTS: Tuple[str, ...] = (
    "WRIST",
    "THUMB_CMC", "THUMB_MCP", "THUMB_IP", "THUMB_TIP",
    "INDEX_FINGER_MCP", "INDEX_FINGER_PIP", "INDEX_FINGER_DIP", "INDEX_FINGER_TIP",
    "MIDDLE_FINGER_MCP", "MIDDLE_FINGER_PIP", "MIDDLE_FINGER_DIP", "MIDDLE_FINGER_TIP",
    "RING_FINGER_MCP", "RING_FINGER_PIP", "RING_FINGER_DIP", "RING_FINGER_TIP",
    "PINKY_MCP", "PINKY_PIP", "PINKY_DIP", "PINKY_TIP",
)
_HAND_PARENTS = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)

# (joint name, component, point name, parent joint name); `None` component = derived joint.
_BODY: Tuple[Tuple[str, str | None, str, str | None], ...] = (
    ("neck", None, "LEFT_SHOULDER+RIGHT_SHOULDER", None),
    ("nose", POSE, "NOSE", "neck"),
    ("left_eye", POSE, "LEFT_EYE", "nose"),
    ("right_eye", POSE, "RIGHT_EYE", "nose"),
    ("left_ear", POSE, "LEFT_EAR", "left_eye"),
    ("right_ear", POSE, "RIGHT_EAR", "right_eye"),
    ("left_shoulder", POSE, "LEFT_SHOULDER", "neck"),
    ("right_shoulder", POSE, "RIGHT_SHOULDER", "neck"),
    ("left_elbow", POSE, "LEFT_ELBOW", "left_shoulder"),
    ("right_elbow", POSE, "RIGHT_ELBOW", "right_shoulder"),
    ("left_wrist", POSE, "LEFT_WRIST", "left_elbow"),
    ("right_wrist", POSE, "RIGHT_WRIST", "right_elbow"),
    ("left_hip", POSE, "LEFT_HIP", "left_shoulder"),
    ("right_hip", POSE, "RIGHT_HIP", "right_shoulder"),
)

# Face-mesh subset (MediaPipe face mesh ids; pose-format names face points by their id). The tree is
# chosen so that drawing its bones gives brow lines, eye openings and the mouth opening.
_FACE: Tuple[Tuple[str, str | None, str, str | None], ...] = (
    ("face_nose_tip", FACE, "1", "nose"),
    ("right_brow_inner", FACE, "107", "face_nose_tip"),
    ("right_brow_mid", FACE, "105", "right_brow_inner"),
    ("right_brow_outer", FACE, "70", "right_brow_mid"),
    ("left_brow_inner", FACE, "336", "face_nose_tip"),
    ("left_brow_mid", FACE, "334", "left_brow_inner"),
    ("left_brow_outer", FACE, "300", "left_brow_mid"),
    ("right_eye_upper", FACE, "159", "right_eye"),
    ("right_eye_lower", FACE, "145", "right_eye_upper"),
    ("left_eye_upper", FACE, "386", "left_eye"),
    ("left_eye_lower", FACE, "374", "left_eye_upper"),
    ("upper_lip", FACE, "13", "face_nose_tip"),
    ("lower_lip", FACE, "14", "upper_lip"),
    ("mouth_right", FACE, "61", "upper_lip"),
    ("mouth_left", FACE, "291", "upper_lip"),
    ("chin", FACE, "152", "lower_lip"),
)


def holistic_joint_table(face: bool = True) -> List[Tuple[str, str | None, str, str | None]]:
    """Rows `(joint_name, component, point_name, parent_name)` in feature order.

    `component` is `None` for the derived `neck` (midpoint of the shoulders). Shared by the spec and
    by `hf_sign.data.pose_io`, so the reader and the skeleton can never disagree on the order.

    Args:
        face (`bool`, defaults to `True`): include the 16-point face subset.
    """
    rows = list(_BODY)
    for side, component, wrist in (("left", LEFT_HAND, "left_wrist"), ("right", RIGHT_HAND, "right_wrist")):
        for point, parent in zip(HAND_POINTS, _HAND_PARENTS):
            name = f"{side}_hand_{point.lower()}"
            parent_name = wrist if parent < 0 else f"{side}_hand_{HAND_POINTS[parent].lower()}"
            rows.append((name, component, point, parent_name))
    if face:
        rows.extend(_FACE)
    return rows


def holistic_spec(face: bool = True) -> SkeletonSpec:
    """Build the holistic `SkeletonSpec`.

    Args:
        face (`bool`, defaults to `True`): include the face subset (`"holistic"`); `False` gives
            `"holistic_noface"`.
    """
    rows = holistic_joint_table(face)
    names = tuple(r[0] for r in rows)
    index = {n: i for i, n in enumerate(names)}
    parents = tuple(-1 if r[3] is None else index[r[3]] for r in rows)

    body = tuple(range(len(_BODY)))
    left_hand = tuple(i for i, n in enumerate(names) if n.startswith("left_hand_"))
    right_hand = tuple(i for i, n in enumerate(names) if n.startswith("right_hand_"))
    face_idx = tuple(range(len(_BODY) + 2 * len(HAND_POINTS), len(names)))
    parts = {"body": body, "left_hand": left_hand, "right_hand": right_hand, "face": face_idx}

    j = index.__getitem__
    neck, hips = (j("neck"),), (j("left_hip"), j("right_hip"))
    head = tuple(j(n) for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")) + face_idx
    l_sh, r_sh, l_el, r_el = j("left_shoulder"), j("right_shoulder"), j("left_elbow"), j("right_elbow")
    l_wr, r_wr = j("left_wrist"), j("right_wrist")
    # Sign-SALD atomic joints, mirroring smplx133's groups: the body's own wrist joins its hand (7, 5)
    # or its elbow (9, where the hands are groups of their own). "spine" is the lower trunk (hips).
    pooling_groups: Dict[int, Tuple[Tuple[int, ...], ...]] = {
        5: (neck + hips + head, (l_sh, l_el), (r_sh, r_el), (l_wr,) + left_hand, (r_wr,) + right_hand),
        7: (neck, hips, head, (l_sh, l_el), (r_sh, r_el), (l_wr,) + left_hand, (r_wr,) + right_hand),
        9: (neck, hips, head, (l_sh,), (r_sh,), (l_el, l_wr), (r_el, r_wr), left_hand, right_hand),
    }
    atomic_joint_names = {
        5: ("trunk_head", "left_arm", "right_arm", "left_hand", "right_hand"),
        7: ("root", "spine", "head", "left_shoulder", "right_shoulder", "left_hand", "right_hand"),
        9: ("root", "spine", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
            "left_hand", "right_hand"),
    }
    return SkeletonSpec(
        name="holistic" if face else "holistic_noface",
        joint_names=names,
        parents=parents,
        joint_dims=(3,) * len(names),
        parts=parts,
        pooling_groups=pooling_groups,
        atomic_joint_names=atomic_joint_names,
        position_joint_names=names,
        position_parents=parents,
        position_parts=dict(parts),
        root_index=j("neck"),
        wrist_indices=(j("left_hand_wrist"), j("right_hand_wrist")),
        fps=25.0,
        feature_kind="position",
        y_down=True,
    )


@register_skeleton("holistic")
def _holistic() -> SkeletonSpec:
    return holistic_spec(face=True)


@register_skeleton("holistic_noface")
def _holistic_noface() -> SkeletonSpec:
    return holistic_spec(face=False)

"""SynthSign kinematics: from hand-space control channels to `smplx133` axis-angle features.

A SynthSign pose is first described by *control channels* (one row per frame, `CHANNELS` layout), in a
canonical right-handed signer frame (the dominant hand is the right one, on the body's -x side):

| channels | meaning |
|---|---|
| `dom_pos`, `nd_pos` | dominant / non-dominant wrist target (metres; SMPL-X axes: +x body's left, +y up, +z forward) |
| `dom_ori`, `nd_ori` | forearm twist, wrist flexion (towards the palm), wrist deviation (towards the thumb), radians |
| `dom_hand`, `nd_hand` | 15 finger joints x axis-angle, written for a *right* hand (the left hand gets the mirror) |
| `head` | head rotation (axis-angle, shared 40/60 between the neck and head joints) |
| `jaw` | jaw opening (radians about +x) |
| `expr` | 10 expression coefficients (SynthSign convention: 0 brow raise, 1 brow furrow, 2 smile, 3 mouth open) |

`channels_to_features` solves a two-bone inverse kinematics per arm (shoulder -> elbow -> wrist, with the
elbow swivelling down and out), turns the orientation channels into wrist rotations, and assembles the
133-d vector. Interpolating channels (positions, not joint angles) makes transitions move the hands along
smooth paths in space, which is what co-articulation looks like. Body sizes come from the project's proxy
body (`hf_sign.skeletons.smplx_proxy`), so the FK of `smplx133` puts the wrists where the channels say.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from ..skeletons.smplx_proxy import PROXY_REST_JOINTS, SMPLX_JOINT_NAMES

# ------------------------------------------------------------------------------------- channel layout
CHANNELS: Dict[str, slice] = {
    "dom_pos": slice(0, 3), "nd_pos": slice(3, 6), "dom_ori": slice(6, 9), "nd_ori": slice(9, 12),
    "dom_hand": slice(12, 57), "nd_hand": slice(57, 102), "head": slice(102, 105), "jaw": slice(105, 106),
    "expr": slice(106, 116),
}
NUM_CHANNELS = 116
FEATURE_DIM = 133

# ------------------------------------------------------------------------------------- body constants
_J = {n: np.asarray(PROXY_REST_JOINTS[i], dtype=np.float64) for i, n in enumerate(SMPLX_JOINT_NAMES)}
SHOULDER_R = _J["right_shoulder"]
UPPER_ARM = float(np.linalg.norm(_J["right_elbow"] - _J["right_shoulder"]))
FOREARM = float(np.linalg.norm(_J["right_wrist"] - _J["right_elbow"]))
_R_UPPER = (_J["right_elbow"] - SHOULDER_R) / UPPER_ARM  # rest (T-pose) bone directions
_R_FORE = (_J["right_wrist"] - _J["right_elbow"]) / FOREARM
_H_REST = np.cross(_R_UPPER, np.array([0.0, 0.0, 1.0]))  # elbow hinge axis at rest: flexing moves the forearm forward
_H_REST /= np.linalg.norm(_H_REST)
_F_REST = np.stack([_R_UPPER, _H_REST, np.cross(_R_UPPER, _H_REST)], -1)  # columns: an orthonormal rest frame
_POLE = np.array([-0.5, -1.0, -0.75]) / np.linalg.norm([-0.5, -1.0, -0.75])  # elbow points down, out, back
HEAD = _J["head"]
PELVIS = _J["pelvis"]

# Wrist target anchors for a right-handed signer (x < 0 is the dominant side). Wrist, not fingertip,
# positions: a hand touching the chin has its wrist ~12 cm below and ~10 cm in front of it, which keeps the
# elbow low, as in natural signing.
ANCHORS: Dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.float64) for k, v in {
    "neutral": (-0.10, -0.06, 0.27),
    "high": (-0.10, 0.09, 0.28),
    "low": (-0.08, -0.17, 0.25),
    "chest": (-0.07, -0.02, 0.20),
    "stomach": (-0.06, -0.17, 0.21),
    "chin": (-0.05, 0.07, 0.21),
    "mouth": (-0.04, 0.11, 0.22),
    "forehead": (-0.07, 0.20, 0.21),
    "cheek": (-0.12, 0.12, 0.20),
    "temple": (-0.15, 0.18, 0.18),
    "shoulder": (0.07, 0.03, 0.17),
    "side": (-0.28, -0.06, 0.21),
    "cross": (0.07, -0.05, 0.27),
}.items()}
BASE_ANCHOR = np.array([0.07, -0.07, 0.27])  # where a passive (base) hand waits, in front of the body
REST_WRIST = np.array([-0.25, -0.385, 0.05])  # arms hanging at the sides, elbows slightly bent
WAIST_HOLD = np.array([0.13, -0.27, 0.16])  # non-dominant wrist held at the waist (some signers)


# ---------------------------------------------------------------------------------------- rotations
def rotvec_to_matrix(rv: np.ndarray) -> np.ndarray:
    """Rodrigues: (..., 3) axis-angle -> (..., 3, 3)."""
    rv = np.asarray(rv, dtype=np.float64)
    t = np.linalg.norm(rv, axis=-1, keepdims=True)
    k = rv / np.maximum(t, 1e-12)
    x, y, z = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(x)
    K = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*rv.shape[:-1], 3, 3)
    s, c = np.sin(t)[..., None], np.cos(t)[..., None]
    return np.eye(3) + s * K + (1.0 - c) * (K @ K)


def matrix_to_rotvec(R: np.ndarray) -> np.ndarray:
    """Inverse of `rotvec_to_matrix` (angle in [0, pi]), stable near 0 and pi."""
    R = np.asarray(R, dtype=np.float64)
    cos = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    sin = np.sin(angle)
    out = v * np.where(sin > 1e-6, angle / np.maximum(2.0 * sin, 1e-12), 0.5)[..., None]
    near_pi = angle > np.pi - 1e-3
    if np.any(near_pi):  # axis from the largest diagonal term of (R + I) / 2
        B = (R[near_pi] + np.eye(3)) / 2.0
        i = np.argmax(np.diagonal(B, axis1=-2, axis2=-1), -1)
        axis = B[np.arange(len(i)), :, i]
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        sign = np.sign(np.sum(axis * v[near_pi], -1, keepdims=True))
        out[near_pi] = axis * np.where(sign == 0, 1.0, sign) * angle[near_pi][:, None]
    return out


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`np.cross` for (..., 3) arrays without its axis bookkeeping (several times faster on small arrays)."""
    a, b = np.broadcast_arrays(a, b)
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1], a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], -1)


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def mirror_rotvec(rv: np.ndarray) -> np.ndarray:
    """Mirror axis-angles across the sagittal plane (x -> -x): keep x, negate y and z."""
    return rv * np.array([1.0, -1.0, -1.0])


def mirror_points(p: np.ndarray) -> np.ndarray:
    return p * np.array([-1.0, 1.0, 1.0])


# ----------------------------------------------------------------------------------------------- IK
def right_arm_ik(wrist: np.ndarray):
    """Two-bone IK of the right arm for wrist targets (T, 3).

    Returns shoulder and elbow axis-angles (T, 3) each and the forearm's global rotation (T, 3, 3).
    Targets out of reach are pulled onto the reachable shell (elbow bent >= ~20 degrees).
    """
    a, b = UPPER_ARM, FOREARM
    v = wrist - SHOULDER_R
    d = np.linalg.norm(v, axis=-1, keepdims=True)
    u = v / np.maximum(d, 1e-9)
    d = np.clip(d, abs(a - b) + 0.12, 0.985 * (a + b))
    cos_alpha = np.clip((a * a + d * d - b * b) / (2 * a * d), -1.0, 1.0)
    pv = _POLE - np.sum(_POLE * u, -1, keepdims=True) * u
    fallback = _cross(u, np.array([0.0, 0.0, 1.0]))  # pole parallel to the arm: bend in the sagittal plane
    pv = np.where(np.linalg.norm(pv, axis=-1, keepdims=True) < 1e-4, fallback, pv)
    pv = _normalize(pv)
    elbow = SHOULDER_R + a * (cos_alpha * u + np.sqrt(1 - cos_alpha ** 2) * pv)
    du = (elbow - SHOULDER_R) / a
    df = _normalize(SHOULDER_R + d * u - elbow)
    n = _normalize(_cross(du, df))
    F = np.stack([du, n, _cross(du, n)], -1)
    G_s = F @ _F_REST.T
    dfl = np.einsum("tji,tj->ti", G_s, df)  # forearm direction in the upper arm's frame
    axis = _cross(np.broadcast_to(_R_FORE, dfl.shape), dfl)
    ang = np.arctan2(np.linalg.norm(axis, axis=-1), dfl @ _R_FORE)
    elbow_rv = _normalize(axis) * ang[:, None]
    R_e = rotvec_to_matrix(elbow_rv)
    return matrix_to_rotvec(G_s), elbow_rv, G_s @ R_e


def wrist_matrix(ori: np.ndarray) -> np.ndarray:
    """Right wrist local rotation from (twist, flexion, deviation): twist about the forearm, then flex (z), dev (y)."""
    z = np.zeros(len(ori))
    tw = rotvec_to_matrix(np.stack([-ori[:, 0], z, z], -1))  # right forearm points along -x
    fl = rotvec_to_matrix(np.stack([z, z, ori[:, 1]], -1))
    dv = rotvec_to_matrix(np.stack([z, ori[:, 2], z], -1))
    return tw @ fl @ dv


def palm_normal(forearm: np.ndarray, ori: np.ndarray) -> np.ndarray:
    """Global palm normal of the right hand (palms face -y in the rest pose)."""
    return (forearm @ wrist_matrix(ori))[..., :, 1] * -1.0


def solve_twist(wrist_pos: np.ndarray, target_normal: np.ndarray, flex: float = 0.0, limit: float = 1.65) -> float:
    """Forearm twist (radians, within +-`limit`) turning the right palm closest to `target_normal` at `wrist_pos`."""
    _, _, forearm = right_arm_ik(np.asarray(wrist_pos, dtype=np.float64)[None])
    grid = np.linspace(-limit, limit, 67)
    ori = np.stack([grid, np.full_like(grid, flex), np.zeros_like(grid)], -1)
    normals = palm_normal(np.repeat(forearm, len(grid), 0), ori)
    return float(grid[int(np.argmax(normals @ _normalize(np.asarray(target_normal, dtype=np.float64))))])


def channels_to_features(ch: np.ndarray, left_handed: bool = False) -> np.ndarray:
    """Control channels (T, `NUM_CHANNELS`) -> `smplx133` features (T, 133), float32.

    The dominant hand drives the right arm; the non-dominant target is mirrored, solved with the same
    right-arm IK and mirrored back onto the left arm. `left_handed=True` mirrors the whole body.
    """
    ch = np.asarray(ch, dtype=np.float64)
    T = len(ch)
    out = np.zeros((T, FEATURE_DIM), dtype=np.float64)
    sh_r, el_r, fa_r = right_arm_ik(ch[:, CHANNELS["dom_pos"]])
    sh_l, el_l, _ = right_arm_ik(mirror_points(ch[:, CHANNELS["nd_pos"]]))
    out[:, 15:18], out[:, 21:24] = sh_r, el_r
    out[:, 12:15], out[:, 18:21] = mirror_rotvec(sh_l), mirror_rotvec(el_l)
    out[:, 27:30] = matrix_to_rotvec(wrist_matrix(ch[:, CHANNELS["dom_ori"]]))
    out[:, 24:27] = mirror_rotvec(matrix_to_rotvec(wrist_matrix(ch[:, CHANNELS["nd_ori"]])))
    out[:, 75:120] = ch[:, CHANNELS["dom_hand"]]
    out[:, 30:75] = mirror_rotvec(ch[:, CHANNELS["nd_hand"]].reshape(T, 15, 3)).reshape(T, 45)
    head = ch[:, CHANNELS["head"]]
    out[:, 0:3], out[:, 9:12] = 0.4 * head, 0.6 * head  # neck and head share the head movement
    out[:, 120] = ch[:, CHANNELS["jaw"]][:, 0]
    out[:, 123:133] = ch[:, CHANNELS["expr"]]
    if left_handed:
        out = mirror_features(out)
    return out.astype(np.float32)


def mirror_features(f: np.ndarray) -> np.ndarray:
    """Mirror `smplx133` features across the sagittal plane (left and right swap)."""
    f = np.array(f, dtype=np.float64, copy=True)
    rot = f[:, :123].reshape(len(f), 41, 3)
    rot = mirror_rotvec(rot)
    perm = list(range(41))
    for left, right in ((1, 2), (4, 5), (6, 7), (8, 9)):
        perm[left], perm[right] = right, left
    for k in range(15):
        perm[10 + k], perm[25 + k] = 25 + k, 10 + k
    f[:, :123] = rot[:, perm].reshape(len(f), 123)
    return f


# ---------------------------------------------------------------------------------------- handshapes
_CURL_MAX = (1.5, 1.7, 1.2)  # MCP, PIP, DIP flexion at curl 1 (radians)
_FINGERS = ("index", "middle", "pinky", "ring")  # SMPL-X hand order (thumb last)
_SPREAD = {"index": 0.18, "middle": 0.0, "ring": -0.12, "pinky": -0.26}  # + = towards the thumb (right hand)
EXT, FIST = (0.0, 0.0, 0.0), (0.95, 0.95, 0.7)
# Thumb configurations: thumb1 (CMC) axis-angle, then the flexion of thumb2 and thumb3 (about z), for a right
# hand. "side" and "across" were fitted on the proxy hand (thumb tip beside the index / in front of a fist).
THUMBS = {
    "out": ((0.0, 0.2, 0.0), 0.0, 0.0),               # abducted away from the palm (5, L, Y)
    "side": ((-0.025, -0.536, -0.217), 0.1, 0.1),     # alongside the index (B, A)
    "across": ((0.568, -0.833, 0.366), 0.1, 0.1),     # folded over the curled fingers (S, 1, V)
    "oppose": ((0.0, -0.75, 0.15), 0.3, 0.2),         # tip towards the fingertips (O, C, F, flat-O)
    "relaxed": ((0.0, -0.3, -0.05), 0.1, 0.1),
}
# Handshape inventory: per finger (MCP, PIP, DIP) curl fractions, whether fingers spread, thumb configuration.
HANDSHAPES_SPEC = {
    "B": ({f: EXT for f in _FINGERS}, 0.0, "side"),
    "5": ({f: EXT for f in _FINGERS}, 1.0, "out"),
    "A": ({f: FIST for f in _FINGERS}, 0.0, "side"),
    "S": ({f: FIST for f in _FINGERS}, 0.0, "across"),
    "1": ({"index": EXT, "middle": FIST, "ring": FIST, "pinky": FIST}, 0.0, "across"),
    "V": ({"index": EXT, "middle": EXT, "ring": FIST, "pinky": FIST}, 1.0, "across"),
    "W": ({"index": EXT, "middle": EXT, "ring": EXT, "pinky": FIST}, 1.0, "across"),
    "3": ({"index": EXT, "middle": EXT, "ring": FIST, "pinky": FIST}, 1.0, "out"),
    "4": ({f: EXT for f in _FINGERS}, 1.0, "across"),
    "Y": ({"index": FIST, "middle": FIST, "ring": FIST, "pinky": EXT}, 1.0, "out"),
    "L": ({"index": EXT, "middle": FIST, "ring": FIST, "pinky": FIST}, 0.0, "out"),
    "C": ({f: (0.35, 0.45, 0.3) for f in _FINGERS}, 0.0, "oppose"),
    "O": ({f: (0.55, 0.75, 0.5) for f in _FINGERS}, 0.0, "oppose"),
    "flat-O": ({f: (0.85, 0.15, 0.1) for f in _FINGERS}, 0.0, "oppose"),
    "bent-B": ({f: (1.0, 0.0, 0.0) for f in _FINGERS}, 0.0, "side"),
    "claw": ({f: (0.15, 0.9, 0.7) for f in _FINGERS}, 1.0, "out"),
    "X": ({"index": (0.25, 0.95, 0.75), "middle": FIST, "ring": FIST, "pinky": FIST}, 0.0, "across"),
    "I": ({"index": FIST, "middle": FIST, "ring": FIST, "pinky": EXT}, 0.0, "across"),
    "ILY": ({"index": EXT, "middle": FIST, "ring": FIST, "pinky": EXT}, 1.0, "out"),
    "F": ({"index": (0.55, 0.75, 0.5), "middle": EXT, "ring": EXT, "pinky": EXT}, 1.0, "oppose"),
}
RELAXED_SPEC = ({"index": (0.1, 0.15, 0.12), "middle": (0.13, 0.18, 0.12), "ring": (0.16, 0.18, 0.12),
                 "pinky": (0.2, 0.18, 0.12)}, 0.2, "relaxed")


def handshape_pose(spec) -> np.ndarray:
    """(45,) right-hand axis-angles of a handshape spec (finger curl about +z, spread about y)."""
    curls, spread, thumb = spec
    out = np.zeros((15, 3))
    for i, finger in enumerate(_FINGERS):
        for j in range(3):
            out[3 * i + j, 2] = curls[finger][j] * _CURL_MAX[j]
        out[3 * i, 1] = spread * _SPREAD[finger]
    cmc, f2, f3 = THUMBS[thumb]
    out[12] = cmc
    out[13] = (0.0, 0.0, f2)
    out[14] = (0.0, 0.0, f3)
    return out.reshape(45)


HANDSHAPES: Dict[str, np.ndarray] = {k: handshape_pose(v) for k, v in HANDSHAPES_SPEC.items()}
RELAXED_HAND = handshape_pose(RELAXED_SPEC)
for _v in list(HANDSHAPES.values()) + [RELAXED_HAND]:
    _v.setflags(write=False)

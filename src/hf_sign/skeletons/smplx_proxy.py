"""The project's proxy neutral body for SMPL-X, and an smplx-compatible model file built from it.

The licensed SMPL-X model files cannot be shipped or downloaded here, yet the `smplx133` representation
needs forward kinematics (joint positions for metrics and rendering). This module provides a stand-in:

* `PROXY_REST_JOINTS`: rest (zero-pose) positions of the 55 SMPL-X joints of an approximate neutral
  adult (about 1.65 m tall), in metres, SMPL-X axes: +x is the body's left, +y up, +z forward; the rest
  pose is SMPL-X's T-pose (arms along +-x, palms facing down, fingers straight, thumbs pointing forward).
  The pelvis sits at y = -0.35 as in SMPL-X's template, so proxy and real joints share one region of
  space (metrics are root/wrist relative anyway).
* `PROXY_FINGERTIPS`: fingertip offsets, rigidly attached to the distal finger joint (real SMPL-X takes
  tips from mesh vertices, see `smplx.vertex_ids`).

Origin of the numbers: hand-made for hf-sign from textbook anthropometry (Drillis & Contini segment
fractions of stature: upper arm ~0.16 H, forearm ~0.15 H, hand ~0.11 H, biacromial width ~0.22 H) and
typical adult finger phalanx lengths (proximal/middle/distal: index 38/24/22 mm, middle 41/27/24 mm,
ring 38/26/23 mm, little 30/19/21 mm). They are approximate and **are not** derived from the licensed
SMPL-X model; joint positions from the real model differ by a few centimetres.

`write_proxy_smplx_model` writes the proxy body as `SMPLX_NEUTRAL.npz` in the layout `smplx.SMPLX`
reads (10475 vertices so that `smplx`'s fingertip vertex ids are valid). Each joint is regressed exactly
from one vertex placed at the joint, fingertip (and face/foot keypoint) vertices sit at their offsets
and are skinned with weight 1 to one joint, and pose/shape blend shapes are zero: the LBS joints and
tips `smplx` computes from that file equal the project's kinematic chain exactly, which lets the tests
check the project's FK against `smplx` itself, and lets users run code paths that expect a model
directory without the licensed files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Tuple, Union

import numpy as np

# SMPL-X's 55 skeleton joints (smplx.joint_names.JOINT_NAMES[:55]) and kinematic tree.
SMPLX_JOINT_NAMES: Tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
    *[f"{s}_{f}{i}" for s in ("left", "right") for f in ("index", "middle", "pinky", "ring", "thumb")
      for i in (1, 2, 3)],
)
SMPLX_PARENTS: Tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15,
    # left hand: five 3-joint chains hanging from the left wrist (20), SMPL-X order index, middle, pinky, ring, thumb
    20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38,
    # right hand from the right wrist (21)
    21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53,
)
NUM_SMPLX_JOINTS = 55
NUM_SMPLX_VERTICES = 10475  # the real SMPL-X mesh size; smplx's vertex ids index into it
FINGER_NAMES = ("thumb", "index", "middle", "ring", "pinky")  # smplx VertexJointSelector tip order
PROXY_FILE_VERSION = 1  # bump when the proxy numbers change so cached files get rewritten

# --------------------------------------------------------------------------------- proxy body
# Left-side and midline joints (x >= 0); right-side joints mirror x. Metres, SMPL-X axes.
_BODY = {
    "pelvis": (0.000, -0.350, 0.010),
    "left_hip": (0.080, -0.440, 0.000),
    "spine1": (0.000, -0.230, -0.010),
    "left_knee": (0.100, -0.830, 0.010),  # thigh 0.39 m
    "spine2": (0.000, -0.100, 0.000),
    "left_ankle": (0.090, -1.240, -0.030),  # shank 0.41 m
    "spine3": (0.000, -0.040, 0.010),
    "left_foot": (0.110, -1.300, 0.100),  # ball of the foot
    "neck": (0.000, 0.170, -0.020),
    "left_collar": (0.075, 0.080, -0.005),
    "head": (0.000, 0.250, 0.030),  # skull base / atlas
    "left_shoulder": (0.175, 0.110, -0.020),  # biacromial width ~0.35 m
    "left_elbow": (0.445, 0.095, -0.035),  # upper arm 0.27 m
    "left_wrist": (0.695, 0.095, -0.035),  # forearm 0.25 m
    "jaw": (0.000, 0.215, 0.045),
    "left_eye_smplhf": (0.031, 0.300, 0.095),
}
# Left hand relative to the left wrist. Fingers straight along +x, palm facing -y, thumb towards +z:
# (MCP offset from the wrist, then the proximal, middle and distal phalanx vectors; the last one ends at
# the fingertip). Wrist to middle fingertip = 0.186 m, a typical adult hand length.
_FINGERS = {
    "index": ((0.090, -0.006, 0.024), (0.038, 0.0, 0.0), (0.024, 0.0, 0.0), (0.022, -0.003, 0.0)),
    "middle": ((0.094, -0.004, 0.003), (0.041, 0.0, 0.0), (0.027, 0.0, 0.0), (0.024, -0.003, 0.0)),
    "ring": ((0.088, -0.006, -0.017), (0.038, 0.0, 0.0), (0.026, 0.0, 0.0), (0.023, -0.003, 0.0)),
    "pinky": ((0.080, -0.010, -0.035), (0.030, 0.0, 0.0), (0.019, 0.0, 0.0), (0.021, -0.003, 0.0)),
    # thumb1 = CMC (inside the palm near the wrist), thumb2 = MCP, thumb3 = IP; it points forward-out.
    "thumb": ((0.030, -0.018, 0.028), (0.026, -0.008, 0.024), (0.024, -0.004, 0.018), (0.022, -0.004, 0.014)),
}
# Extra keypoints smplx selects from vertices (face and feet), left side / midline, with the joint they
# are skinned to. Only used to make the proxy model file complete; the 54 position joints do not use them.
_KEYPOINTS = {
    "nose": ((0.000, 0.275, 0.125), "head"),
    "leye": ((0.031, 0.300, 0.100), "left_eye_smplhf"),
    "lear": ((0.075, 0.290, 0.010), "head"),
    "LBigToe": ((0.110, -1.320, 0.170), "left_foot"),
    "LSmallToe": ((0.150, -1.320, 0.130), "left_foot"),
    "LHeel": ((0.090, -1.320, -0.060), "left_ankle"),
}


def _mirror_name(name: str) -> str:
    for a, b in (("left", "right"), ("leye", "reye"), ("lear", "rear"), ("LBigToe", "RBigToe"),
                 ("LSmallToe", "RSmallToe"), ("LHeel", "RHeel")):
        if name.startswith(a):
            return b + name[len(a):]
    return name


def _build_rest() -> Tuple[np.ndarray, Dict[str, Tuple[int, np.ndarray]], Dict[str, Tuple[int, np.ndarray]]]:
    idx = {n: i for i, n in enumerate(SMPLX_JOINT_NAMES)}
    mirror = np.array([-1.0, 1.0, 1.0])
    joints = np.zeros((NUM_SMPLX_JOINTS, 3), dtype=np.float64)
    for name, xyz in _BODY.items():
        joints[idx[name]] = xyz
        joints[idx[_mirror_name(name)]] = np.asarray(xyz) * mirror
    tips: Dict[str, Tuple[int, np.ndarray]] = {}
    for side, sign in (("left", mirror ** 0), ("right", mirror)):
        wrist = joints[idx[f"{side}_wrist"]]
        for finger, (mcp, *segments) in _FINGERS.items():
            p = wrist + np.asarray(mcp) * sign
            joints[idx[f"{side}_{finger}1"]] = p
            for k, seg in enumerate(segments):
                p = p + np.asarray(seg) * sign
                if k < 2:
                    joints[idx[f"{side}_{finger}{k + 2}"]] = p
            tips[f"{side[0]}{finger}"] = (idx[f"{side}_{finger}3"], p)  # smplx vertex id key, e.g. 'lindex'
    keypoints: Dict[str, Tuple[int, np.ndarray]] = {}
    for name, (xyz, joint) in _KEYPOINTS.items():
        keypoints[name] = (idx[joint], np.asarray(xyz, dtype=np.float64))
        keypoints[_mirror_name(name)] = (idx[_mirror_name(joint)], np.asarray(xyz) * mirror)
    return joints, tips, keypoints


PROXY_REST_JOINTS, PROXY_FINGERTIPS, _PROXY_KEYPOINTS = _build_rest()
PROXY_REST_JOINTS.setflags(write=False)
# Documented views: PROXY_REST_JOINTS (55, 3); PROXY_FINGERTIPS maps smplx vertex-id keys ('lthumb', ...,
# 'rpinky') to (distal joint index, rest tip position).


# ------------------------------------------------------------------------------ model file writer
def _proxy_model_arrays() -> Dict[str, np.ndarray]:
    """All arrays of the proxy `SMPLX_NEUTRAL.npz` (see `write_proxy_smplx_model`)."""
    from smplx.vertex_ids import vertex_ids as smplx_vertex_ids  # the tip/keypoint vertex ids smplx selects

    vids = smplx_vertex_ids["smplx"]
    V, J = NUM_SMPLX_VERTICES, NUM_SMPLX_JOINTS
    joint_vertex = np.arange(100, 100 + J)  # a block free of smplx's keypoint vertex ids (they include 6)
    special = {int(vids[k]): v for k, v in {**PROXY_FINGERTIPS, **_PROXY_KEYPOINTS}.items()}
    if set(special) & set(joint_vertex.tolist()):
        raise RuntimeError("smplx keypoint vertex ids collide with the proxy joint vertices.")

    # Filler vertices: vertex k sits on joint k % 55 and moves rigidly with it, so the mesh is a
    # harmless cloud at the joints (it is never meant to be rendered as a surface).
    owner = np.arange(V) % J
    owner[joint_vertex] = np.arange(J)
    v_template = PROXY_REST_JOINTS[owner].copy()
    for vid, (joint, pos) in special.items():
        owner[vid] = joint
        v_template[vid] = pos
    weights = np.zeros((V, J), dtype=np.float32)
    weights[np.arange(V), owner] = 1.0
    j_regressor = np.zeros((J, V), dtype=np.float32)
    j_regressor[np.arange(J), joint_vertex] = 1.0  # each joint = exactly its own vertex

    # Faces: one degenerate triangle per bone (parent vertex, child vertex, child vertex), i.e. a stick
    # figure in any mesh viewer; face 0 is the head->jaw bone, used by the static landmarks below.
    bones = [(SMPLX_PARENTS[22], 22)] + [(p, c) for c, p in enumerate(SMPLX_PARENTS) if p >= 0 and c != 22]
    faces = np.array([[joint_vertex[p], joint_vertex[c], joint_vertex[c]] for p, c in bones], dtype=np.int64)
    bary = np.zeros((51, 3), dtype=np.float32)
    bary[:, 0] = 1.0  # 51 static face landmarks, all at the head joint (the proxy has no face surface)
    dyn_bary = np.zeros((79, 17, 3), dtype=np.float32)
    dyn_bary[..., 0] = 1.0
    return {
        "v_template": v_template.astype(np.float32),
        "f": faces,
        "J_regressor": j_regressor,
        "kintree_table": np.stack([np.array(SMPLX_PARENTS, dtype=np.int64) % (2**32), np.arange(J)]).astype(np.int64),
        "weights": weights,
        # smplx reads posedirs as (V, 3, 486) and shapedirs as (V, 3, 10 shape + 10 expression); all zero so
        # LBS is a pure kinematic chain. float16 zeros keep the file small; smplx casts to its dtype.
        "posedirs": np.zeros((V, 3, 9 * (J - 1)), dtype=np.float16),
        "shapedirs": np.zeros((V, 3, 20), dtype=np.float16),
        "hands_componentsl": np.eye(45, dtype=np.float32),
        "hands_componentsr": np.eye(45, dtype=np.float32),
        "hands_meanl": np.zeros(45, dtype=np.float32),
        "hands_meanr": np.zeros(45, dtype=np.float32),
        "lmk_faces_idx": np.zeros(51, dtype=np.int64),
        "lmk_bary_coords": bary,
        "dynamic_lmk_faces_idx": np.zeros((79, 17), dtype=np.int64),
        "dynamic_lmk_bary_coords": dyn_bary,
        "joint2num": np.array(list(SMPLX_JOINT_NAMES)),
        "hf_sign_proxy_version": np.array(PROXY_FILE_VERSION),
    }


def write_proxy_smplx_model(out_dir: Union[str, os.PathLike], overwrite: bool = False) -> Path:
    """Write the proxy body as an smplx-compatible `out_dir/smplx/SMPLX_NEUTRAL.npz`.

    The layout is the one `smplx.create(model_path=out_dir, model_type="smplx")` expects; the
    `out_dir/smplx` folder also works as `smplx.SMPLX(model_path=...)` and as `model_dir` /
    `HF_SIGN_SMPLX_DIR` for `smplx133_to_joints`. The file is generated, never committed (about 37 MB,
    written in well under a second). An existing file written by the same proxy version is reused.

    Note: `smplx` prints a one-line warning when loading it (the proxy has 10 shape and 10 expression
    components, like SMPL-X v1.0); all of them are zero.

    Args:
        out_dir (`str` or `os.PathLike`): root folder; created if needed.
        overwrite (`bool`, *optional*, defaults to `False`): rewrite the file even if an up-to-date one exists.

    Returns:
        `pathlib.Path`: path of the written `SMPLX_NEUTRAL.npz`.
    """
    path = Path(out_dir) / "smplx" / "SMPLX_NEUTRAL.npz"
    if path.is_file() and not overwrite:
        try:
            with np.load(path) as existing:
                if int(existing["hf_sign_proxy_version"]) == PROXY_FILE_VERSION:
                    return path
        except Exception:  # unreadable or foreign file: regenerate it
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **_proxy_model_arrays())  # uncompressed: fast to write and to load
    os.replace(tmp, path)  # atomic, so concurrent readers never see a half-written file
    return path

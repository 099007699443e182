"""The `smplx133` skeleton (SOKE's 133-d SMPL-X layout) and its forward kinematics.

Feature layout per frame (axis-angle, radians): upper-body SMPL-X joints 12-21 (neck, collars, head,
shoulders, elbows, wrists) `[0:30]` (= `body_pose[33:63]`), left hand `[30:75]`, right hand `[75:120]`
(15 joints each, SMPL-X order index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3), jaw `[120:123]`,
expression `[123:133]`. Root, lower body, spine and shape are not part of the feature and are zero.

Positions come from forward kinematics (`smplx133_to_joints`): through `smplx.SMPLX` when a licensed
model directory is given (`model_dir` or the `HF_SIGN_SMPLX_DIR` environment variable), otherwise through
the project's proxy neutral body (`hf_sign.skeletons.smplx_proxy`) with a vectorised torch kinematic chain.
The 54 position joints are pelvis, spine1-3, neck, collars, head, shoulders, elbows, then 21 joints per hand
in MediaPipe order (wrist, thumb cmc/mcp/ip/tip, index mcp/pip/dip/tip, middle, ring, pinky).

Axis conventions (SMPL-X: +x = body's left, +y up, +z forward). Every joint rotation is expressed in
the rest (T-pose) frame: arms along +-x, palms down (-y), fingers straight, thumbs forward. A pose for
the right side is the mirror of the left one: keep x, negate the y and z components. Checked on the proxy
body in tests/skeletons/test_smplx133.py; the real SMPL-X uses the same joint frames (rest-pose world
axes) and rest pose, so the signs carry over (its fingers are only slightly angled):

* Shoulder, lower the arm: about z; left `(0, 0, -a)`, right `(0, 0, +a)`; `a = pi/2` hangs it straight
  down (palm then faces the thigh). Swing the arm forward: about y; left `-b`, right `+b`.
* Elbow, flex the forearm forward (towards +z, arm lowered or not): about y; left `(0, -c, 0)`,
  right `(0, +c, 0)`. Forearm twist (pronation/supination): about x, same sign on both sides.
* Wrist, bend the hand towards the palm: about z (left `-`, right `+`, as the fingers); towards the
  thumb side: about y (left `-`, right `+`).
* Fingers (index, middle, ring, pinky joints 1-3), curl towards the palm: about z; left `-d`, right `+d`.
  Spread: about y.
* Thumb, swing across the palm towards the little finger: about y; left `+e`, right `-e`; flex it with
  z, same signs as the fingers.
* Example: hands in front of the chest: shoulder `(0, -0.5, -1.2)`, elbow `(0, -2.0, 0)` (left; right
  `(0, 0.5, 1.2)`, `(0, 2.0, 0)`) puts the wrists ~0.25 m in front of the spine at chest height.

`rest_pose_features()` gives a natural neutral signing pose (arms down at the sides, elbows slightly bent,
relaxed hands); `pose_features(...)` builds a 133-vector from named joint rotations.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .smplx_proxy import FINGER_NAMES, PROXY_FINGERTIPS, PROXY_REST_JOINTS, SMPLX_JOINT_NAMES, SMPLX_PARENTS
from .spec import SkeletonSpec, register_skeleton

FEATURE_DIM = 133
_HAND = [f"{f}{i}" for f in ("index", "middle", "pinky", "ring", "thumb") for i in (1, 2, 3)]  # SMPL-X order
FEATURE_JOINT_NAMES: Tuple[str, ...] = (
    "neck", "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist",
    *[f"left_{n}" for n in _HAND], *[f"right_{n}" for n in _HAND], "jaw", "expression",
)
# SMPL-X joint index of each rotational feature joint 0..40 (expression has none).
_FEATURE_TO_SMPLX = tuple(range(12, 22)) + tuple(range(25, 55)) + (22,)

_MP_FINGERS = ("thumb", "index", "middle", "ring", "pinky")  # MediaPipe order
_MP_SUFFIX = {"thumb": ("cmc", "mcp", "ip", "tip")}
POSITION_JOINT_NAMES: Tuple[str, ...] = (
    "pelvis", "spine1", "spine2", "spine3", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    *[f"{side}_{n}" for side in ("left", "right") for n in ["wrist"] + [
        f"{f}_{s}" for f in _MP_FINGERS for s in _MP_SUFFIX.get(f, ("mcp", "pip", "dip", "tip"))]],
)


def _position_source() -> Tuple[Union[int, str], ...]:
    """SMPL-X joint of each position joint; fingertips carry the smplx vertex-id key instead ('lindex')."""
    src = [0, 3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19]
    for side, wrist in (("left", 20), ("right", 21)):
        src.append(wrist)
        for f in _MP_FINGERS:  # SMPL-X finger joints 1-3 are the MediaPipe mcp/pip/dip (cmc/mcp/ip for the thumb)
            src += [SMPLX_JOINT_NAMES.index(f"{side}_{f}{i}") for i in (1, 2, 3)] + [f"{side[0]}{f}"]
    return tuple(src)


_POSITION_SOURCE = _position_source()


def _position_parents() -> Tuple[int, ...]:
    parents = [-1, 0, 1, 2, 3, 3, 3, 4, 5, 6, 8, 9]  # collars hang from spine3 as in SMPL-X
    for wrist, elbow in ((12, 10), (33, 11)):
        parents.append(elbow)
        for f in range(5):  # four joints per finger, the first attached to the wrist
            base = wrist + 1 + 4 * f
            parents += [wrist, base, base + 1, base + 2]
    return tuple(parents)


POSITION_PARENTS = _position_parents()


@register_skeleton("smplx133")
def smplx133_spec() -> SkeletonSpec:
    """`SkeletonSpec` of the 133-d SMPL-X layout; `to_positions` runs `smplx133_to_joints`."""
    L = tuple(range(10, 25))
    R = tuple(range(25, 40))
    parents = [-1, 0, 0, 0, 1, 2, 4, 5, 6, 7]
    for wrist in (8, 9):
        for _ in range(5):  # finger1 -> wrist, finger2 -> finger1, finger3 -> finger2
            base = len(parents)
            parents += [wrist, base, base + 1]
    parents += [3, 40]  # jaw -> head, expression -> jaw
    return SkeletonSpec(
        name="smplx133",
        joint_names=FEATURE_JOINT_NAMES,
        parents=tuple(parents),
        joint_dims=(3,) * 41 + (10,),
        parts={"body": tuple(range(10)), "left_hand": L, "right_hand": R, "face": (40, 41)},
        pooling_groups={
            5: ((0, 1, 2, 3, 40, 41), (4, 6), (5, 7), (8,) + L, (9,) + R),
            7: ((0,), (1, 2), (3, 40, 41), (4, 6), (5, 7), (8,) + L, (9,) + R),
            9: ((0,), (1, 2), (3, 40, 41), (4,), (5,), (6, 8), (7, 9), L, R),
        },
        atomic_joint_names={
            5: ("trunk_head", "left_arm", "right_arm", "left_hand", "right_hand"),
            7: ("root", "spine", "head", "left_shoulder", "right_shoulder", "left_hand", "right_hand"),
            9: ("root", "spine", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                "left_hand", "right_hand"),
        },
        position_joint_names=POSITION_JOINT_NAMES,
        position_parents=POSITION_PARENTS,
        position_parts={"body": tuple(range(12)), "left_hand": tuple(range(12, 33)),
                        "right_hand": tuple(range(33, 54))},
        root_index=0,
        wrist_indices=(12, 33),
        fps=24.0,
        feature_kind="axis_angle",
        y_down=False,
        _to_positions=smplx133_to_joints,
    )


# ------------------------------------------------------------------------------------ rotations
def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, batched: (..., 3) axis-angle -> (..., 3, 3) rotation matrices.

    Uses R = I + a K + b K^2 with K the cross-product matrix of the unnormalised vector, a = sin(t)/t,
    b = (1 - cos t)/t^2 and K^2 = r r^T - t^2 I, written out element-wise (no tiny matmuls, which are slow
    on CPU), with Taylor expansions near t = 0 so values and gradients stay finite at the zero pose.
    """
    rows = _rodrigues_entries(*rotvec.unbind(-1))
    return torch.stack(rows, -1).reshape(*rotvec.shape[:-1], 3, 3)


def _rodrigues_entries(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> List[torch.Tensor]:
    """The nine entries of [`axis_angle_to_matrix`] (row-major), one tensor each, from the three components."""
    t2 = x * x + y * y + z * z
    small = t2 < 1e-8
    t2_safe = torch.where(small, torch.ones_like(t2), t2)  # keeps sqrt's gradient finite in both branches
    t = torch.sqrt(t2_safe)
    a = torch.where(small, 1.0 - t2 / 6.0, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24.0, 2.0 * torch.sin(0.5 * t) ** 2 / t2_safe)  # (1-cos t)/t^2, stable
    bxy, bxz, byz = b * x * y, b * x * z, b * y * z
    ax, ay, az = a * x, a * y, a * z
    bxx, byy, bzz = b * x * x, b * y * y, b * z * z
    return [1.0 - byy - bzz, bxy - az, bxz + ay,
            bxy + az, 1.0 - bxx - bzz, byz - ax,
            bxz - ay, byz + ax, 1.0 - bxx - byy]


# ------------------------------------------------------------------------------ proxy kinematics
class _ProxyChain:
    """Kinematic chain of the proxy body, precomputed once per (dtype, device) as level-wise index tensors.

    Root, lower body and spine never rotate in `smplx133`, so the chain starts at spine3 with an identity
    global rotation; every later level is one batched gather + matmul over all its joints.
    """

    def __init__(self, dtype: torch.dtype, device: torch.device):
        rest = torch.tensor(np.array(PROXY_REST_JOINTS), dtype=dtype, device=device)
        # Joints 12-21 and both hands, parents before children; jaw/eyes are skipped since no position
        # joint depends on them.
        depth = {9: 0}
        for j in [j for j in range(12, 55) if j not in (22, 23, 24)]:
            depth[j] = depth[SMPLX_PARENTS[j]] + 1
        self.levels = []  # per level: (parent slot in previous level, feature index, rest offset)
        order = [9]
        for d in range(1, max(depth.values()) + 1):
            joints = [j for j in sorted(depth) if depth[j] == d]
            prev = [j for j in sorted(depth) if depth[j] == d - 1]
            pslot = torch.tensor([prev.index(SMPLX_PARENTS[j]) for j in joints], device=device)
            feat = torch.tensor([_FEATURE_TO_SMPLX.index(j) for j in joints], device=device)
            offs = rest[joints] - rest[[SMPLX_PARENTS[j] for j in joints]]
            self.levels.append((pslot, feat, offs))
            order += joints
        self.last_level = [j for j in sorted(depth) if depth[j] == max(depth.values())]
        tip_keys = [f"{s}{f}" for s in "lr" for f in FINGER_NAMES]
        self.tip_slot = torch.tensor([self.last_level.index(PROXY_FINGERTIPS[k][0]) for k in tip_keys], device=device)
        self.tip_offset = torch.as_tensor(
            np.stack([PROXY_FINGERTIPS[k][1] - PROXY_REST_JOINTS[PROXY_FINGERTIPS[k][0]] for k in tip_keys]),
            dtype=dtype, device=device)
        self.fixed = rest[[0, 3, 6, 9]]  # pelvis, spine1-3 never move
        # The same tables for the frames-last layout of __call__: local rotations in level order (each level a
        # slice of them), parent slots (None where a level's parents are the previous level in order),
        # offsets with the coordinate first and a frame axis.
        self.level_order = torch.cat([feat for _, feat, _ in self.levels])
        self.levels_soa, start, prev_len = [], 0, 1
        for pslot, feat, offs in self.levels:
            same = pslot.tolist() == list(range(prev_len))
            self.levels_soa.append(((start, start + len(feat)), None if same else pslot, offs.T[:, :, None]))
            start, prev_len = start + len(feat), len(feat)
        self.tip_offset_soa = self.tip_offset.T[:, :, None]
        # Row of each position joint in cat([fixed(4), chain joints in `order` minus spine3, tips(10)]).
        row = {j: 4 + i for i, j in enumerate(order[1:])}
        row.update({0: 0, 3: 1, 6: 2, 9: 3})
        row.update({k: 4 + len(order) - 1 + i for i, k in enumerate(tip_keys)})
        self.gather = torch.tensor([row[s] for s in _POSITION_SOURCE], device=device)

    def __call__(self, rotvecs: torch.Tensor) -> torch.Tensor:
        # Frames on the last (contiguous) axis: every step is an element-wise operation over all frames of
        # a level's joints. The local rotations are computed in level order, so a level's are a plain slice,
        # and parents are gathered only where a level branches. 3 x 3 products are written out as three
        # multiply-adds over the inner index (batched 3 x 3 matmuls on (N, J, 3, 3) arrays are slow on CPU).
        n = rotvecs.shape[0]
        # (40, 3, N) in level order; 2-D transposes and index_select are the fast copies on CPU
        comp = rotvecs.reshape(n, 120).t().contiguous().view(40, 3, n).index_select(0, self.level_order)
        local = torch.stack(_rodrigues_entries(*comp.unbind(1)), 0).reshape(3, 3, 40, n)
        pos, rot = self.fixed[3][:, None, None], None  # spine3: fixed, identity rotation
        out = [self.fixed.T[:, :, None].expand(3, 4, n)]
        for (start, stop), pslot, offs in self.levels_soa:
            loc = local[:, :, start:stop]
            if rot is None:  # children of spine3
                pos, rot = pos + offs, loc
            else:
                prot, ppos = (rot, pos) if pslot is None else (rot.index_select(2, pslot), pos.index_select(1, pslot))
                pos = _rotate(prot, offs, ppos)  # child = parent + R_parent @ rest offset
                rot = _compose(prot, loc)  # R_child = R_parent @ R_local
            out.append(pos.expand(3, -1, n))
        tip_rot, tip_base = rot.index_select(2, self.tip_slot), pos.index_select(1, self.tip_slot)
        out.append(_rotate(tip_rot, self.tip_offset_soa, tip_base))
        joints = torch.cat(out, 1).index_select(1, self.gather)  # (3, 54, N)
        return joints.transpose(0, 1).reshape(3 * len(self.gather), n).t().contiguous().view(n, len(self.gather), 3)


def _rotate(rot: torch.Tensor, vec: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """`base + rot @ vec` for (3, 3, k, N) rotations, (3, k, 1) vectors and (3, k, N) bases."""
    out = torch.addcmul(base, rot[:, 0], vec[0])
    out.addcmul_(rot[:, 1], vec[1])
    return out.addcmul_(rot[:, 2], vec[2])


def _compose(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`a @ b` for two (3, 3, k, N) stacks of rotations."""
    out = a[:, 0, None] * b[None, 0]
    out.addcmul_(a[:, 1, None], b[None, 1])
    return out.addcmul_(a[:, 2, None], b[None, 2])


_CHAINS: Dict[Tuple[torch.dtype, torch.device], _ProxyChain] = {}


def proxy_forward_kinematics(rotvecs: torch.Tensor, chunk_size: int = 8192) -> torch.Tensor:
    """Proxy-body FK on a flat batch: (N, >=120) features -> (N, 54, 3) joints (differentiable).

    Frames go through in chunks of `chunk_size`, which bounds the temporaries (about 1 KiB per frame) and
    keeps them in cache.
    """
    key = (rotvecs.dtype, rotvecs.device)
    if key not in _CHAINS:
        _CHAINS[key] = _ProxyChain(*key)
    chunks = [_CHAINS[key](chunk) for chunk in rotvecs[:, :120].reshape(-1, 40, 3).split(chunk_size)]
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks, 0)


# ------------------------------------------------------------------------------- smplx kinematics
_MODELS: Dict[Tuple[str, torch.dtype, torch.device], object] = {}


def resolve_smplx_model_file(model_dir: Union[str, os.PathLike]) -> Path:
    """Find the neutral SMPL-X model file under `model_dir`.

    Accepts the file itself, a folder holding `SMPLX_NEUTRAL.npz`/`.pkl`, or a `smplx.create` root whose
    `smplx/` subfolder holds it. Raises `ValueError` listing the paths tried.
    """
    root = Path(model_dir)
    if root.is_file():
        return root
    tried = [root / sub / f"SMPLX_NEUTRAL.{ext}" for sub in ("", "smplx") for ext in ("npz", "pkl")]
    for path in tried:
        if path.is_file():
            return path
    raise ValueError(
        f"`model_dir` {str(root)!r} does not contain an SMPL-X neutral model; looked for "
        f"{', '.join(str(p) for p in tried)}. Download SMPLX_NEUTRAL.npz from https://smpl-x.is.tue.mpg.de, "
        "or use `hf_sign.skeletons.write_proxy_smplx_model(dir)` for the project's proxy body."
    )


def _load_smplx(path: Path, dtype: torch.dtype, device: torch.device):
    key = (str(path.resolve()), dtype, device)
    if key not in _MODELS:
        import smplx

        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning for 10-component models
            model = smplx.SMPLX(
                model_path=str(path), gender="neutral", ext=path.suffix[1:], use_pca=False, flat_hand_mean=True,
                num_betas=10, num_expression_coeffs=10, use_face_contour=False, dtype=dtype,
            )
        model = model.to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        # Where the fingertip vertices land among smplx's output joints (55 + selector extras + landmarks).
        extra = model.vertex_joint_selector.extra_joints_idxs.tolist()
        from smplx.vertex_ids import vertex_ids

        tips = {k: 55 + extra.index(vertex_ids["smplx"][k]) for k in PROXY_FINGERTIPS}
        gather = [s if isinstance(s, int) else tips[s] for s in _POSITION_SOURCE]
        model._hf_sign_gather = torch.tensor(gather, device=device)
        _MODELS[key] = model
    return _MODELS[key]


def smplx_forward_kinematics(features: torch.Tensor, model_path: Path, chunk_size: int = 512) -> torch.Tensor:
    """Run `smplx.SMPLX` on a flat batch (N, 133) and pick the 54 position joints: (N, 54, 3).

    Frames go through in chunks because SMPL-X skins all 10475 vertices (memory grows with the batch).
    """
    model = _load_smplx(model_path, features.dtype, features.device)
    outs = []
    for f in features.split(chunk_size):
        n = f.shape[0]
        zeros = f.new_zeros
        body = torch.cat([zeros(n, 33), f[:, :30]], 1)  # body_pose = joints 1..21; the feature holds 12..21
        out = model(
            betas=zeros(n, model.num_betas), global_orient=zeros(n, 3), body_pose=body,
            left_hand_pose=f[:, 30:75], right_hand_pose=f[:, 75:120], jaw_pose=f[:, 120:123],
            expression=f[:, 123:133], leye_pose=zeros(n, 3), reye_pose=zeros(n, 3), transl=zeros(n, 3),
        )
        outs.append(out.joints[:, model._hf_sign_gather])
    return torch.cat(outs, 0)


# ------------------------------------------------------------------------------------- dispatch
def smplx133_to_joints(features, model_dir: Optional[Union[str, os.PathLike]] = None):
    """Forward kinematics of `smplx133` features to the 54 position joints.

    Args:
        features (`np.ndarray` or `torch.Tensor` of shape `(..., num_frames, 133)`): axis-angle features.
            numpy in -> numpy out (same float dtype; other dtypes become float32); torch in -> torch out on the
            same device and dtype, differentiable (usable inside a training loss).
        model_dir (`str` or `os.PathLike`, *optional*): licensed SMPL-X model folder (or file). Defaults to the
            `HF_SIGN_SMPLX_DIR` environment variable; when neither is set the proxy neutral body is used.

    Returns:
        Joints of shape `(..., num_frames, 54, 3)` in metres (`POSITION_JOINT_NAMES` order).
    """
    shape = tuple(getattr(features, "shape", ()))
    if len(shape) < 2 or shape[-1] != FEATURE_DIM:
        raise ValueError(
            f"`features` must have shape (..., num_frames, {FEATURE_DIM}) for skeleton 'smplx133'; got {shape}."
        )
    is_numpy = not torch.is_tensor(features)
    if is_numpy:
        arr = np.asarray(features)
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float32)
        x = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        x = features if features.is_floating_point() else features.float()
    flat = x.reshape(-1, FEATURE_DIM)
    model_dir = model_dir if model_dir is not None else (os.environ.get("HF_SIGN_SMPLX_DIR") or None)
    if model_dir is not None:
        joints = smplx_forward_kinematics(flat, resolve_smplx_model_file(model_dir))
    else:
        joints = proxy_forward_kinematics(flat)
    joints = joints.reshape(*shape[:-1], len(POSITION_JOINT_NAMES), 3)
    return joints.detach().numpy() if is_numpy else joints


# ------------------------------------------------------------------------------- pose helpers
def feature_slice(joint: str) -> slice:
    """Slice of the 133-vector holding feature joint `joint` (e.g. `"left_elbow"`, `"right_index2"`)."""
    if joint not in FEATURE_JOINT_NAMES:
        raise ValueError(f"Unknown smplx133 joint {joint!r}; expected one of {FEATURE_JOINT_NAMES}.")
    i = FEATURE_JOINT_NAMES.index(joint)
    return slice(3 * i, 3 * i + (10 if joint == "expression" else 3))


def pose_features(base: Optional[np.ndarray] = None, **joints: Sequence[float]) -> np.ndarray:
    """Build a 133-vector from named joint rotations, e.g. `pose_features(left_elbow=(0, -1.5, 0))`.

    Args:
        base (`np.ndarray` of shape `(133,)`, *optional*): starting vector (copied); zeros (T-pose) by default.
        **joints: axis-angle (3 numbers) per feature joint name, or 10 coefficients for `expression`.

    Returns:
        `np.ndarray` of shape `(133,)`, float32.
    """
    out = np.zeros(FEATURE_DIM, dtype=np.float32)
    if base is not None:
        out[:] = np.asarray(base, dtype=np.float32).reshape(FEATURE_DIM)
    for name, value in joints.items():
        out[feature_slice(name)] = value
    return out


# Finger curl of a relaxed hand per joint (radians): slightly more distally and towards the little finger.
_RELAXED_CURL = {"index": (0.15, 0.25, 0.15), "middle": (0.2, 0.3, 0.15), "ring": (0.25, 0.3, 0.15),
                 "pinky": (0.3, 0.3, 0.15), "thumb": (0.1, 0.1, 0.1)}


def rest_pose_features() -> np.ndarray:
    """Natural neutral signing pose: arms down at the sides, elbows slightly bent forward, relaxed hands.

    Shoulders are lowered by 1.35 rad about z (the arms hang about 12 degrees away from the body, clear of
    the hips), elbows flexed 0.35 rad forward, and the fingers curled a little (`_RELAXED_CURL`). Lowering
    the arm about z turns the palms (down in the T-pose) towards the thighs, so the wrists stay at zero.
    Returns a fresh `(133,)` float32 vector (`REST_ARMS_DOWN` is a read-only copy).
    """
    kw = {}
    for side, s in (("left", 1.0), ("right", -1.0)):  # s mirrors the y/z components for the right side
        kw[f"{side}_shoulder"] = (0.0, 0.0, -1.35 * s)
        kw[f"{side}_elbow"] = (0.0, -0.35 * s, 0.0)
        for finger, curl in _RELAXED_CURL.items():
            for i, c in enumerate(curl, 1):
                kw[f"{side}_{finger}{i}"] = (0.0, 0.3 * c * s, -c * s) if finger == "thumb" else (0.0, 0.0, -c * s)
    return pose_features(**kw)


REST_ARMS_DOWN = rest_pose_features()
REST_ARMS_DOWN.setflags(write=False)

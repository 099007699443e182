"""Pose metrics of the evaluation harness as plain functions: DTW-JPE and MPJPE.

FID lives in `frechet` and the text-side metrics (back-translation BLEU/ROUGE, SiBLEU, SiCLIP) in
`text_metrics`; all are re-exported here, so `from hf_sign.evaluation.metrics import ...` reaches every
metric. The `evaluate` modules in `metric_modules/` are thin wrappers around these functions.

Conventions shared by DTW-JPE and MPJPE (following SOKE):

* Inputs are 3D joint positions, one `(num_frames, num_joints, 3)` array per sample (2D keypoints with a
  last axis of 2 work too), in the skeleton's position units (metres for `smplx133`). `scale` multiplies
  every distance (e.g. `scale=1000` reports millimetres for metric positions) and `units` names the result.
* Joint groups come from a `SkeletonSpec` (`position_parts["body"|"left_hand"|"right_hand"]`, `root_index`,
  `wrist_indices`) or from explicit index arguments, so any skeleton works.
* Body: every body joint is translated to the root joint of its own frame (`p - p[root]`), so global
  translation does not count. Hands: each hand's joints are translated to that hand's wrist, and "hands"
  averages over the joints of both hands; the anchor joints themselves count (with error 0), as in SOKE.
* Per-frame-pair cost: mean over the group's joints of the Euclidean distance between the translated
  joints. Corpus value: the mean over sample pairs (every sample weighs the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..data.resample import resample_to_length
from ..skeletons.spec import SkeletonSpec, get_skeleton
from .dtw import chunk_pairs, dtw_wavefront
from .frechet import fid, frechet_distance_from_statistics, gaussian_statistics
from .jpe_costs import part_costs
from .text_metrics import back_translation, sibleu, siclip_retrieval

__all__ = [
    "JointGroups",
    "resolve_joint_groups",
    "dtw_jpe",
    "mpjpe",
    "fid",
    "gaussian_statistics",
    "frechet_distance_from_statistics",
    "back_translation",
    "sibleu",
    "siclip_retrieval",
]

ArrayOrTensor = Union[np.ndarray, torch.Tensor]
GROUPS = ("body", "hands", "left_hand", "right_hand")
NORMALIZATIONS = ("path", "reference", "none")
ALIGNMENTS = ("resample", "truncate", "none")


# ------------------------------------------------------------------------------------------ joint groups
@dataclass(frozen=True)
class JointGroups:
    """Position-joint indices and anchors of the groups scored by DTW-JPE and MPJPE.

    Args:
        body (`Tuple[int, ...]`, *optional*): body joints, translated to `root`.
        root (`int`, *optional*): root joint of the body.
        left_hand (`Tuple[int, ...]`, *optional*): left-hand joints, translated to `left_wrist`.
        left_wrist (`int`, *optional*): left wrist joint.
        right_hand (`Tuple[int, ...]`, *optional*): right-hand joints, translated to `right_wrist`.
        right_wrist (`int`, *optional*): right wrist joint.
    """

    body: Optional[Tuple[int, ...]] = None
    root: Optional[int] = None
    left_hand: Optional[Tuple[int, ...]] = None
    left_wrist: Optional[int] = None
    right_hand: Optional[Tuple[int, ...]] = None
    right_wrist: Optional[int] = None

    def parts(self) -> List[Tuple[str, Tuple[int, ...], int]]:
        """`(name, joints, anchor)` for each defined part, body first."""
        out = []
        for name, joints, anchor in (
            ("body", self.body, self.root),
            ("left_hand", self.left_hand, self.left_wrist),
            ("right_hand", self.right_hand, self.right_wrist),
        ):
            if joints:
                out.append((name, joints, anchor))
        return out


def resolve_joint_groups(
    num_joints: int,
    skeleton: Optional[Union[str, SkeletonSpec]] = None,
    *,
    body_joints: Optional[Sequence[int]] = None,
    left_hand_joints: Optional[Sequence[int]] = None,
    right_hand_joints: Optional[Sequence[int]] = None,
    root_index: Optional[int] = None,
    wrist_indices: Optional[Tuple[int, int]] = None,
) -> JointGroups:
    """Joint groups from a skeleton and/or explicit indices (explicit arguments win).

    Args:
        num_joints (`int`): number of joints in the position arrays.
        skeleton (`str` or `SkeletonSpec`, *optional*): registry name (e.g. `"smplx133"`) or spec giving
            `position_parts`, `root_index` and `wrist_indices`; its `num_position_joints` must equal
            `num_joints`.
        body_joints (`Sequence[int]`, *optional*): body joints; needs a root.
        left_hand_joints (`Sequence[int]`, *optional*): left-hand joints; needs `wrist_indices`.
        right_hand_joints (`Sequence[int]`, *optional*): right-hand joints; needs `wrist_indices`.
        root_index (`int`, *optional*): root joint of the body.
        wrist_indices (`Tuple[int, int]`, *optional*): left and right wrist joints.

    Returns:
        [`JointGroups`].
    """
    if isinstance(skeleton, str):
        skeleton = get_skeleton(skeleton)
    if skeleton is not None:
        if not isinstance(skeleton, SkeletonSpec):
            raise ValueError(f"`skeleton` must be a registered name or a SkeletonSpec; got {type(skeleton).__name__}.")
        if skeleton.num_position_joints != num_joints:
            raise ValueError(
                f"`predictions`/`references` have {num_joints} joints but skeleton {skeleton.name!r} has "
                f"{skeleton.num_position_joints} position joints."
            )
        parts = skeleton.position_parts
        body_joints = parts.get("body") if body_joints is None else body_joints
        left_hand_joints = parts.get("left_hand") if left_hand_joints is None else left_hand_joints
        right_hand_joints = parts.get("right_hand") if right_hand_joints is None else right_hand_joints
        root_index = skeleton.root_index if root_index is None else root_index
        wrist_indices = skeleton.wrist_indices if wrist_indices is None else wrist_indices
    if not body_joints and not left_hand_joints and not right_hand_joints:
        raise ValueError(
            "No joints to score: pass `skeleton` (a name such as 'smplx133' or a SkeletonSpec) or explicit "
            "`body_joints`/`left_hand_joints`/`right_hand_joints`."
        )
    if body_joints and root_index is None:
        raise ValueError("`root_index` is required to score `body_joints` (joints are taken relative to the root).")
    if (left_hand_joints or right_hand_joints) and (wrist_indices is None or len(wrist_indices) != 2):
        raise ValueError(
            "`wrist_indices` (left, right) is required to score hand joints (taken relative to the wrist)."
        )

    def check(name, idx):
        if idx is None:
            return None
        idx = tuple(int(i) for i in (idx if isinstance(idx, (list, tuple, np.ndarray)) else [idx]))
        bad = [i for i in idx if not 0 <= i < num_joints]
        if bad:
            raise ValueError(f"`{name}` has indices {bad} outside [0, {num_joints}).")
        return idx

    lw, rw = (None, None) if wrist_indices is None else wrist_indices
    return JointGroups(
        body=check("body_joints", body_joints) or None,
        root=check("root_index", root_index)[0] if body_joints else None,
        left_hand=check("left_hand_joints", left_hand_joints) or None,
        left_wrist=check("wrist_indices", lw)[0] if left_hand_joints else None,
        right_hand=check("right_hand_joints", right_hand_joints) or None,
        right_wrist=check("wrist_indices", rw)[0] if right_hand_joints else None,
    )


# ------------------------------------------------------------------------------------------ validation
def _as_pose_list(poses, field: str) -> List[np.ndarray]:
    """One finite float `(T, J, C)` numpy array per sample; raises a `ValueError` naming `field[i]`."""
    if isinstance(poses, (np.ndarray, torch.Tensor)):
        if poses.ndim != 4:
            raise ValueError(
                f"`{field}` must be a list of (num_frames, num_joints, 3) arrays or one (num_samples, num_frames, "
                f"num_joints, 3) array; got an array of shape {tuple(poses.shape)}."
            )
        poses = list(poses)
    if isinstance(poses, (str, bytes)) or not hasattr(poses, "__len__"):
        raise ValueError(
            f"`{field}` must be a list of (num_frames, num_joints, 3) arrays; got {type(poses).__name__}."
        )
    out = []
    for i, p in enumerate(poses):
        if isinstance(p, torch.Tensor):
            p = p.detach().cpu().numpy()
        try:
            p = np.asarray(p)
        except ValueError as err:  # ragged nested lists
            raise ValueError(
                f"`{field}[{i}]` is ragged; expected a (num_frames, num_joints, 3) array ({err})."
            ) from None
        if p.ndim != 3 or p.shape[-1] not in (2, 3):
            raise ValueError(f"`{field}[{i}]` must have shape (num_frames, num_joints, 3); got {p.shape}.")
        if p.shape[0] < 1 or p.shape[1] < 1:
            raise ValueError(f"`{field}[{i}]` is empty (shape {p.shape}); expected at least one frame and one joint.")
        if not np.issubdtype(p.dtype, np.floating):
            if not np.issubdtype(p.dtype, np.number):
                raise ValueError(f"`{field}[{i}]` must hold numbers; got dtype {p.dtype}.")
            p = p.astype(np.float64)
        if not np.isfinite(p).all():
            t = int(np.nonzero(~np.isfinite(p).reshape(p.shape[0], -1).all(1))[0][0])
            raise ValueError(f"`{field}[{i}]` contains NaN or inf (first at frame {t}).")
        out.append(p)
    return out


def _check_pairs(predictions, references) -> Tuple[List[np.ndarray], List[np.ndarray], int]:
    preds = _as_pose_list(predictions, "predictions")
    refs = _as_pose_list(references, "references")
    if len(preds) != len(refs):
        raise ValueError(
            f"`predictions` has {len(preds)} samples but `references` has {len(refs)}; they must pair up."
        )
    if not preds:
        raise ValueError("`predictions` and `references` are empty; expected at least one pair.")
    j0, c0 = preds[0].shape[1:]
    for field, seqs in (("predictions", preds), ("references", refs)):
        for i, s in enumerate(seqs):
            if s.shape[1:] != (j0, c0):
                raise ValueError(
                    f"`{field}[{i}]` has {s.shape[1]} joints x {s.shape[2]} coordinates but `predictions[0]` has "
                    f"{j0} x {c0}; every sequence must use the same skeleton."
                )
    return preds, refs, j0


def _check_scale(scale: float, units: Optional[str]) -> str:
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError(f"`scale` must be a positive number; got {scale}.")
    if units is not None:
        return units
    return "position units" if scale == 1 else f"position units x {scale:g}"


def _relative(seq: np.ndarray, groups: JointGroups) -> np.ndarray:
    """Concatenate every part's joints translated to the part's anchor: (T, sum of part sizes, C)."""
    return np.concatenate([seq[:, list(j)] - seq[:, [a]] for _, j, a in groups.parts()], axis=1)


def _group_names(groups: JointGroups) -> List[str]:
    names = {name for name, _, _ in groups.parts()}
    if names & {"left_hand", "right_hand"}:
        names.add("hands")
    return [g for g in GROUPS if g in names]


def _group_costs(
    acc: Dict[str, ArrayOrTensor], groups: JointGroups, out: Optional[Dict[str, np.ndarray]] = None
) -> Dict[str, ArrayOrTensor]:
    """Mean joint distance per reported group from per-part sums of joint distances (numpy or torch).

    With `out` (numpy only), each group is written into `out[group]` (any layout and float dtype; the division
    runs in the sums' dtype) instead of new arrays.
    """
    sizes = {name: len(j) for name, j, _ in groups.parts()}
    terms = {name: (acc[name], sizes[name]) for name in sizes}
    hands = [h for h in ("left_hand", "right_hand") if h in sizes]
    if hands:
        terms["hands"] = (sum(acc[h] for h in hands), sum(sizes[h] for h in hands))
    if out is None:
        return {g: terms[g][0] / terms[g][1] for g in GROUPS if g in terms}
    for g in GROUPS:
        if g in terms:
            np.divide(*terms[g], out=out[g])
    return out


# ---------------------------------------------------------------------------------------------- DTW-JPE
def dtw_jpe(
    predictions,
    references,
    skeleton: Optional[Union[str, SkeletonSpec]] = None,
    *,
    body_joints: Optional[Sequence[int]] = None,
    left_hand_joints: Optional[Sequence[int]] = None,
    right_hand_joints: Optional[Sequence[int]] = None,
    root_index: Optional[int] = None,
    wrist_indices: Optional[Tuple[int, int]] = None,
    normalize: str = "path",
    scale: float = 1.0,
    units: Optional[str] = None,
    per_sample: bool = False,
    device: Optional[Union[str, torch.device]] = None,
    max_cells_per_chunk: int = 1 << 21,
) -> Dict[str, Union[float, str, List[float]]]:
    """DTW joint position error (DTW-JPE, as in SOKE), reported for body and hands separately.

    For each pair, with `p_i` the predicted frames and `r_j` the reference frames translated to their
    anchor (root for the body, each wrist for its hand), the cost matrix is
    `C[i, j] = mean_k ||p_i[k] - r_j[k]||` over the group's joints; plain DTW (steps (1,0), (0,1), (1,1), no
    window) finds the monotone alignment with the smallest summed cost and DTW-JPE is that sum. Because
    it is a sum it grows with the sequence lengths; the normalised variant divides it by

    * `normalize="path"` (default): the number of cells on that optimal path, i.e. the mean joint error
      per aligned frame pair, in the positions' units (ties between equally cheap paths are broken
      towards the diagonal, see `hf_sign.evaluation.dtw`);
    * `normalize="reference"`: the number of reference frames `T2`;
    * `normalize="none"`: no normalised keys are returned.

    The distances are exact (batched wavefront DTW); the per-joint distances are computed in the inputs'
    float dtype (float32 stays float32), the DTW sums in float64. Pairs run in chunks of similar lengths
    (`hf_sign.evaluation.dtw.chunk_pairs`); the cost matrices of a chunk come from
    `hf_sign.evaluation.jpe_costs` and all its groups go through one DTW call.

    Args:
        predictions (`List[array]` or `array`): generated sequences, each `(T1_i, J, 3)` (numpy, torch or
            nested lists), or one `(N, T, J, 3)` array.
        references (`List[array]` or `array`): ground-truth sequences, each `(T2_i, J, 3)`, same `J`.
        skeleton (`str` or `SkeletonSpec`, *optional*): where the joint groups come from (see
            [`resolve_joint_groups`]); explicit index arguments override it.
        body_joints, left_hand_joints, right_hand_joints (`Sequence[int]`, *optional*): explicit groups.
        root_index (`int`, *optional*): body root joint.
        wrist_indices (`Tuple[int, int]`, *optional*): left and right wrist joints.
        normalize (`str`, *optional*, defaults to `"path"`): `"path"`, `"reference"` or `"none"` (above).
        scale (`float`, *optional*, defaults to `1.0`): multiplies every distance (1000 for m -> mm).
        units (`str`, *optional*): name of the resulting units, returned under `"units"`.
        per_sample (`bool`, *optional*, defaults to `False`): also return per-pair values (`<key>_per_sample`).
        device (`str` or `torch.device`, *optional*): run the costs and the DTW with torch on this device
            (e.g. `"cuda"`); by default they run with numpy on CPU.
        max_cells_per_chunk (`int`, *optional*, defaults to `2**21`): pairs per chunk are limited so that
            `n * m * pairs` stays below this (peak working memory is about 48 bytes per cell, ~100 MiB, whatever
            the number of pairs).

    Returns:
        `dict`: `dtw_jpe_<group>` (mean over pairs of the path sum) and, unless `normalize="none"`,
        `dtw_jpe_<group>_normalized`, for each group in `body`, `hands`, `left_hand`, `right_hand` that is
        defined; `"units"`; `"normalization"`.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"`normalize` must be one of {NORMALIZATIONS}; got {normalize!r}.")
    unit_name = _check_scale(scale, units)
    preds, refs, num_joints = _check_pairs(predictions, references)
    groups = resolve_joint_groups(
        num_joints, skeleton, body_joints=body_joints, left_hand_joints=left_hand_joints,
        right_hand_joints=right_hand_joints, root_index=root_index, wrist_indices=wrist_indices,
    )
    device = torch.device(device) if device is not None else None
    parts = groups.parts()
    names = _group_names(groups)
    num = len(preds)
    rows = np.array([p.shape[0] for p in preds], dtype=np.int64)
    cols = np.array([r.shape[0] for r in refs], dtype=np.int64)
    sums = {g: np.empty(num) for g in names}
    path_len = {g: np.empty(num) for g in names}
    for sel in chunk_pairs(rows, cols, max_cells_per_chunk):
        chunk_p, chunk_r = [preds[b] for b in sel], [refs[b] for b in sel]
        costs = part_costs(chunk_p, chunk_r, parts, device)
        # Every group of the chunk in one DTW call: time-major float64 (exact sums, contiguous diagonals),
        # groups side by side along the batch axis.
        batch = len(sel)
        if device is None:  # the group means are written straight into that layout
            n, m = costs[parts[0][0]].shape[1:]
            stacked = np.empty((n, m, len(names) * batch))
            into = {g: stacked[:, :, i * batch : (i + 1) * batch] for i, g in enumerate(names)}
            _group_costs({name: c.transpose(1, 2, 0) for name, c in costs.items()}, groups, out=into)
        else:
            group_costs = _group_costs(costs, groups)
            stacked = torch.cat([group_costs[g].permute(1, 2, 0).double() for g in names], 2).contiguous()
            del group_costs
        del costs  # bounds the chunk's peak memory
        out = dtw_wavefront(
            stacked, np.tile(rows[sel], len(names)), np.tile(cols[sel], len(names)),
            return_path_lengths=normalize == "path",
        )
        for i, g in enumerate(names):
            sums[g][sel] = out.distance[i * batch : (i + 1) * batch]
            if normalize == "path":
                path_len[g][sel] = out.path_length[i * batch : (i + 1) * batch]

    result: Dict[str, Union[float, str, List[float]]] = {}
    for g in _group_names(groups):
        total = sums[g] * scale
        result[f"dtw_jpe_{g}"] = float(total.mean())
        if per_sample:
            result[f"dtw_jpe_{g}_per_sample"] = total.tolist()
        if normalize != "none":
            denom = path_len[g] if normalize == "path" else cols.astype(np.float64)
            normed = total / denom
            result[f"dtw_jpe_{g}_normalized"] = float(normed.mean())
            if per_sample:
                result[f"dtw_jpe_{g}_normalized_per_sample"] = normed.tolist()
    result["units"] = unit_name
    result["normalization"] = normalize
    return result


# ------------------------------------------------------------------------------------------------ MPJPE
def _align_lengths(p: np.ndarray, r: np.ndarray, align: str, index: int) -> Tuple[np.ndarray, np.ndarray]:
    if p.shape[0] == r.shape[0]:
        return p, r
    if align == "none":
        raise ValueError(
            f"`predictions[{index}]` has {p.shape[0]} frames but `references[{index}]` has {r.shape[0]}; "
            "align='none' needs equal lengths (use align='resample' or 'truncate')."
        )
    if align == "truncate":
        t = min(p.shape[0], r.shape[0])
        return p[:t], r[:t]
    # Linear resampling of the prediction onto the reference's frame count, first and last frames aligned.
    return resample_to_length(p, r.shape[0]), r


def mpjpe(
    predictions,
    references,
    skeleton: Optional[Union[str, SkeletonSpec]] = None,
    *,
    body_joints: Optional[Sequence[int]] = None,
    left_hand_joints: Optional[Sequence[int]] = None,
    right_hand_joints: Optional[Sequence[int]] = None,
    root_index: Optional[int] = None,
    wrist_indices: Optional[Tuple[int, int]] = None,
    align: str = "resample",
    scale: float = 1.0,
    units: Optional[str] = None,
    per_sample: bool = False,
) -> Dict[str, Union[float, str, List[float]]]:
    """Mean per-joint position error on length-aligned sequences, body and hands separately.

    Joints are translated to their anchor exactly as in [`dtw_jpe`] (root for the body, each wrist for
    its hand). Per pair, MPJPE is the mean over frames and joints of `||p_t[k] - r_t[k]||` after the
    lengths are aligned; the corpus value is the mean over pairs.

    Args:
        predictions (`List[array]` or `array`): generated sequences, each `(T1_i, J, 3)`.
        references (`List[array]` or `array`): ground-truth sequences, each `(T2_i, J, 3)`.
        skeleton, body_joints, left_hand_joints, right_hand_joints, root_index, wrist_indices: joint groups,
            as in [`dtw_jpe`].
        align (`str`, *optional*, defaults to `"resample"`): how lengths are matched when `T1 != T2`:
            `"resample"` linearly interpolates the prediction in time onto `T2` frames (first and last
            frames aligned); `"truncate"` cuts both to `min(T1, T2)`; `"none"` requires equal lengths.
        scale (`float`, *optional*, defaults to `1.0`): multiplies every distance (1000 for m -> mm).
        units (`str`, *optional*): name of the resulting units, returned under `"units"`.
        per_sample (`bool`, *optional*, defaults to `False`): also return per-pair values.

    Returns:
        `dict`: `mpjpe_<group>` for each defined group of `body`, `hands`, `left_hand`, `right_hand`,
        `"units"` and `"alignment"`.
    """
    if align not in ALIGNMENTS:
        raise ValueError(f"`align` must be one of {ALIGNMENTS}; got {align!r}.")
    unit_name = _check_scale(scale, units)
    preds, refs, num_joints = _check_pairs(predictions, references)
    groups = resolve_joint_groups(
        num_joints, skeleton, body_joints=body_joints, left_hand_joints=left_hand_joints,
        right_hand_joints=right_hand_joints, root_index=root_index, wrist_indices=wrist_indices,
    )
    per_group: Dict[str, List[float]] = {}
    for i, (p, r) in enumerate(zip(preds, refs)):
        p, r = _align_lengths(p, r, align, i)
        err = np.linalg.norm(_relative(p, groups) - _relative(r, groups), axis=-1)  # (T, joints)
        acc, start = {}, 0
        for name, joints, _ in groups.parts():
            acc[name] = err[:, start : start + len(joints)].sum(axis=1, dtype=np.float64)
            start += len(joints)
        for g, c in _group_costs(acc, groups).items():
            per_group.setdefault(g, []).append(float(c.mean()) * scale)
    result: Dict[str, Union[float, str, List[float]]] = {}
    for g, values in per_group.items():
        result[f"mpjpe_{g}"] = float(np.mean(values))
        if per_sample:
            result[f"mpjpe_{g}_per_sample"] = values
    result["units"] = unit_name
    result["alignment"] = align
    return result

"""Cost matrices of DTW-JPE for a chunk of sequence pairs: per-part sums over joints of `||p_i[k] - r_j[k]||`.

DTW-JPE's cell cost is a mean of per-joint Euclidean distances, so every `(frame, frame, joint)` triple needs a
distance of its own (about 2 x 10^9 of them for 1,000 pairs of 200 frames with 51 moving joints). Computing
them from explicit differences takes ten passes over memory per joint; here they come from one BLAS product per
joint instead, with every joint of every pair of a chunk in one batched `matmul`:

    ||p - r||^2 = |p|^2 + |r|^2 - 2 p.r = [p, |p|^2, 1] . [-2 r, 1, |r|^2]

That expansion loses precision when `||p - r||` is small next to `|p|` and `|r|`, so

1. each joint is first translated to its anchor (root or wrist) and then centred on the mean of both
   sequences, so that `|p|, |r| <= s` (its spread, the largest centred norm) and the rounding error of the
   product is at most `_ROUNDING * s^2` (a few units in the last place), plus the error of centring a joint that
   sits far from its anchor but barely moves (`offset / s` units in the last place);
2. wherever the squared distance `q` is below `_EXACT_BELOW` times that error bound (the relative error of
   `sqrt(q)` would exceed about 1e-11), the distance is recomputed from explicit differences of the anchored
   coordinates, exactly as a direct computation would, so identical poses still give exactly 0;
3. a joint whose relative position is the same in every frame of both sequences (`s = 0`, e.g. joints that
   never move relative to the root) contributes exactly 0 and is skipped.

Positions are converted to float64 (the difference of two float32 numbers is exact in float64). With float32
inputs the square root and the sum over joints run in float32 (as accurate as the inputs: relative error about
1e-7); with float64 inputs everything stays float64 and the result agrees with explicit differences to about
1e-12. The work is cut into blocks of `_BLOCK_CELLS` cells, so that each product is square-rooted and summed
while it is still in cache.

`part_costs_torch` is the accelerator path (a torch `device`): explicit differences on the whole chunk in the
inputs' dtype.
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

Parts = Sequence[Tuple[str, Tuple[int, ...], int]]

_BLOCK_CELLS = 1 << 19  # cells per product block on CPU (4 MiB in float64): square-rooted and summed in cache
_ROUNDING = 8 * np.finfo(np.float64).eps  # error bound of the 5-term scaled expansion (terms summing to <= 4)
_EXACT_BELOW = 5e10  # recompute exactly where q < _EXACT_BELOW * error bound (relative error of sqrt(q) > 1e-11)


def part_costs_cpu(preds: List[np.ndarray], refs: List[np.ndarray], parts: Parts) -> Dict[str, np.ndarray]:
    """Per-part sums over joints of the joint distances, float64 `(batch, n, m)` (padding cells are 0).

    Args:
        preds (`List[np.ndarray]`): `(n_b, J, C)` positions of the first sequence of each pair.
        refs (`List[np.ndarray]`): `(m_b, J, C)` positions of the second sequence of each pair.
        parts (`Sequence[Tuple[str, Tuple[int, ...], int]]`): `(name, joints, anchor)` per part.
    """
    batch, dims = len(preds), preds[0].shape[2]
    rows = np.array([p.shape[0] for p in preds])
    cols = np.array([r.shape[0] for r in refs])
    n, m = int(rows.max()), int(cols.max())
    single = all(a.dtype == np.float32 for a in preds + refs)
    out = {name: np.zeros((batch, n, m), dtype=np.float32 if single else np.float64) for name, _, _ in parts}

    # 1. Joints relative to their anchors, float64, frames last: (batch, joints, C, frames); padding frames 0.
    joints = [k for _, js, a in parts for k in js if k != a]
    anchors = [a for _, js, a in parts for k in js if k != a]
    owner = np.array([i for i, (_, js, a) in enumerate(parts) for k in js if k != a], dtype=np.int64)
    if not joints:
        return out
    joints, anchors = np.array(joints), np.array(anchors)
    x = np.zeros((batch, len(joints), dims, n))
    y = np.zeros((batch, len(joints), dims, m))
    for b, (p, r) in enumerate(zip(preds, refs)):
        p, r = p.astype(np.float64, copy=False), r.astype(np.float64, copy=False)
        x[b, :, :, : rows[b]] = (p[:, joints] - p[:, anchors]).transpose(1, 2, 0)
        y[b, :, :, : cols[b]] = (r[:, joints] - r[:, anchors]).transpose(1, 2, 0)

    # 2. Centre on the mean of both sequences; skip joints that never move (spread 0).
    valid_x = np.arange(n) < rows[:, None]  # (batch, n)
    valid_y = np.arange(m) < cols[:, None]
    centre = 0.5 * (x.sum(3) / rows[:, None, None] + y.sum(3) / cols[:, None, None])  # (batch, joints, C)
    xc = (x - centre[..., None]) * valid_x[:, None, None]
    yc = (y - centre[..., None]) * valid_y[:, None, None]
    norm_x, norm_y = (xc * xc).sum(2), (yc * yc).sum(2)  # (batch, joints, frames)
    spread2 = np.maximum(norm_x.max(2), norm_y.max(2))
    active_b, active_j = np.nonzero(spread2 > 0)
    if len(active_b) == 0:
        return out
    spread2 = spread2[active_b, active_j]
    offset = np.maximum(np.abs(x[active_b, active_j]).max((1, 2)), np.abs(y[active_b, active_j]).max((1, 2)))
    # the error bound of the expansion in the positions' squared units, times the exactness factor
    threshold = _EXACT_BELOW * _ROUNDING * (1.0 + offset / np.sqrt(spread2)) * spread2

    # 3. Augmented factors, (active, C + 2, frames): lhs^T rhs = |x|^2 + |y|^2 - 2 x.y. Padding rows and
    # columns give products >= the spread^2, so they never reach the exact path (and the DTW never reads them).
    lhs = np.empty((len(active_b), dims + 2, n))
    rhs = np.empty((len(active_b), dims + 2, m))
    lhs[:, :dims] = xc[active_b, active_j]
    lhs[:, dims] = norm_x[active_b, active_j] + spread2[:, None] * ~valid_x[active_b]
    lhs[:, dims + 1] = valid_x[active_b]
    rhs[:, :dims] = -2.0 * yc[active_b, active_j]
    rhs[:, dims] = 1.0
    rhs[:, dims + 1] = norm_y[active_b, active_j] + spread2[:, None] * ~valid_y[active_b]

    # 4. Blocks of (pair, joint) products: square root, exact fix-ups, then the sum per (pair, part). Buffers
    # are allocated once: fresh temporaries of this size cost page faults on every block.
    step = max(1, min(len(active_b), _BLOCK_CELLS // (n * m)))
    q_buf = np.empty((step, n, m))
    small_buf = np.empty((step, n, m), dtype=bool)
    dist_buf = np.empty((step, n, m), dtype=np.float32) if single else q_buf
    run_sum = np.empty((n, m), dtype=dist_buf.dtype)
    for a0 in range(0, len(active_b), step):
        a1 = min(a0 + step, len(active_b))
        q, small, dist = q_buf[: a1 - a0], small_buf[: a1 - a0], dist_buf[: a1 - a0]
        np.matmul(lhs[a0:a1].transpose(0, 2, 1), rhs[a0:a1], out=q)
        np.less(q, threshold[a0:a1, None, None], out=small)
        fix = np.unravel_index(np.flatnonzero(small), q.shape) if small.any() else None
        if fix is not None:
            q[fix] = 0.0
        np.sqrt(q, out=dist, dtype=dist.dtype)
        if fix is not None:
            a, i, j = fix[0] + a0, fix[1], fix[2]
            diff = x[active_b[a], active_j[a], :, i] - y[active_b[a], active_j[a], :, j]
            dist[fix] = np.sqrt((diff * diff).sum(-1))
        # consecutive runs of the same (pair, part) are summed over their joints
        key = active_b[a0:a1] * len(parts) + owner[active_j[a0:a1]]
        cuts = np.flatnonzero(np.diff(key)) + 1
        for s0, s1 in zip(np.r_[0, cuts], np.r_[cuts, a1 - a0]):
            b, part = divmod(int(key[s0]), len(parts))
            acc = out[parts[part][0]][b]
            if s1 - s0 == 1:
                acc += dist[s0]
            else:
                acc += np.add.reduce(dist[s0:s1], axis=0, out=run_sum)
    return out


def part_costs_torch(preds, refs, parts: Parts, device: torch.device) -> Dict[str, torch.Tensor]:
    """Per-part sums over joints of `||p_i[k] - r_j[k]||`, each `(batch, n, m)`, with torch on `device`.

    Joint by joint and coordinate by coordinate on `(pairs, n, m)` planes from explicit differences in the
    inputs' dtype (identical poses give exactly 0), with only two temporaries.
    """
    batch = len(preds)
    n = max(p.shape[0] for p in preds)
    m = max(r.shape[0] for r in refs)
    dims = preds[0].shape[2]
    dtype = np.result_type(np.float32, *[a.dtype for a in preds + refs])
    part_joints = [(name, [k for k in js], a) for name, js, a in parts]
    total = sum(len(js) for _, js, _ in part_joints)
    x = np.zeros((total, dims, batch, n), dtype=dtype)
    y = np.zeros((total, dims, batch, m), dtype=dtype)
    for b, (p, r) in enumerate(zip(preds, refs)):
        p, r = p.astype(dtype, copy=False), r.astype(dtype, copy=False)
        rel_p = np.concatenate([p[:, js] - p[:, [a]] for _, js, a in part_joints], axis=1)
        rel_r = np.concatenate([r[:, js] - r[:, [a]] for _, js, a in part_joints], axis=1)
        x[:, :, b, : p.shape[0]] = rel_p.transpose(1, 2, 0)
        y[:, :, b, : r.shape[0]] = rel_r.transpose(1, 2, 0)
    x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    out, start = {}, 0
    diff = torch.empty((batch, n, m), dtype=x.dtype, device=device)
    sq = torch.empty_like(diff)
    for name, js, _ in part_joints:
        acc = torch.zeros((batch, n, m), dtype=x.dtype, device=device)
        for k in range(start, start + len(js)):
            for d in range(dims):
                torch.subtract(x[k, d, :, :, None], y[k, d, :, None, :], out=diff)
                if d == 0:
                    torch.multiply(diff, diff, out=sq)
                else:
                    diff *= diff
                    sq += diff
            acc += sq.sqrt_()
        out[name] = acc
        start += len(js)
    return out

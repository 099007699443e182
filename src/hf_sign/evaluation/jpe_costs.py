"""Cost matrices of DTW-JPE for a chunk of sequence pairs: per-part sums over joints of `||p_i[k] - r_j[k]||`.

DTW-JPE's cell cost is a mean of per-joint Euclidean distances, so every `(frame, frame, joint)` triple needs a
distance of its own (about 2 x 10^9 of them for 1,000 pairs of 200 frames). They come from explicit differences in
the inputs' dtype (no `|a|^2 + |b|^2 - 2ab` expansion, so identical poses give exactly 0), squares summed coordinate
by coordinate and square roots joint by joint:

* on CPU a compiled loop (numba) computes each cell's row of distances in registers and cache, one pass per joint
  over a row of `m` cells instead of about ten passes over whole `(n, m)` planes with temporaries (numpy's way,
  about 5x slower); only the real cells of each pair are computed;
* with a torch `device` (an accelerator) the whole chunk runs as plane operations.

Joints whose anchored position is the same in every frame of every pair of the chunk (the anchors themselves,
and joints that never move relative to them, such as the spine of `smplx133` relative to the pelvis) add exactly
0 to every cell and are skipped; this changes no bit of the result.
"""

from __future__ import annotations

import functools
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

Parts = Sequence[Tuple[str, Tuple[int, ...], int]]
ArrayOrTensor = Union[np.ndarray, torch.Tensor]


def part_costs(
    preds: List[np.ndarray], refs: List[np.ndarray], parts: Parts, device: Optional[torch.device] = None
) -> Dict[str, ArrayOrTensor]:
    """Per-part sums over joints of `||p_i[k] - r_j[k]||`, each `(batch, n, m)` (padding cells hold junk).

    Args:
        preds (`List[np.ndarray]`): `(n_b, J, C)` positions of the first sequence of each pair.
        refs (`List[np.ndarray]`): `(m_b, J, C)` positions of the second sequence of each pair.
        parts (`Sequence[Tuple[str, Tuple[int, ...], int]]`): `(name, joints, anchor)` per part; each part's
            joints are translated to its anchor joint.
        device (`torch.device`, *optional*): run with torch on this device; the compiled CPU loop by default.

    Returns:
        `Dict[str, array]`: one `(batch, n, m)` numpy array (or torch tensor on `device`) per part, in the
        inputs' float dtype (float32 unless an input is float64).
    """
    batch = len(preds)
    n = max(p.shape[0] for p in preds)
    m = max(r.shape[0] for r in refs)
    dims = preds[0].shape[2]
    dtype = np.result_type(np.float32, *[a.dtype for a in preds + refs])

    # 1. Anchored positions of the chunk, joint-major `(joints, C, pairs, frames)`, in the inputs' dtype.
    joints = np.array([k for _, js, _ in parts for k in js])
    anchors = np.array([a for _, js, a in parts for _ in js])
    x = np.zeros((len(joints), dims, batch, n), dtype=dtype)
    y = np.zeros((len(joints), dims, batch, m), dtype=dtype)
    for b, (p, r) in enumerate(zip(preds, refs)):
        p, r = p.astype(dtype, copy=False), r.astype(dtype, copy=False)
        x[:, :, b, : p.shape[0]] = (p[:, joints] - p[:, anchors]).transpose(1, 2, 0)
        y[:, :, b, : r.shape[0]] = (r[:, joints] - r[:, anchors]).transpose(1, 2, 0)

    # 2. Joints that add 0 everywhere: one value per coordinate over all real frames of both sides.
    real = [x[:, :, b, : len(p)] for b, p in enumerate(preds)] + [y[:, :, b, : len(r)] for b, r in enumerate(refs)]
    frames = np.concatenate(real, axis=2)  # (joints, C, all frames)
    moving = (frames.min(2) != frames.max(2)).any(1)
    sizes = np.array([len(js) for _, js, _ in parts])
    stops = np.cumsum(sizes)

    # 3. Sums over the moving joints of each part.
    if device is None:
        out = np.zeros((len(parts), batch, n, m), dtype=dtype)
        rows = np.array([p.shape[0] for p in preds])
        cols = np.array([r.shape[0] for r in refs])
        _compiled_kernel()(x, y, rows, cols, stops - sizes, stops, moving, out)
        return {name: out[i] for i, (name, _, _) in enumerate(parts)}
    x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    costs = {}
    for (name, _, _), stop, size in zip(parts, stops, sizes):
        acc = torch.zeros((batch, n, m), dtype=x.dtype, device=device)
        for k in range(stop - size, stop):
            if moving[k]:
                sq = (x[k, 0, :, :, None] - y[k, 0, :, None, :]) ** 2
                for d in range(1, dims):
                    sq += (x[k, d, :, :, None] - y[k, d, :, None, :]) ** 2
                acc += sq.sqrt_()
        costs[name] = acc
    return costs


def _part_costs_loop(x, y, rows, cols, starts, stops, moving, out):  # pragma: no cover - runs compiled
    """`out[part, b, i, j] = sum over the part's moving joints k of ||x[k, :, b, i] - y[k, :, b, j]||` on the real
    cells (`i < rows[b]`, `j < cols[b]`); the squares are summed coordinate by coordinate, then the square roots
    joint by joint."""
    dims, batch = x.shape[1], x.shape[2]
    square = np.empty(y.shape[3], dtype=x.dtype)
    for b in range(batch):
        m = cols[b]
        for part in range(starts.shape[0]):
            for i in range(rows[b]):
                row = out[part, b, i]
                for k in range(starts[part], stops[part]):
                    if not moving[k]:
                        continue
                    for d in range(dims):
                        xi, yd = x[k, d, b, i], y[k, d, b]
                        if d == 0:
                            for j in range(m):
                                diff = xi - yd[j]
                                square[j] = diff * diff
                        else:
                            for j in range(m):
                                diff = xi - yd[j]
                                square[j] += diff * diff
                    for j in range(m):
                        row[j] += np.sqrt(square[j])


@functools.lru_cache(maxsize=None)
def _compiled_kernel():
    """`_part_costs_loop` compiled by numba on first use (imported lazily: it takes a moment to load; the machine
    code is cached on disk next to this module, or in numba's user cache when that is read-only)."""
    import numba

    return numba.njit(cache=True, nogil=True)(_part_costs_loop)

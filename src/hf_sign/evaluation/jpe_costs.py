"""Cost matrices of DTW-JPE for a chunk of sequence pairs: per-part sums over joints of `||p_i[k] - r_j[k]||`.

DTW-JPE's cell cost is a mean of per-joint Euclidean distances, so every `(frame, frame, joint)` triple needs a
distance of its own (about 2 x 10^9 of them for 1,000 pairs of 200 frames). They are computed joint by joint and
coordinate by coordinate on `(pairs, n, m)` planes from explicit differences in the inputs' dtype (no
`|a|^2 + |b|^2 - 2ab` expansion, so identical poses give exactly 0), with two temporaries. On CPU the planes of a
few pairs at a time stay in cache (numpy's single-threaded loops beat torch's thread pool at these sizes); with a
torch `device` (an accelerator) the whole chunk runs at once.

Joints whose anchored position is the same in every frame of every pair of the chunk (the anchors themselves,
and joints that never move relative to them, such as the spine of `smplx133` relative to the pelvis) add exactly
0 to every cell and are skipped; this changes no bit of the result.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

Parts = Sequence[Tuple[str, Tuple[int, ...], int]]
ArrayOrTensor = Union[np.ndarray, torch.Tensor]

_CACHE_CELLS = 1 << 17  # cost-plane size (cells) per CPU step: 512 KiB in float32, stays in L2


def part_costs(
    preds: List[np.ndarray], refs: List[np.ndarray], parts: Parts, device: Optional[torch.device] = None
) -> Dict[str, ArrayOrTensor]:
    """Per-part sums over joints of `||p_i[k] - r_j[k]||`, each `(batch, n, m)` (padding cells hold junk).

    Args:
        preds (`List[np.ndarray]`): `(n_b, J, C)` positions of the first sequence of each pair.
        refs (`List[np.ndarray]`): `(m_b, J, C)` positions of the second sequence of each pair.
        parts (`Sequence[Tuple[str, Tuple[int, ...], int]]`): `(name, joints, anchor)` per part; each part's
            joints are translated to its anchor joint.
        device (`torch.device`, *optional*): run with torch on this device; numpy on CPU by default.

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

    # 3. Sums over the moving joints of each part, `sub` pairs at a time.
    if device is None:
        xp, sub = np, max(1, min(batch, _CACHE_CELLS // (n * m)))
        zeros = lambda shape: np.zeros(shape, dtype=dtype)  # noqa: E731
    else:
        xp, sub = torch, batch
        x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        zeros = lambda shape: torch.zeros(shape, dtype=x.dtype, device=device)  # noqa: E731
    out = {name: zeros((batch, n, m)) for name, _, _ in parts}
    diff, sq = zeros((sub, n, m)), zeros((sub, n, m))
    for b0 in range(0, batch, sub):
        b1 = min(b0 + sub, batch)
        dd, ss = diff[: b1 - b0], sq[: b1 - b0]
        start = 0
        for name, js, _ in parts:
            acc = out[name][b0:b1]
            for k in range(start, start + len(js)):
                if not moving[k]:
                    continue
                for d in range(dims):
                    xp.subtract(x[k, d, b0:b1, :, None], y[k, d, b0:b1, None, :], out=dd)
                    if d == 0:
                        xp.multiply(dd, dd, out=ss)
                    else:
                        dd *= dd
                        ss += dd
                xp.sqrt(ss, out=ss)
                acc += ss
            start += len(js)
    return out

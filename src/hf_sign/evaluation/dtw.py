"""Exact dynamic time warping (DTW) over many sequence pairs at once.

DTW-JPE (SOKE) needs one DTW per test sentence; a Python double loop over 200 x 200 frames costs ~20 ms
per pair, so a few thousand sentences take minutes. Here all pairs of a chunk advance together along the
anti-diagonals of their cost matrices (a wavefront): every cell of anti-diagonal `k = i + j` depends only
on diagonals `k - 1` and `k - 2`, so one diagonal of every pair is three vectorised array operations.

Recurrence (plain DTW, steps (1, 0), (0, 1), (1, 1), no window, no step weights)::

    D[0, 0] = C[0, 0]
    D[i, j] = C[i, j] + min(D[i - 1, j - 1], D[i - 1, j], D[i, j - 1])     (out-of-range terms are +inf)
    distance = D[n - 1, m - 1]  (the sum of the costs along the cheapest monotone path)

The result is bit-identical to a double loop in the same dtype (`min` is exact and each cell is one
addition). Pairs of different lengths share a chunk without masking: the cells of a pair's `n x m`
rectangle only depend on cells inside it, so whatever padding lies outside is never read; each pair's
distance is captured when the wavefront reaches its own corner `(n - 1, m - 1)`.

Layout: a chunk of costs is stored time-major, `(n, m, batch)`, so the cells `(i, k - i)` of a diagonal
are a plain strided view of the flattened `(n * m, batch)` array (stride `m - 1` rows) and every row
is `batch` contiguous numbers. Numpy arrays run on numpy (fewer, cheaper calls on CPU); torch tensors run
with torch on their own device (CUDA included).

Paths: with `return_paths=True` (or `return_path_lengths=True`) each cell also stores which predecessor
it came from (uint8). Ties are broken in a fixed order, diagonal first, then (i - 1, j), then (i, j - 1),
so among equally cheap paths the shortest-looking one is kept; the paths are then traced back for all
pairs at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]

# Predecessor codes stored per cell.
_DIAG, _UP, _LEFT = 0, 1, 2

__all__ = ["DTWOutput", "chunk_pairs", "dtw", "dtw_sequences", "dtw_wavefront"]


@dataclass
class DTWOutput:
    """Result of a batched DTW.

    Args:
        distance (`np.ndarray` of shape `(batch,)`, float64): sum of the costs along the optimal path, in
            the costs' units.
        path_length (`np.ndarray` of shape `(batch,)`, int64, *optional*): number of cells on the optimal
            path (between `max(n, m)` and `n + m - 1`); set when paths or path lengths were requested.
        paths (`List[np.ndarray]`, *optional*): one `(path_length, 2)` int64 array of `(i, j)` cells per
            pair, from `(0, 0)` to `(n - 1, m - 1)`; set when `return_paths=True`.
    """

    distance: np.ndarray
    path_length: Optional[np.ndarray] = None
    paths: Optional[List[np.ndarray]] = None


def _backend(x):
    """Allocation helpers for numpy arrays or torch tensors (the loop itself is written once)."""
    if isinstance(x, torch.Tensor):
        return (
            lambda shape, value, dtype: torch.full(shape, value, dtype=dtype, device=x.device),
            torch.uint8,
            lambda a: torch.as_tensor(a, device=x.device),
        )
    return (lambda shape, value, dtype: np.full(shape, value, dtype=dtype)), np.uint8, np.asarray


def dtw_wavefront(
    costs: ArrayLike,
    rows: Optional[Sequence[int]] = None,
    cols: Optional[Sequence[int]] = None,
    *,
    return_paths: bool = False,
    return_path_lengths: bool = False,
) -> DTWOutput:
    """DTW of one chunk of pairs given their cost matrices in time-major layout.

    This is the kernel behind [`dtw`]; metric code that builds its costs directly in this layout
    (see `hf_sign.evaluation.metrics`) calls it to skip a transpose.

    Args:
        costs (`np.ndarray` or `torch.Tensor` of shape `(n, m, batch)`): `costs[i, j, b]` is the cost of
            matching frame `i` of the first sequence of pair `b` with frame `j` of its second sequence.
            Must be finite inside each pair's `rows[b] x cols[b]` rectangle; padding outside it is never
            read. Computed in the array's dtype (use float64 for long sequences); torch tensors stay on
            their device.
        rows (`Sequence[int]`, *optional*, defaults to `n` for every pair): length of each pair's first
            sequence, `1 <= rows[b] <= n`.
        cols (`Sequence[int]`, *optional*, defaults to `m` for every pair): length of each pair's second
            sequence, `1 <= cols[b] <= m`.
        return_paths (`bool`, *optional*, defaults to `False`): also trace back the optimal paths.
        return_path_lengths (`bool`, *optional*, defaults to `False`): also return the path lengths.

    Returns:
        [`DTWOutput`] with float64 distances (numpy, on CPU).
    """
    if costs.ndim != 3:
        raise ValueError(f"`costs` must have shape (n, m, batch); got {tuple(costs.shape)}.")
    n, m, batch = (int(s) for s in costs.shape)
    if n < 1 or m < 1 or batch < 1:
        raise ValueError(f"`costs` must be non-empty; got shape {tuple(costs.shape)}.")
    rows = np.full(batch, n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    cols = np.full(batch, m, dtype=np.int64) if cols is None else np.asarray(cols, dtype=np.int64)
    for name, lens, limit in (("rows", rows, n), ("cols", cols, m)):
        if lens.shape != (batch,) or lens.min() < 1 or lens.max() > limit:
            raise ValueError(f"`{name}` must hold {batch} lengths in [1, {limit}]; got {lens.tolist()}.")
    # Trim the padding nobody needs (keeps the loop as short as the longest pair).
    n, m = int(rows.max()), int(cols.max())
    if costs.shape[0] != n or costs.shape[1] != m:
        costs = costs[:n, :m]
    if isinstance(costs, torch.Tensor):
        costs = costs.contiguous()
    else:
        costs = np.ascontiguousarray(costs)
    full, uint8, as_index = _backend(costs)
    want_ptr = return_paths or return_path_lengths
    flat = costs.reshape(n * m, batch)
    ptr_flat = full((n * m, batch), 0, uint8) if want_ptr else None
    stride = max(m - 1, 1)

    # Three rotating diagonals; slot p = i + 1 holds D[i, k - i], slot 0 is D[-1, .] = +inf forever.
    inf = float("inf")
    bufs = [full((n + 1, batch), inf, costs.dtype) for _ in range(3)]
    prev2, prev1, cur = bufs[2], bufs[0], bufs[1]
    prev1[1] = flat[0]

    # Each pair's distance is read off when the wavefront passes its corner (k = rows + cols - 2).
    end_k = rows + cols - 2
    distance = np.empty(batch, dtype=np.float64)
    captures = {}
    for k in np.unique(end_k).tolist():
        idx = np.nonzero(end_k == k)[0]
        captures[k] = (idx, as_index(rows[idx]), as_index(idx))
    if 0 in captures:
        idx, r, bi = captures[0]
        distance[idx] = _to_numpy(prev1[r, bi])

    for k in range(1, n + m - 1):
        lo, hi = max(0, k - m + 1), min(k, n - 1)
        up = prev1[lo : hi + 1]  # D[i - 1, j]
        left = prev1[lo + 1 : hi + 2]  # D[i, j - 1]
        diag = prev2[lo : hi + 1]  # D[i - 1, j - 1]
        out = cur[lo + 1 : hi + 2]
        cells = slice(k + lo * (m - 1), k + hi * (m - 1) + 1, stride)  # (i, k - i) for i in [lo, hi]
        _minimum(up, left, out)
        if want_ptr:
            code = (up > left) + 1  # 1: from (i - 1, j); 2: from (i, j - 1); equal -> (i - 1, j)
            code[diag <= out] = _DIAG
            ptr_flat[cells] = code
        _minimum(out, diag, out)
        out += flat[cells]
        if hi + 2 <= n:
            cur[hi + 2] = inf  # D[k + 1, -1] for the next diagonal's `left`
        if k in captures:
            idx, r, bi = captures[k]
            distance[idx] = _to_numpy(cur[r, bi])
        prev2, prev1, cur = prev1, cur, prev2

    result = DTWOutput(distance=distance)
    if want_ptr:
        ptr = _to_numpy(ptr_flat).reshape(n, m, batch)
        lengths, paths = _backtrack(ptr, rows, cols, return_paths)
        result.path_length = lengths
        result.paths = paths
    return result


def _minimum(a, b, out):
    if isinstance(a, torch.Tensor):
        torch.minimum(a, b, out=out)
    else:
        np.minimum(a, b, out=out)


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _backtrack(ptr: np.ndarray, rows: np.ndarray, cols: np.ndarray, want_paths: bool):
    """Trace every pair back from its corner to (0, 0) at once; returns lengths and optional paths."""
    batch = len(rows)
    bidx = np.arange(batch)
    i, j = rows - 1, cols - 1
    lengths = np.ones(batch, dtype=np.int64)
    trail: List[Tuple[np.ndarray, np.ndarray]] = [(i.copy(), j.copy())] if want_paths else []
    active = (i > 0) | (j > 0)
    while active.any():
        code = ptr[i, j, bidx]
        i = i - (active & (code != _LEFT))
        j = j - (active & (code != _UP))
        lengths += active
        if want_paths:
            trail.append((i.copy(), j.copy()))
        active = (i > 0) | (j > 0)
    if not want_paths:
        return lengths, None
    ii = np.stack([t[0] for t in trail])  # (steps, batch), corner first
    jj = np.stack([t[1] for t in trail])
    paths = [np.stack([ii[: lengths[b], b][::-1], jj[: lengths[b], b][::-1]], axis=1) for b in range(batch)]
    return lengths, paths


def chunk_pairs(rows: Sequence[int], cols: Sequence[int], max_cells: int) -> List[np.ndarray]:
    """Group pair indices into chunks of similar sizes for the wavefront.

    Pairs are sorted by `(rows, cols)` and cut so that each chunk's padded size
    `max(rows) * max(cols) * len(chunk)` stays within `max_cells` (a single bigger pair gets its own
    chunk). Sorting keeps the padding small when lengths vary.
    """
    rows, cols = np.asarray(rows), np.asarray(cols)
    order = np.lexsort((cols, rows))
    chunks, start, n_max, m_max = [], 0, 0, 0
    for pos, b in enumerate(order.tolist()):
        n_new, m_new = max(n_max, int(rows[b])), max(m_max, int(cols[b]))
        if pos > start and n_new * m_new * (pos + 1 - start) > max_cells:
            chunks.append(order[start:pos])
            start, n_new, m_new = pos, int(rows[b]), int(cols[b])
        n_max, m_max = n_new, m_new
    chunks.append(order[start:])
    return chunks


def dtw(
    costs: Union[ArrayLike, Sequence[ArrayLike]],
    lengths: Optional[ArrayLike] = None,
    *,
    return_paths: bool = False,
    return_path_lengths: bool = False,
    max_cells_per_chunk: int = 1 << 22,
) -> DTWOutput:
    """Exact DTW distance (sum of costs along the optimal path) for many pairs at once.

    Args:
        costs (`np.ndarray`/`torch.Tensor` of shape `(batch, N, M)` or `(N, M)`, or a sequence of 2-D
            arrays of shapes `(n_b, m_b)`): per-pair frame-to-frame cost matrices, finite. A 2-D input is a
            batch of one. Numpy inputs are computed on CPU with numpy, torch inputs with torch on their
            device; the dtype is kept (float64 recommended for an exact sum over long paths).
        lengths (`array` of shape `(batch, 2)`, *optional*): `(n_b, m_b)` per pair when `costs` is a padded
            3-D array; defaults to the full `(N, M)` for every pair.
        return_paths (`bool`, *optional*, defaults to `False`): also return each optimal path.
        return_path_lengths (`bool`, *optional*, defaults to `False`): also return each path's length.
        max_cells_per_chunk (`int`, *optional*, defaults to `2**22`): pairs are sorted by size and run in
            chunks of at most this many padded cells, which bounds memory and keeps the working set in
            cache.

    Returns:
        [`DTWOutput`]: float64 `distance` of shape `(batch,)` in the costs' units, plus `path_length`
        and `paths` when requested.

    Example:

    ```py
    >>> import numpy as np
    >>> from hf_sign.evaluation.dtw import dtw
    >>> x, y = np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 1.0, 2.0])
    >>> dtw(np.abs(x[:, None] - y[None, :])).distance
    array([0.])
    ```
    """
    items = _as_cost_list(costs, lengths)
    batch = len(items)
    sizes = np.array([[c.shape[0], c.shape[1]] for c in items], dtype=np.int64)
    distance = np.empty(batch, dtype=np.float64)
    want_len = return_paths or return_path_lengths
    path_length = np.empty(batch, dtype=np.int64) if want_len else None
    paths: Optional[List[Optional[np.ndarray]]] = [None] * batch if return_paths else None
    for sel in chunk_pairs(sizes[:, 0], sizes[:, 1], max_cells_per_chunk):
        n_max, m_max = (int(v) for v in sizes[sel].max(axis=0))
        first = items[sel[0]]
        if isinstance(first, torch.Tensor):
            chunk = torch.zeros((n_max, m_max, len(sel)), dtype=first.dtype, device=first.device)
        else:
            chunk = np.zeros((n_max, m_max, len(sel)), dtype=first.dtype)
        for slot, b in enumerate(sel):
            n_b, m_b = sizes[b]
            chunk[:n_b, :m_b, slot] = items[b]
        out = dtw_wavefront(
            chunk, sizes[sel, 0], sizes[sel, 1], return_paths=return_paths, return_path_lengths=want_len
        )
        distance[sel] = out.distance
        if want_len:
            path_length[sel] = out.path_length
        if return_paths:
            for slot, b in enumerate(sel):
                paths[b] = out.paths[slot]
    return DTWOutput(distance=distance, path_length=path_length, paths=paths)


def _as_cost_list(costs, lengths) -> List[ArrayLike]:
    """Validate `costs` (and `lengths`) and return one finite 2-D float array per pair."""
    if isinstance(costs, (np.ndarray, torch.Tensor)):
        if costs.ndim == 2:
            costs = costs[None]
        if costs.ndim != 3:
            raise ValueError(f"`costs` must have shape (batch, N, M) or (N, M); got {tuple(costs.shape)}.")
        batch, n, m = costs.shape
        if lengths is None:
            lens = np.tile(np.array([[n, m]], dtype=np.int64), (batch, 1))
        else:
            lens = np.asarray(_to_numpy(lengths), dtype=np.int64)
            if lens.shape != (batch, 2):
                raise ValueError(f"`lengths` must have shape ({batch}, 2); got {lens.shape}.")
        items = [costs[b, : lens[b, 0], : lens[b, 1]] for b in range(batch)]
    else:
        if lengths is not None:
            raise ValueError("`lengths` only applies to a padded 3-D `costs` array; a list carries its own sizes.")
        items = [c if isinstance(c, torch.Tensor) else np.asarray(c) for c in costs]
    if not items:
        raise ValueError("`costs` is empty; expected at least one cost matrix.")
    out = []
    for b, c in enumerate(items):
        if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
            raise ValueError(f"`costs[{b}]` must be a non-empty 2-D (n, m) matrix; got shape {tuple(c.shape)}.")
        if isinstance(c, torch.Tensor):
            c = c if c.is_floating_point() else c.double()
            finite = bool(torch.isfinite(c).all())
        else:
            c = c if np.issubdtype(c.dtype, np.floating) else c.astype(np.float64)
            finite = bool(np.isfinite(c).all())
        if not finite:
            raise ValueError(f"`costs[{b}]` contains NaN or inf; DTW costs must be finite.")
        out.append(c)
    kinds = {(isinstance(c, torch.Tensor), str(c.dtype), str(getattr(c, "device", "cpu"))) for c in out}
    if len(kinds) > 1:
        raise ValueError(f"`costs` mixes array types, dtypes or devices {sorted(kinds)}; pass one kind.")
    return out


def dtw_sequences(
    xs: Sequence[ArrayLike],
    ys: Sequence[ArrayLike],
    *,
    metric: str = "euclidean",
    exact: bool = False,
    return_paths: bool = False,
    return_path_lengths: bool = False,
    max_cells_per_chunk: int = 1 << 21,
    device: Optional[Union[str, torch.device]] = None,
) -> DTWOutput:
    """DTW between paired feature sequences `xs[b]` `(n_b, D)` and `ys[b]` `(m_b, D)` (or 1-D `(n_b,)`).

    Args:
        xs (`Sequence[array]`): first sequences (numpy, torch or lists).
        ys (`Sequence[array]`): second sequences, same `D`, paired with `xs`.
        metric (`str`, *optional*, defaults to `"euclidean"`): `"euclidean"`: cell cost `||x_i - y_j||`,
            distance = path sum (dtaidistance `dtw_ndim.distance(..., inner_dist="euclidean")`);
            `"sqeuclidean"`: cell cost `||x_i - y_j||^2`, distance = sqrt(path sum) (dtaidistance's default
            and tslearn's `dtw`).
        exact (`bool`, *optional*, defaults to `False`): compute costs from explicit differences. Otherwise,
            for `D > 4`, squared distances use `|x|^2 + |y|^2 - 2 x.y` with batched matrix products
            (relative error ~1e-15 in float64, but a cost between identical frames may come out ~1e-8
            instead of 0 for `"euclidean"`).
        return_paths, return_path_lengths (`bool`, *optional*, defaults to `False`): as in [`dtw`].
        max_cells_per_chunk (`int`, *optional*, defaults to `2**21`): chunk budget of padded cells.
        device (`str` or `torch.device`, *optional*): run costs and DTW with torch on this device (e.g.
            `"cuda"`); by default numpy runs them on CPU (torch only for the BLAS product of many-D costs).

    Returns:
        [`DTWOutput`] (float64 distances). Computation is in float64 unless the inputs are float32.
    """
    if metric not in ("euclidean", "sqeuclidean"):
        raise ValueError(f"`metric` must be 'euclidean' or 'sqeuclidean'; got {metric!r}.")
    if len(xs) != len(ys):
        raise ValueError(f"`xs` has {len(xs)} sequences but `ys` has {len(ys)}; they must pair up.")
    if len(xs) == 0:
        raise ValueError("`xs` and `ys` are empty; expected at least one pair.")
    device = torch.device(device) if device is not None else None
    seqs = []
    for field, group in (("xs", xs), ("ys", ys)):
        out = []
        for b, s in enumerate(group):
            a = _to_numpy(s)
            a = a[:, None] if a.ndim == 1 else a
            if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
                raise ValueError(f"`{field}[{b}]` must be a non-empty (num_frames, dim) array; got {a.shape}.")
            if not np.issubdtype(a.dtype, np.number):
                raise ValueError(f"`{field}[{b}]` must hold numbers; got dtype {a.dtype}.")
            if not np.isfinite(a).all():
                raise ValueError(f"`{field}[{b}]` contains NaN or inf.")
            out.append(a)
        seqs.append(out)
    xs_a, ys_a = seqs
    dim = xs_a[0].shape[1]
    for field, group in (("xs", xs_a), ("ys", ys_a)):
        for b, a in enumerate(group):
            if a.shape[1] != dim:
                raise ValueError(f"`{field}[{b}]` has dimension {a.shape[1]} but `xs[0]` has {dim}.")
    dtype = np.float32 if all(a.dtype == np.float32 for a in xs_a + ys_a) else np.float64
    rows = np.array([a.shape[0] for a in xs_a], dtype=np.int64)
    cols = np.array([a.shape[0] for a in ys_a], dtype=np.int64)
    batch = len(xs_a)
    want_len = return_paths or return_path_lengths
    distance = np.empty(batch)
    path_length = np.empty(batch, dtype=np.int64) if want_len else None
    paths: Optional[List[Optional[np.ndarray]]] = [None] * batch if return_paths else None
    for sel in chunk_pairs(rows, cols, max_cells_per_chunk):
        cost = _sequence_costs([xs_a[b] for b in sel], [ys_a[b] for b in sel], dtype, exact or dim <= 4, device)
        if metric == "euclidean":
            cost = cost.sqrt_() if isinstance(cost, torch.Tensor) else np.sqrt(cost, out=cost)
        out = dtw_wavefront(cost, rows[sel], cols[sel], return_paths=return_paths, return_path_lengths=want_len)
        distance[sel] = out.distance if metric == "euclidean" else np.sqrt(out.distance)
        if want_len:
            path_length[sel] = out.path_length
        if return_paths:
            for slot, b in enumerate(sel):
                paths[b] = out.paths[slot]
    return DTWOutput(distance=distance, path_length=path_length, paths=paths)


def _sequence_costs(xs, ys, dtype, direct: bool, device: Optional[torch.device]):
    """Squared Euclidean frame distances of a chunk, time-major `(n, m, batch)`, float64.

    Few dimensions (or `direct`): explicit differences, built straight in the time-major layout (numpy
    when `device` is None). Many dimensions: `|x|^2 + |y|^2 - 2 x.y` with one batched BLAS product, then a transpose.
    """
    batch, dim = len(xs), xs[0].shape[1]
    n, m = max(x.shape[0] for x in xs), max(y.shape[0] for y in ys)
    if direct:
        x = np.zeros((dim, n, batch), dtype=dtype)
        y = np.zeros((dim, m, batch), dtype=dtype)
        for b, (a, c) in enumerate(zip(xs, ys)):
            x[:, : a.shape[0], b] = a.T
            y[:, : c.shape[0], b] = c.T
        if device is None:
            sq = np.zeros((n, m, batch))
            diff = np.empty((n, m, batch))
            for d in range(dim):
                np.subtract(x[d][:, None, :], y[d][None, :, :], out=diff)
                diff *= diff
                sq += diff
            return sq
        xt, yt = torch.from_numpy(x).to(device).double(), torch.from_numpy(y).to(device).double()
        sq = torch.zeros((n, m, batch), dtype=torch.float64, device=device)
        for d in range(dim):
            sq.add_((xt[d][:, None, :] - yt[d][None, :, :]).square_())
        return sq
    x = torch.zeros((batch, n, dim), dtype=torch.float64 if dtype == np.float64 else torch.float32)
    y = torch.zeros((batch, m, dim), dtype=x.dtype)
    for b, (a, c) in enumerate(zip(xs, ys)):
        x[b, : a.shape[0]] = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))
        y[b, : c.shape[0]] = torch.from_numpy(np.ascontiguousarray(c, dtype=dtype))
    if device is not None:
        x, y = x.to(device), y.to(device)
    xx, yy = x.square().sum(-1), y.square().sum(-1)
    sq = torch.baddbmm(xx[:, :, None] + yy[:, None, :], x, y.transpose(1, 2), alpha=-2).clamp_min_(0)
    sq = sq.permute(1, 2, 0).double().contiguous()
    return sq.numpy() if device is None else sq

"""Speed of hf-sign's batched DTW against dtaidistance's C DTW (and tslearn's numba DTW if installed).

Every comparison runs on the SAME cost definition, and the numbers are checked to agree (max relative
difference printed, must be < 1e-9) before anything is timed:

* `euclid D=...`: frames of `joints x 3` flattened; cell cost `||x_i - y_j||`; result = path sum.
  dtaidistance: `dtw_ndim.distance_fast(x, y, inner_dist="euclidean")` (C, per pair).
  ours: `dtw_sequences(xs, ys, metric="euclidean")` (batched BLAS costs + wavefront DP).
* `sqeuclid D=...`: cell cost `||x_i - y_j||^2`; result = sqrt(path sum): dtaidistance's default
  (`dtw_ndim.distance_fast(x, y)`) and tslearn's `tslearn.metrics.dtw(x, y)`.
* `sqeuclid 1-D`: 1-D series (DP-dominated: the cost is trivial), `dtw.distance_fast(x, y)` (with its
  default pruning by the Euclidean upper bound, which skips most cells of similar series) and
  `tslearn.metrics.dtw`; `sqeuclid 1-D nopr` is the same with dtaidistance's pruning off (DP vs DP).
* `DTW-JPE`: our metric end to end (body + hands, per-joint norms on 54 smplx133 joints, four DTWs, path
  lengths); no other library computes this cost, so it has no comparator.

Timings: wall clock, minimum over `--repeats` runs, all libraries interleaved in one process; tslearn's
numba compilation happens in an untimed warm-up. Ratios > 1 mean ours is faster.

Usage:
    python benchmarks/bench_dtw.py [--pairs 1000] [--frames 200] [--joints 54] [--repeats 3]
    PYTHONPATH=/path/to/tslearn/site python benchmarks/bench_dtw.py   # adds the tslearn column
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from hf_sign.evaluation.dtw import dtw, dtw_sequences
from hf_sign.evaluation.metrics import dtw_jpe

try:
    from dtaidistance import dtw as dtai_dtw, dtw_ndim as dtai_ndim
except ImportError:  # pragma: no cover - dtaidistance is in the dev extra
    dtai_dtw = dtai_ndim = None
try:
    from tslearn.metrics import dtw as tslearn_dtw
except ImportError:
    tslearn_dtw = None


def best_time(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def max_rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--joints", type=int, default=54)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if dtai_ndim is None:
        raise SystemExit("dtaidistance is needed for this benchmark: pip install 'hf-sign[dev]'.")

    rng = np.random.default_rng(args.seed)
    n, d = args.frames, args.joints * 3
    poses_a = rng.normal(scale=0.1, size=(args.pairs, n, args.joints, 3))
    poses_b = poses_a + rng.normal(scale=0.05, size=poses_a.shape)  # related sequences, like real pairs
    xs = [p.reshape(n, d) for p in poses_a]
    ys = [p.reshape(n, d) for p in poses_b]
    x1 = [x[:, 0].copy() for x in xs]
    y1 = [y[:, 0].copy() for y in ys]

    cases = [
        (
            f"euclid D={d}",
            lambda: dtw_sequences(xs, ys, metric="euclidean").distance,
            lambda: [dtai_ndim.distance_fast(x, y, inner_dist="euclidean") for x, y in zip(xs, ys)],
            None,
        ),
        (
            f"sqeuclid D={d}",
            lambda: dtw_sequences(xs, ys, metric="sqeuclidean").distance,
            lambda: [dtai_ndim.distance_fast(x, y) for x, y in zip(xs, ys)],
            (lambda: [tslearn_dtw(x, y) for x, y in zip(xs, ys)]) if tslearn_dtw else None,
        ),
        (
            "sqeuclid 1-D",
            lambda: dtw_sequences(x1, y1, metric="sqeuclidean").distance,
            lambda: [dtai_dtw.distance_fast(x, y) for x, y in zip(x1, y1)],
            (lambda: [tslearn_dtw(x, y) for x, y in zip(x1, y1)]) if tslearn_dtw else None,
        ),
        (
            "sqeuclid 1-D nopr",
            lambda: dtw_sequences(x1, y1, metric="sqeuclidean").distance,
            lambda: [dtai_dtw.distance_fast(x, y, use_pruning=False) for x, y in zip(x1, y1)],
            None,
        ),
    ]

    print(
        f"# {args.pairs} pairs of {n}-frame sequences, {args.joints} joints x 3; repeats={args.repeats} (min); "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {torch.get_num_threads()}, "
        f"load avg {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"| {'case':<17} | {'ours (s)':>9} | {'dtaidistance (s)':>16} | {'dtai/ours':>9} | {'tslearn (s)':>11} "
        f"| {'tslearn/ours':>12} | {'max rel diff':>12} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, ours, dtai, tsl in cases:
        # Agreement first, on the full data set, before any timing.
        ref = dtai()
        diff = max_rel_diff(ours(), ref)
        if tsl is not None:
            tsl()  # numba compilation, untimed
            diff = max(diff, max_rel_diff(tsl(), ref))
        if diff > 1e-9:
            raise SystemExit(f"{name}: results disagree (max relative difference {diff:.2e}); not timing.")
        t_ours = t_dtai = t_tsl = float("inf")
        for _ in range(args.repeats):  # interleaved so that machine load hits every library alike
            t_ours = min(t_ours, best_time(ours, 1)[0])
            t_dtai = min(t_dtai, best_time(dtai, 1)[0])
            if tsl is not None:
                t_tsl = min(t_tsl, best_time(tsl, 1)[0])
        tsl_cols = (
            (f"{t_tsl:>11.3f}", f"{t_tsl / t_ours:>12.2f}") if tsl is not None else (f"{'n/a':>11}", f"{'n/a':>12}")
        )
        print(
            f"| {name:<17} | {t_ours:>9.3f} | {t_dtai:>16.3f} | {t_dtai / t_ours:>9.2f} "
            f"| {tsl_cols[0]} | {tsl_cols[1]} | {diff:>12.1e} |"
        )

    # Our DP alone on precomputed costs, and our metric end to end (no external equivalent).
    sub = min(args.pairs, 200)
    costs = np.stack([np.abs(x[:, None] - y[None, :]) for x, y in zip(x1[:sub], y1[:sub])])  # (sub, n, n)
    t_dp, _ = best_time(lambda: dtw(costs), args.repeats)
    print(
        "\nours, DP only on precomputed float64 (B, n, m) costs: "
        f"{t_dp / sub * args.pairs:.3f} s per {args.pairs} pairs"
    )
    t_jpe, _ = best_time(
        lambda: dtw_jpe(list(poses_a[:sub].astype(np.float32)), list(poses_b[:sub].astype(np.float32)), "smplx133"),
        args.repeats,
    ) if args.joints == 54 else (float("nan"), None)
    print(
        "ours, DTW-JPE end to end (smplx133, float32, body+hands, path-normalised): "
        f"{t_jpe / sub * args.pairs:.3f} s per {args.pairs} pairs"
    )
    if tslearn_dtw is None:
        print("(tslearn not installed: its columns are n/a)")


if __name__ == "__main__":
    main()

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
* DTW-JPE end to end (no other library computes this cost, so it has no comparator), timed against our DTW
  dynamic programme alone on the same pairs. Inputs: `--pairs` pairs of random smooth `smplx133` feature
  sequences (a random pose plus a Gaussian random walk of step 0.03 rad per frame on all 133 values), each of
  `frames * U(0.9, 1.1)` frames. End to end = what the benchmark harness does: forward kinematics of all
  predictions and of all references (one `to_positions` call per side on the concatenated frames, float32
  positions in metres), then `dtw_jpe(..., "smplx133")` (root / wrist alignment, body, hands, left and right
  hand costs, four DTWs per pair with their path lengths, path-normalised). DP alone = `dtw(costs,
  return_path_lengths=True)` on precomputed float64 cost matrices of the same shapes (four per pair, i.e. the
  dynamic programmes DTW-JPE runs; the DP's work depends on the shapes only), made in blocks of 100 pairs outside
  the timer. The ratio to one DP per pair without path lengths (a single group) is printed too. Both are timed
  in the same run, interleaved, best of `--repeats`; the peak resident memory after the end-to-end runs (before
  any DP-alone cost block exists) is printed with the resident memory the inputs occupy.

Timings: wall clock, minimum over `--repeats` runs, all libraries interleaved in one process; tslearn's
numba compilation happens in an untimed warm-up. Ratios > 1 mean ours is faster.

Usage:
    python benchmarks/bench_dtw.py [--pairs 1000] [--frames 200] [--joints 54] [--repeats 3] [--jpe-only]
    PYTHONPATH=/path/to/tslearn/site python benchmarks/bench_dtw.py   # adds the tslearn column
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np
import torch

from hf_sign.evaluation.dtw import dtw, dtw_sequences
from hf_sign.evaluation.metrics import dtw_jpe
from hf_sign.skeletons import get_skeleton

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
    parser.add_argument("--jpe-only", action="store_true", help="only the DTW-JPE end-to-end timing")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (numpy runs single-threaded)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.jpe_only:
        jpe_end_to_end(args)
        return
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

    jpe_end_to_end(args)
    if tslearn_dtw is None:
        print("(tslearn not installed: its columns are n/a)")


def rss_mib():
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def smooth_features(rng, frames):
    """A random smooth `smplx133` sequence: a random pose plus a Gaussian random walk (radians), float32."""
    start = rng.normal(scale=0.3, size=(1, 133))
    return (start + np.cumsum(rng.normal(scale=0.03, size=(frames, 133)), axis=0)).astype(np.float32)


def positions(spec, sequences):
    """Forward kinematics of many sequences in one call, as the benchmark harness does."""
    bounds = np.cumsum([0] + [len(s) for s in sequences])
    flat = np.asarray(spec.to_positions(np.concatenate(sequences)), dtype=np.float32)
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def jpe_end_to_end(args):
    spec = get_skeleton("smplx133")
    rng = np.random.default_rng(args.seed)
    lo, hi = int(round(0.9 * args.frames)), int(round(1.1 * args.frames))
    rows, cols = rng.integers(lo, hi + 1, args.pairs), rng.integers(lo, hi + 1, args.pairs)
    preds = [smooth_features(rng, n) for n in rows]
    refs = [smooth_features(rng, m) for m in cols]
    rss_inputs = rss_mib()

    def end_to_end():
        return dtw_jpe(positions(spec, preds), positions(spec, refs), "smplx133", per_sample=True)

    def dp_alone(groups):
        total = 0.0
        for start in range(0, args.pairs, 100):  # cost blocks are made outside the timer
            costs = [
                rng.random((n, m))
                for n, m in zip(rows[start : start + 100], cols[start : start + 100])
                for _ in range(groups)
            ]
            t0 = time.perf_counter()
            dtw(costs, return_path_lengths=groups > 1)
            total += time.perf_counter() - t0
        return total

    end_to_end()  # warm-up (kinematic chain tables, allocator)
    rss_peak = rss_mib()
    t_e2e = t_dp = t_dp1 = float("inf")
    for _ in range(args.repeats):  # interleaved so that machine load hits both alike
        t_e2e = min(t_e2e, best_time(end_to_end, 1)[0])
        t_dp = min(t_dp, dp_alone(4))
        t_dp1 = min(t_dp1, dp_alone(1))
    print(
        f"\n# DTW-JPE end to end: {args.pairs} pairs of {lo}-{hi} frames (smplx133, proxy body), "
        f"repeats={args.repeats} (min), torch threads {torch.get_num_threads()}, "
        f"load avg {os.getloadavg()[0]:.1f}"
    )
    print(f"end to end (FK + dtw_jpe):                 {t_e2e:8.3f} s")
    print(f"DP alone (4 DTWs per pair, path lengths):  {t_dp:8.3f} s   end to end / DP = {t_e2e / t_dp:6.2f}x")
    print(f"DP alone (1 DTW per pair, distance only):  {t_dp1:8.3f} s   end to end / DP = {t_e2e / t_dp1:6.2f}x")
    print(f"resident memory: inputs {rss_inputs:.0f} MiB, peak after end to end {rss_peak:.0f} MiB")


if __name__ == "__main__":
    main()

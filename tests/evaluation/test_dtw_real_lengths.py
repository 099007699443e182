"""DTW and DTW-JPE at the lengths of real sentences (150-250 frames) on every code path, against a brute-force
O(NM) double loop written here.

Short sequences leave whole code paths idle: the wavefront's anti-diagonals only reach their full width on long pairs,
and chunking only splits a batch when the pairs are big. So every path below runs on several pairs of 150-250
frames: numpy and torch, float64 and float32, one chunk and many, batched and one pair at a time, plain costs,
padded costs, the time-major kernel, feature sequences (explicit differences and the BLAS expansion) and the
pose metric with each normalisation.
"""

import numpy as np
import pytest
import torch

from hf_sign.evaluation import jpe_costs
from hf_sign.evaluation.dtw import dtw, dtw_sequences, dtw_wavefront
from hf_sign.evaluation.metrics import dtw_jpe, resolve_joint_groups
from hf_sign.skeletons import get_skeleton

SPEC = get_skeleton("smplx133")
# (generated frames, reference frames): longer, shorter, equal, both at the 250-frame end
LENGTHS = [(150, 250), (250, 150), (200, 200), (173, 231), (241, 166), (250, 250), (160, 210)]


def brute_dtw(cost):
    """Plain DTW as a double loop: steps (1, 0), (0, 1), (1, 1); ties prefer the diagonal, then (i - 1, j).

    Returns the path sum and the optimal path (a `(length, 2)` array from `(0, 0)` to `(n - 1, m - 1)`)."""
    cost = np.asarray(cost, dtype=np.float64)
    n, m = cost.shape
    inf = float("inf")
    prev, moves = [inf] * (m + 1), []
    for i, row in enumerate(cost.tolist()):
        cur, move = [inf] * (m + 1), [0] * m
        for j in range(m):
            diag, up, left = prev[j], prev[j + 1], cur[j]
            if i == 0 and j == 0:
                best, code = 0.0, -1
            elif diag <= up and diag <= left:
                best, code = diag, 0
            elif up <= left:
                best, code = up, 1
            else:
                best, code = left, 2
            cur[j + 1] = row[j] + best
            move[j] = code
        moves.append(move)
        prev = cur
    i, j, path = n - 1, m - 1, [(n - 1, m - 1)]
    while (i, j) != (0, 0):
        code = moves[i][j]
        i, j = (i - 1, j - 1) if code == 0 else ((i - 1, j) if code == 1 else (i, j - 1))
        path.append((i, j))
    return prev[m], np.array(path[::-1])


def smooth_features(rng, frames):
    """A random but smooth smplx133 feature sequence (axis-angle random walk around a random pose)."""
    return (rng.normal(scale=0.3, size=(1, 133)) + np.cumsum(rng.normal(scale=0.03, size=(frames, 133)), axis=0))


def part_cost(p, r, joints, anchor):
    """Mean joint distance between every frame pair, joints translated to `anchor` (DTW-JPE's cell cost)."""
    a = p[:, joints] - p[:, [anchor]]
    b = r[:, joints] - r[:, [anchor]]
    return np.linalg.norm(a[:, None] - b[None], axis=-1).mean(-1)


def group_costs(p, r):
    body, left, right = (list(SPEC.position_parts[k]) for k in ("body", "left_hand", "right_hand"))
    lw, rw = SPEC.wrist_indices
    costs = {
        "body": part_cost(p, r, body, SPEC.root_index),
        "left_hand": part_cost(p, r, left, lw),
        "right_hand": part_cost(p, r, right, rw),
    }
    costs["hands"] = (costs["left_hand"] * len(left) + costs["right_hand"] * len(right)) / (len(left) + len(right))
    return costs


@pytest.fixture(scope="module")
def pairs():
    """Forward-kinematics positions of random smplx133 sequences, their cost matrices and brute-force DTWs."""
    rng = np.random.default_rng(0)
    preds = [SPEC.to_positions(smooth_features(rng, n).astype(np.float32)).astype(np.float64) for n, _ in LENGTHS]
    refs = [SPEC.to_positions(smooth_features(rng, m).astype(np.float32)).astype(np.float64) for _, m in LENGTHS]
    costs = [group_costs(p, r) for p, r in zip(preds, refs)]
    brute = [{g: brute_dtw(c) for g, c in cost.items()} for cost in costs]
    for (n, m), p, r in zip(LENGTHS, preds, refs):
        assert p.shape == (n, SPEC.num_position_joints, 3) and r.shape == (m, SPEC.num_position_joints, 3)
    return {"preds": preds, "refs": refs, "costs": costs, "brute": brute}


def test_brute_force_reference_is_plain_dtw():
    """The reference itself: a hand-checked 3 x 4 case and a pure time-warp."""
    cost = np.array([[1.0, 2.0, 5.0, 9.0], [4.0, 1.0, 1.0, 6.0], [8.0, 7.0, 3.0, 1.0]])
    distance, path = brute_dtw(cost)
    assert distance == 1 + 1 + 1 + 1 and path.tolist() == [[0, 0], [1, 1], [1, 2], [2, 3]]
    x = np.array([0.0, 1.0, 2.0, 3.0])
    assert brute_dtw(np.abs(np.repeat(x, [1, 3, 1, 2])[:, None] - x[None]))[0] == 0.0


# ----------------------------------------------------------------------------------------- DTW kernels
@pytest.mark.parametrize("max_cells", [1 << 22, 40_000])  # one chunk for all pairs; one pair per chunk
def test_dtw_cost_list_numpy_matches_brute_force_with_paths(pairs, max_cells):
    costs = [c["body"] for c in pairs["costs"]] + [c["hands"] for c in pairs["costs"]]
    brute = [b["body"] for b in pairs["brute"]] + [b["hands"] for b in pairs["brute"]]
    out = dtw(costs, return_paths=True, max_cells_per_chunk=max_cells)
    for d, length, path, (ref, ref_path) in zip(out.distance, out.path_length, out.paths, brute):
        assert d == ref  # the same additions in the same order: bit-identical
        np.testing.assert_array_equal(path, ref_path)
        assert length == len(ref_path)


def test_dtw_padded_array_and_torch_tensors_match_brute_force(pairs):
    costs = [c["hands"] for c in pairs["costs"]]
    brute = [b["hands"] for b in pairs["brute"]]
    lengths = np.array(LENGTHS)
    padded = np.full((len(costs), 250, 250), 7.0)  # padding that would change every sum if it were read
    for b, c in enumerate(costs):
        padded[b, : c.shape[0], : c.shape[1]] = c
    numpy_out = dtw(padded, lengths, return_path_lengths=True)
    torch_out = dtw(torch.from_numpy(padded), torch.from_numpy(lengths), return_paths=True)
    torch_list = dtw([torch.from_numpy(c) for c in costs], return_path_lengths=True, max_cells_per_chunk=50_000)
    for b, (ref, ref_path) in enumerate(brute):
        for out in (numpy_out, torch_out, torch_list):
            assert out.distance[b] == pytest.approx(ref, rel=1e-12)
            assert out.path_length[b] == len(ref_path)
        np.testing.assert_array_equal(torch_out.paths[b], ref_path)
    # float32 costs stay float32 in the kernel: close, not identical
    f32 = dtw([c.astype(np.float32) for c in costs]).distance
    np.testing.assert_allclose(f32, [ref for ref, _ in brute], rtol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_dtw_wavefront_time_major_kernel(pairs, backend):
    costs = [c["body"] for c in pairs["costs"]]
    lengths = np.array(LENGTHS)
    time_major = np.full((250, 250, len(costs)), -3.0)  # negative padding: read by mistake it would win every min
    for b, c in enumerate(costs):
        time_major[: c.shape[0], : c.shape[1], b] = c
    if backend == "torch":
        time_major = torch.from_numpy(time_major)
    out = dtw_wavefront(time_major, lengths[:, 0], lengths[:, 1], return_paths=True)
    for b, (ref, ref_path) in enumerate(b["body"] for b in pairs["brute"]):
        assert out.distance[b] == pytest.approx(ref, rel=1e-12)
        np.testing.assert_array_equal(out.paths[b], ref_path)


def test_dtw_one_pair_at_a_time_equals_the_batch(pairs):
    costs = [c["left_hand"] for c in pairs["costs"]]
    batched = dtw(costs, return_path_lengths=True)
    for b, c in enumerate(costs):
        single = dtw(c, return_path_lengths=True)
        assert single.distance[0] == batched.distance[b] == pairs["brute"][b]["left_hand"][0]
        assert single.path_length[0] == batched.path_length[b]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"exact": True},  # explicit differences, numpy
        {"exact": False},  # |x|^2 + |y|^2 - 2 x.y with a batched BLAS product (D = 162 > 4)
        {"exact": True, "device": "cpu"},  # explicit differences in torch (the accelerator path)
        {"exact": False, "device": "cpu"},  # BLAS expansion in torch
        {"exact": False, "max_cells_per_chunk": 40_000},  # one pair per chunk
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dtw_sequences_every_path_matches_brute_force(pairs, kwargs, dtype):
    xs = [p.reshape(p.shape[0], -1).astype(dtype) for p in pairs["preds"]]
    ys = [r.reshape(r.shape[0], -1).astype(dtype) for r in pairs["refs"]]
    euclid = dtw_sequences(xs, ys, metric="euclidean", return_path_lengths=True, **kwargs)
    squared = dtw_sequences(xs, ys, metric="sqeuclidean", **kwargs)
    rtol = 1e-9 if dtype == np.float64 else 1e-5
    for b, (x, y) in enumerate(zip(xs, ys)):
        dist = np.linalg.norm(x.astype(np.float64)[:, None] - y.astype(np.float64)[None], axis=-1)
        ref, ref_path = brute_dtw(dist)
        assert euclid.distance[b] == pytest.approx(ref, rel=rtol)
        assert euclid.path_length[b] == len(ref_path)
        assert squared.distance[b] == pytest.approx(np.sqrt(brute_dtw(dist**2)[0]), rel=rtol)


# ----------------------------------------------------------------------------------------------- DTW-JPE
JPE_PATHS = [
    {},  # the compiled CPU loop over all pairs of the chunk
    {"device": "cpu"},  # torch on the whole chunk (the accelerator path)
    {"max_cells_per_chunk": 40_000},  # one pair per chunk
    {"max_cells_per_chunk": 130_000},  # two or three pairs per chunk, sorted by size
]


@pytest.mark.parametrize("kwargs", JPE_PATHS)
@pytest.mark.parametrize("normalize", ["path", "reference"])
def test_dtw_jpe_every_path_matches_brute_force(pairs, kwargs, normalize):
    out = dtw_jpe(pairs["preds"], pairs["refs"], "smplx133", per_sample=True, normalize=normalize, **kwargs)
    for g in ("body", "hands", "left_hand", "right_hand"):
        sums = [b[g][0] for b in pairs["brute"]]
        denom = [len(b[g][1]) for b in pairs["brute"]] if normalize == "path" else [m for _, m in LENGTHS]
        np.testing.assert_allclose(out[f"dtw_jpe_{g}_per_sample"], sums, rtol=1e-9)
        np.testing.assert_allclose(out[f"dtw_jpe_{g}_normalized_per_sample"], np.divide(sums, denom), rtol=1e-9)
        assert out[f"dtw_jpe_{g}"] == pytest.approx(np.mean(sums), rel=1e-9)
        assert out[f"dtw_jpe_{g}_normalized"] == pytest.approx(np.mean(np.divide(sums, denom)), rel=1e-9)


def test_dtw_jpe_float32_scale_and_no_normalisation(pairs):
    preds32 = [p.astype(np.float32) for p in pairs["preds"]]
    refs32 = [r.astype(np.float32) for r in pairs["refs"]]
    for kwargs in ({}, {"device": "cpu"}):
        out = dtw_jpe(
            preds32, refs32, "smplx133", per_sample=True, normalize="none", scale=1000.0, units="mm", **kwargs
        )
        assert "dtw_jpe_body_normalized" not in out and out["units"] == "mm"
        for g in ("body", "hands"):
            np.testing.assert_allclose(
                out[f"dtw_jpe_{g}_per_sample"], [1000 * b[g][0] for b in pairs["brute"]], rtol=1e-5
            )


def test_dtw_jpe_one_pair_at_a_time_equals_the_batch(pairs):
    batched = dtw_jpe(pairs["preds"], pairs["refs"], "smplx133", per_sample=True)
    for b, (p, r) in enumerate(zip(pairs["preds"], pairs["refs"])):
        single = dtw_jpe([p], [r], "smplx133")
        for g in ("body", "hands"):
            assert single[f"dtw_jpe_{g}"] == batched[f"dtw_jpe_{g}_per_sample"][b]
            assert single[f"dtw_jpe_{g}_normalized"] == batched[f"dtw_jpe_{g}_normalized_per_sample"][b]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_part_costs_compiled_cpu_loop_is_exact_on_every_real_cell(pairs, dtype):
    """The compiled CPU loop equals an explicit sum of per-joint distances in the inputs' dtype, bit for bit, on each
    pair's real cells (pairs of different lengths share the chunk), and the torch path to rounding."""
    parts = resolve_joint_groups(len(SPEC.position_joint_names), SPEC).parts()
    preds = [p.astype(dtype) for p in pairs["preds"][:4]]
    refs = [r.astype(dtype) for r in pairs["refs"][:4]]
    costs = jpe_costs.part_costs(preds, refs, parts)
    on_torch = jpe_costs.part_costs(preds, refs, parts, device=torch.device("cpu"))
    for b, (p, r) in enumerate(zip(preds, refs)):
        for name, joints, anchor in parts:
            expected = np.zeros((len(p), len(r)), dtype=dtype)
            for k in joints:
                a, c = p[:, k] - p[:, anchor], r[:, k] - r[:, anchor]
                d = [a[:, None, i] - c[None, :, i] for i in range(3)]
                expected += np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
            got = costs[name][b, : len(p), : len(r)]
            assert got.dtype == dtype
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_allclose(on_torch[name][b, : len(p), : len(r)].numpy(), expected, rtol=1e-6)


def test_dtw_jpe_joints_that_never_move_count_when_the_sides_differ(pairs):
    """Joints fixed relative to their anchor add 0 and are skipped, but only when both sides hold the same value."""
    p, r = pairs["preds"][3], pairs["refs"][3].copy()
    collar, root = SPEC.position_joint_names.index("left_collar"), SPEC.root_index
    assert np.ptp(p[:, collar] - p[:, root], axis=0).max() == 0  # never moves relative to the pelvis
    r[:, collar] += np.array([0.01, -0.02, 0.005])  # the same fixed joint, 2.3 cm away on the reference side
    out = dtw_jpe([p], [r], "smplx133", per_sample=True)
    expected, _ = brute_dtw(group_costs(p, r)["body"])
    assert out["dtw_jpe_body_per_sample"][0] == pytest.approx(expected, rel=1e-9)
    assert out["dtw_jpe_body"] > dtw_jpe([p], [pairs["refs"][3]], "smplx133")["dtw_jpe_body"]

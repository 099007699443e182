"""Plain metric functions: batched DTW against a brute-force double loop, DTW-JPE, MPJPE, FID,
back-translation BLEU/ROUGE-L, SiBLEU and SiCLIP on known values and bad inputs."""

import numpy as np
import pytest
import torch

from hf_sign.evaluation.dtw import dtw, dtw_sequences, dtw_wavefront
from hf_sign.evaluation.metrics import (
    back_translation,
    dtw_jpe,
    fid,
    mpjpe,
    resolve_joint_groups,
    sibleu,
    siclip_retrieval,
)
from hf_sign.skeletons import get_skeleton


# ------------------------------------------------------------------------------------- reference DTW
def brute_dtw(cost):
    """Textbook recursion as a double loop; ties prefer diagonal, then (i-1, j), then (i, j-1)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    move = np.zeros((n, m), dtype=int)
    for i in range(n):
        for j in range(m):
            diag, up, left = acc[i, j], acc[i, j + 1], acc[i + 1, j]
            if i == 0 and j == 0:
                best, move[i, j] = 0.0, -1
            elif diag <= min(up, left):
                best, move[i, j] = diag, 0
            elif up <= left:
                best, move[i, j] = up, 1
            else:
                best, move[i, j] = left, 2
            acc[i + 1, j + 1] = cost[i, j] + best
    path, i, j = [(n - 1, m - 1)], n - 1, m - 1
    while (i, j) != (0, 0):
        code = move[i, j]
        i, j = (i - 1, j - 1) if code == 0 else ((i - 1, j) if code == 1 else (i, j - 1))
        path.append((i, j))
    return acc[n, m], np.array(path[::-1])


def check_path(path, n, m):
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (n - 1, m - 1)
    steps = {tuple(s) for s in np.diff(path, axis=0)}
    assert steps <= {(1, 0), (0, 1), (1, 1)}


SHAPES = [(1, 1), (1, 7), (7, 1), (2, 2), (5, 9), (9, 5), (12, 12), (3, 17), (16, 4)]


def test_dtw_matches_brute_force_exactly_with_valid_paths():
    rng = np.random.default_rng(0)
    costs = [rng.random(s) for s in SHAPES] + [
        rng.random((rng.integers(1, 14), rng.integers(1, 14))) for _ in range(40)
    ]
    out = dtw(costs, return_paths=True, max_cells_per_chunk=400)  # several chunks of mixed sizes
    for c, d, length, path in zip(costs, out.distance, out.path_length, out.paths):
        ref, ref_path = brute_dtw(c)
        assert d == ref  # same float operations -> bit-identical
        np.testing.assert_array_equal(path, ref_path)
        assert length == len(path)
        check_path(path, *c.shape)
        assert c[path[:, 0], path[:, 1]].sum() == pytest.approx(d, rel=1e-12)


def test_dtw_padded_lengths_torch_and_ties():
    rng = np.random.default_rng(1)
    padded = rng.random((4, 10, 8))
    lengths = np.array([[10, 8], [1, 1], [3, 8], [10, 2]])
    out = dtw(padded, lengths)
    for b, (n, m) in enumerate(lengths):
        assert out.distance[b] == brute_dtw(padded[b, :n, :m])[0]
    # torch tensors run the same kernel in torch
    t = dtw(torch.from_numpy(padded), lengths, return_path_lengths=True)
    np.testing.assert_array_equal(t.distance, out.distance)
    # an all-zero cost: every path is optimal; the tie rule keeps the diagonal (shortest) one
    zero = dtw(np.zeros((5, 9)), return_paths=True)
    assert zero.distance[0] == 0 and zero.path_length[0] == 9
    # time-major kernel directly
    k = dtw_wavefront(np.ascontiguousarray(padded.transpose(1, 2, 0)), lengths[:, 0], lengths[:, 1])
    np.testing.assert_array_equal(k.distance, out.distance)


def test_dtw_sequences_definitions():
    rng = np.random.default_rng(2)
    xs = [rng.normal(size=(rng.integers(1, 12), 6)) for _ in range(8)]
    ys = [rng.normal(size=(rng.integers(1, 12), 6)) for _ in range(8)]
    euc = dtw_sequences(xs, ys, metric="euclidean").distance
    sq = dtw_sequences(xs, ys, metric="sqeuclidean", exact=True).distance
    for x, y, e, s in zip(xs, ys, euc, sq):
        dist = np.linalg.norm(x[:, None] - y[None], axis=-1)
        assert e == pytest.approx(brute_dtw(dist)[0], rel=1e-12)
        assert s == pytest.approx(np.sqrt(brute_dtw(dist**2)[0]), rel=1e-12)
    ones = dtw_sequences([np.arange(4.0)], [np.array([0.0, 1, 1, 2, 3])]).distance  # 1-D series, a pure warp
    assert ones[0] == 0.0
    # the torch code path (used on accelerators) gives the same numbers on a CPU device
    on_torch = dtw_sequences(xs, ys, metric="euclidean", device="cpu", return_path_lengths=True)
    np.testing.assert_allclose(on_torch.distance, euc, rtol=1e-12)


@pytest.mark.parametrize(
    "costs, match",
    [
        ([np.zeros((0, 3))], r"costs\[0\]"),
        ([np.array([[0.0, np.nan]])], r"costs\[0\].*NaN"),
        ([np.zeros(3)], r"costs\[0\]"),
        ([], "empty"),
    ],
)
def test_dtw_bad_costs(costs, match):
    with pytest.raises(ValueError, match=match):
        dtw(costs)


# ----------------------------------------------------------------------------------- pose helpers
SPEC = get_skeleton("smplx133")  # 54 position joints: body 0..11 (root 0), hands 12..32 / 33..53 (wrists 12, 33)


def motion(rng, frames, joints=SPEC.num_position_joints):
    """A smooth random motion (random walk), so time-warps and resampling behave like real poses."""
    return np.cumsum(rng.normal(scale=0.02, size=(frames, joints, 3)), axis=0) + rng.normal(size=(1, joints, 3))


def part_cost(p, r, joints, anchor):
    a = p[:, joints] - p[:, [anchor]]
    b = r[:, joints] - r[:, [anchor]]
    return np.linalg.norm(a[:, None] - b[None], axis=-1).mean(-1)


def test_dtw_jpe_matches_reference_definition():
    rng = np.random.default_rng(3)
    preds = [motion(rng, t) for t in (1, 6, 11)]
    refs = [motion(rng, t) for t in (4, 6, 1)]
    out = dtw_jpe(preds, refs, "smplx133", per_sample=True, normalize="path")
    body, left, right = (list(SPEC.position_parts[k]) for k in ("body", "left_hand", "right_hand"))
    lw, rw = SPEC.wrist_indices
    for i, (p, r) in enumerate(zip(preds, refs)):
        d, path = brute_dtw(part_cost(p, r, body, SPEC.root_index))
        assert out["dtw_jpe_body_per_sample"][i] == pytest.approx(d, rel=1e-9)
        assert out["dtw_jpe_body_normalized_per_sample"][i] == pytest.approx(d / len(path), rel=1e-9)
        hands = (part_cost(p, r, left, lw) * len(left) + part_cost(p, r, right, rw) * len(right)) / (
            len(left) + len(right)
        )
        assert out["dtw_jpe_hands_per_sample"][i] == pytest.approx(brute_dtw(hands)[0], rel=1e-9)
        assert out["dtw_jpe_left_hand_per_sample"][i] == pytest.approx(
            brute_dtw(part_cost(p, r, left, lw))[0], rel=1e-9
        )
    assert out["dtw_jpe_body"] == pytest.approx(np.mean(out["dtw_jpe_body_per_sample"]))
    on_torch = dtw_jpe(preds, refs, "smplx133", per_sample=True, normalize="path", device="cpu")
    for key, value in out.items():
        assert on_torch[key] == (pytest.approx(value, rel=1e-12) if key.startswith("dtw") else value)
    ref_norm = dtw_jpe(preds, refs, "smplx133", normalize="reference", per_sample=True)
    np.testing.assert_allclose(
        ref_norm["dtw_jpe_body_normalized_per_sample"],
        np.array(out["dtw_jpe_body_per_sample"]) / [len(r) for r in refs],
    )
    mm = dtw_jpe(preds, refs, "smplx133", scale=1000.0, units="mm", normalize="none")
    assert mm["dtw_jpe_body"] == pytest.approx(1000 * out["dtw_jpe_body"]) and mm["units"] == "mm"
    assert "dtw_jpe_body_normalized" not in mm


def test_identical_warped_and_translated_sequences():
    rng = np.random.default_rng(4)
    seq = motion(rng, 20)
    warped = np.repeat(seq, [1, 3, 1, 2] * 5, axis=0)  # a pure time-warp (some frames repeated)
    # identical -> exactly 0 for both metrics
    for value in dtw_jpe([seq], [seq], SPEC).values():
        assert value in (0.0, "position units", "path")
    assert mpjpe([seq], [seq], SPEC, align="none")["mpjpe_body"] == 0.0
    # time-warp: DTW aligns it away, MPJPE (resampled) does not
    assert dtw_jpe([warped], [seq], SPEC)["dtw_jpe_body"] == pytest.approx(0.0, abs=1e-12)
    assert mpjpe([warped], [seq], SPEC)["mpjpe_body"] > 1e-3
    # a constant offset on all joints (root translation) changes nothing after alignment
    shifted = seq + np.array([0.3, -1.2, 2.0])
    base_d = dtw_jpe([warped], [seq[::2]], SPEC)
    moved_d = dtw_jpe([warped + np.array([0.3, -1.2, 2.0])], [seq[::2]], SPEC)
    for key in base_d:
        if key not in ("units", "normalization"):
            assert moved_d[key] == pytest.approx(base_d[key], abs=1e-9)
    base_m = mpjpe([seq[::-1]], [seq], SPEC)
    moved_m = mpjpe([shifted[::-1]], [seq], SPEC)
    assert moved_m["mpjpe_body"] == pytest.approx(base_m["mpjpe_body"], abs=1e-9)
    assert moved_m["mpjpe_hands"] == pytest.approx(base_m["mpjpe_hands"], abs=1e-9)
    # moving one whole hand (wrist and fingers together) leaves the hand DTW-JPE unchanged
    other = motion(rng, 15)
    hand_moved = other.copy()
    hand_moved[:, list(SPEC.position_parts["left_hand"])] += np.array([0.1, 0.2, -0.05])
    a, b = dtw_jpe([other], [seq], SPEC), dtw_jpe([hand_moved], [seq], SPEC)
    assert b["dtw_jpe_hands"] == pytest.approx(a["dtw_jpe_hands"], abs=1e-9)
    assert b["dtw_jpe_left_hand"] == pytest.approx(a["dtw_jpe_left_hand"], abs=1e-9)


def test_explicit_indices_any_skeleton_and_float32():
    rng = np.random.default_rng(5)
    preds = [motion(rng, 7, joints=5).astype(np.float32) for _ in range(2)]
    refs = [motion(rng, 9, joints=5).astype(np.float32) for _ in range(2)]
    out = dtw_jpe(preds, refs, body_joints=[0, 1, 2, 3, 4], root_index=2, per_sample=True)
    assert set(k for k in out if k.startswith("dtw_jpe") and not k.endswith("per_sample")) == {
        "dtw_jpe_body",
        "dtw_jpe_body_normalized",
    }
    d64 = brute_dtw(part_cost(preds[0].astype(np.float64), refs[0].astype(np.float64), [0, 1, 2, 3, 4], 2))[0]
    assert out["dtw_jpe_body_per_sample"][0] == pytest.approx(d64, rel=1e-5)  # float32 costs, float64 sums
    groups = resolve_joint_groups(54, "smplx133", body_joints=[1, 2])
    assert groups.body == (1, 2) and groups.root == 0 and groups.left_wrist == 12
    # torch inputs and an (N, T, J, 3) array work too
    batch = np.stack([motion(rng, 6) for _ in range(3)])
    a = mpjpe(torch.from_numpy(batch), list(batch[::-1]), SPEC, align="none")
    assert a["mpjpe_body"] > 0 and a["alignment"] == "none"


def test_mpjpe_alignment_modes():
    rng = np.random.default_rng(6)
    ref = motion(rng, 9)
    half = ref[::2]  # 5 frames: ref[0], ref[2], ..., ref[8]
    # linear resampling of a linearly-subsampled linear motion reproduces it exactly
    line = np.linspace(0, 1, 9)[:, None, None] * np.ones((1, 54, 3)) * np.arange(54)[None, :, None]
    assert mpjpe([line[::2]], [line], SPEC, align="resample")["mpjpe_body"] == pytest.approx(0.0, abs=1e-12)
    trunc = mpjpe([half], [ref], SPEC, align="truncate", per_sample=True)
    expected = np.linalg.norm(
        (half - half[:, [0]])[:, list(range(12))] - (ref[:5] - ref[:5, [0]])[:, list(range(12))], axis=-1
    ).mean()
    assert trunc["mpjpe_body_per_sample"][0] == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"predictions\[0\].*align='none'"):
        mpjpe([half], [ref], SPEC, align="none")


@pytest.mark.parametrize(
    "preds, refs, kwargs, match",
    [
        ([np.zeros((4, 54, 3))], [np.zeros((4, 53, 3))], {}, r"references\[0\].*53 joints"),
        ([np.zeros((0, 54, 3))], [np.zeros((4, 54, 3))], {}, r"predictions\[0\].*empty"),
        ([np.full((4, 54, 3), np.nan)], [np.zeros((4, 54, 3))], {}, r"predictions\[0\].*NaN"),
        (
            [np.zeros((4, 54, 3))],
            [np.zeros((4, 54, 3)), np.zeros((4, 54, 3))],
            {},
            r"predictions.*1 samples.*references.*2",
        ),
        ([np.zeros((4, 54))], [np.zeros((4, 54, 3))], {}, r"predictions\[0\].*shape"),
        ([np.zeros((4, 20, 3))], [np.zeros((4, 20, 3))], {}, r"skeleton 'smplx133' has 54"),
        ([np.zeros((4, 54, 3))], [np.zeros((4, 54, 3))], {"normalize": "mean"}, "normalize"),
        ([np.zeros((4, 54, 3))], [np.zeros((4, 54, 3))], {"scale": -1.0}, "scale"),
        ([np.zeros((4, 54, 3))], [np.zeros((4, 54, 3))], {"body_joints": [60]}, r"body_joints.*\[60\]"),
    ],
)
def test_pose_metrics_bad_inputs(preds, refs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        dtw_jpe(preds, refs, "smplx133", **kwargs)


def test_pose_metrics_need_groups():
    with pytest.raises(ValueError, match="skeleton"):
        mpjpe([np.zeros((2, 5, 3))], [np.zeros((2, 5, 3))])
    with pytest.raises(ValueError, match="root_index"):
        mpjpe([np.zeros((2, 5, 3))], [np.zeros((2, 5, 3))], body_joints=[0, 1])


# ---------------------------------------------------------------------------------------------- FID
def test_fid_known_values_and_errors():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 6))
    assert fid(x, x) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    assert fid(x + shift, x) == pytest.approx(float(shift @ shift), rel=1e-9)  # same covariance
    # independent samples of the same Gaussian: small; of shifted Gaussians: about the squared shift
    y = rng.normal(size=(4000, 6))
    z = rng.normal(size=(4000, 6)) + shift
    assert fid(y, z) == pytest.approx(float(shift @ shift), rel=0.05)
    assert fid(rng.normal(size=(3, 10)), rng.normal(size=(5, 10))) >= 0  # singular covariances stay real
    with pytest.raises(ValueError, match="predictions.*at least 2"):
        fid(x[:1], x)
    with pytest.raises(ValueError, match="dimension 6.*5"):
        fid(x, x[:, :5])
    with pytest.raises(ValueError, match="references.*NaN"):
        fid(x, np.where(x > 2.5, np.nan, x))


# ----------------------------------------------------------------------------------- text metrics
def test_back_translation_known_values():
    same = back_translation(["the cat sat on the mat today"], ["the cat sat on the mat today"])
    assert all(same[k] == pytest.approx(100.0) for k in ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l"))
    disjoint = back_translation(["a b c d e"], ["v w x y z"])
    assert all(disjoint[k] == 0.0 for k in disjoint)
    # LCS("a c d e", "a b c d") = "a c d": P = R = 3/4 -> F1 = 75
    assert back_translation(["a c d e"], ["a b c d"])["rouge_l"] == pytest.approx(75.0)
    # BLEU-1 with brevity penalty: 2 of 2 unigrams match, ref length 4 -> exp(1 - 4/2) * 100
    assert back_translation(["a b"], ["a b c d"], max_order=1)["bleu1"] == pytest.approx(100 * np.exp(-1.0))
    # non-Latin text is tokenised like BLEU (rouge-score's own tokenizer would drop it)
    assert back_translation(["我 爱 你"], ["我 爱 他"], tokenize="none")["rouge_l"] == pytest.approx(200 / 3)
    assert "bleu4" not in back_translation(["a b"], ["a b"], max_order=2)


def test_back_translation_bad_inputs():
    with pytest.raises(ValueError, match="predictions.*2.*references.*1"):
        back_translation(["a", "b"], ["a"])
    with pytest.raises(ValueError, match=r"references\[0\].*empty"):
        back_translation(["a"], [" "])
    with pytest.raises(ValueError, match=r"predictions\[1\].*string"):
        back_translation(["a", 3], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        back_translation([], [])


def test_sibleu_parts():
    ref = {"body": [1, 2, 3, 4, 5], "left_hand": [7, 8, 9, 10], "right_hand": [11, 12, 13, 14]}
    same = sibleu([ref], [ref])
    assert same["sibleu"] == pytest.approx(100.0) and same["sibleu_hands"] == pytest.approx(100.0)
    pred = {"body": [1, 2, 3, 4, 5], "left_hand": [20, 21, 22, 23], "right_hand": [11, 12, 13, 14]}
    out = sibleu([pred], [ref])
    assert out["sibleu_body"] == pytest.approx(100.0) and out["sibleu_left_hand"] == 0.0
    assert out["sibleu_hands"] == pytest.approx(50.0) and out["sibleu"] == pytest.approx(200 / 3)
    # list-of-parts layout, default names for three parts
    as_lists = sibleu(
        [[pred["body"], pred["left_hand"], pred["right_hand"]]], [[ref["body"], ref["left_hand"], ref["right_hand"]]]
    )
    assert as_lists == out
    two = sibleu([[[1, 2], [3, 4]]], [[[1, 2], [3, 4]]], max_order=2)
    assert set(two) == {"sibleu_part0", "sibleu_part1", "sibleu"}
    with pytest.raises(ValueError, match=r"references\[0\]\['left_hand'\].*empty"):
        sibleu([pred], [{**ref, "left_hand": []}])
    with pytest.raises(ValueError, match=r"predictions\[0\]\['body'\].*integer"):
        sibleu([{**pred, "body": [1.5, 2.0]}], [ref])
    with pytest.raises(ValueError, match="parts"):
        sibleu([{"body": [1]}], [ref])


def test_siclip_retrieval():
    rng = np.random.default_rng(8)
    assert siclip_retrieval(similarity=np.eye(6))["siclip_r1"] == 100.0
    texts = rng.normal(size=(10, 4))
    perfect = siclip_retrieval(texts * 3.0, texts)  # cosine ignores the scale
    assert perfect["siclip_r1"] == 100.0 and perfect["siclip_median_rank"] == 1.0
    # sign i matches text (i + 1) % 10 best: R@1 = 0; own text second best for the 3 first signs
    sim = np.full((10, 10), 0.0)
    sim[np.arange(10), (np.arange(10) + 1) % 10] = 1.0
    sim[np.arange(3), np.arange(3)] = 0.5
    out = siclip_retrieval(similarity=sim, ks=(1, 2, 5))
    assert out["siclip_r1"] == 0.0 and out["siclip_r2"] == 30.0
    # ties count against the sign: constant similarities give rank = number of texts
    assert siclip_retrieval(similarity=np.ones((4, 4)))["siclip_r1"] == 0.0
    assert siclip_retrieval(similarity=np.eye(3)[[2, 0, 1]], targets=[2, 0, 1])["siclip_r1"] == 100.0
    with pytest.raises(ValueError, match="dimension 4.*text_embeddings"):
        siclip_retrieval(texts, texts[:, :3])
    with pytest.raises(ValueError, match="sign_embeddings.*zeros"):
        siclip_retrieval(np.zeros((10, 4)), texts)
    with pytest.raises(ValueError, match="targets"):
        siclip_retrieval(similarity=np.eye(3), targets=[0, 1, 5])

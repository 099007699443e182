"""Metric conventions of the field (`hf_sign.evaluation.conventions`): hand-computed values on small cases, and the
public implementations the conventions use (fastdtw for SLRTP / Progressive Transformers, dtaidistance for
pose-evaluation) on random inputs."""

import dataclasses

import numpy as np
import pytest

from hf_sign.evaluation.conventions import (
    convention_columns,
    convention_metrics,
    parse_conventions,
    pose_evaluation_dtw,
    position_units,
    progressive_transformers_dtw,
    shoulder_normalize,
    slrtp_metrics,
    slrtp_stride,
)
from hf_sign.skeletons import get_skeleton


def seq(*frames):
    """(T, J, 3) from frames given as lists of joints."""
    return np.array(frames, dtype=np.float64)


# One joint: the prediction reaches (1, 0, 0) in 2 frames, the reference also rises to (1, 0, 1).
PRED = seq([[0, 0, 0]], [[1, 0, 0]])
REF = seq([[0, 0, 0]], [[1, 0, 0]], [[1, 0, 1]])


def test_progressive_transformers_hand_computed():
    # L1 costs [[0, 1, 2], [1, 0, 1]]: cheapest path (0,0) (1,1) (1,2) sums 1; divided by the 3 reference frames
    out = progressive_transformers_dtw([PRED], [REF])
    assert out["pt_dtw"] == pytest.approx(1 / 3)
    # L1, not Euclidean: a (1, 1, 0) offset on one frame costs 2
    assert progressive_transformers_dtw([seq([[1, 1, 0]])], [seq([[0, 0, 0]])])["pt_dtw"] == pytest.approx(2.0)


def test_slrtp_hand_computed_pools_frames_and_wrist_ratio():
    # sample 1: aligned pairs (0,0) (1,1) (1,2) with joint errors 0, 0, 1; sample 2: one pair with error 5
    out = slrtp_metrics([PRED, seq([[0, 0, 0]])], [REF, seq([[3, 4, 0]])], fps=12.0, wrist_indices=(0, 0))
    assert out["slrtp_dtw_mje"] == pytest.approx(6 / 4)  # pooled over the 4 aligned pairs, not (1/3 + 5) / 2
    assert out["slrtp_dtw_mje_per_sample"] == pytest.approx([1 / 3, 5.0])
    # wrist travel: predictions 1 and 0 (mean 0.5), references 2 and 0 (mean 1)
    assert out["slrtp_wrist_path_ratio"] == pytest.approx(0.5)


def test_slrtp_keeps_every_other_frame_at_25_fps():
    assert [slrtp_stride(f) for f in (12, 24, 25, 30, 50)] == [1, 2, 2, 2, 4]
    rng = np.random.default_rng(0)
    pred, ref = rng.normal(size=(9, 4, 3)), rng.normal(size=(7, 4, 3))
    moved = pred.copy()
    moved[1::2] += 10.0  # frames that 12 fps drops
    a = slrtp_metrics([pred], [ref], fps=25.0, wrist_indices=(0, 1))
    b = slrtp_metrics([moved], [ref], fps=25.0, wrist_indices=(0, 1))
    assert a["slrtp_dtw_mje"] == pytest.approx(b["slrtp_dtw_mje"])
    assert slrtp_metrics([moved], [ref], fps=12.0, wrist_indices=(0, 1))["slrtp_dtw_mje"] > a["slrtp_dtw_mje"] + 1


def test_pose_evaluation_hand_computed():
    # shoulders at x = +-1 (width 2), a third keypoint at (0, 1, 0): normalised to +-0.5 and (0, 0.5, 0)
    ref = seq([[1, 0, 0], [-1, 0, 0], [0, 1, 0]], [[1, 0, 0], [-1, 0, 0], [0, 1, 0]])
    assert shoulder_normalize(ref, (0, 1))[0].tolist() == [[0.5, 0, 0], [-0.5, 0, 0], [0, 0.5, 0]]
    # the same pose twice as large and moved is the same after normalisation
    assert pose_evaluation_dtw([2 * ref + 5], [ref], (0, 1))["pose_eval_dtw"] == pytest.approx(0.0, abs=1e-12)
    # third keypoint at (0, 2, 0): 0.5 shoulder widths off in both frames -> sqrt(0.25 + 0.25), mean over 3 keypoints
    pred = ref.copy()
    pred[:, 2] = [0, 2, 0]
    assert pose_evaluation_dtw([pred], [ref], (0, 1))["pose_eval_dtw"] == pytest.approx(np.sqrt(0.5) / 3)


def test_against_fastdtw_on_random_inputs():
    fastdtw = pytest.importorskip("fastdtw").fastdtw
    rng = np.random.default_rng(1)
    preds = [rng.normal(size=(int(rng.integers(3, 12)), 5, 3)) for _ in range(4)]
    refs = [rng.normal(size=(int(rng.integers(3, 12)), 5, 3)) for _ in range(4)]
    # Progressive Transformers: L1 path sum (fastdtw's dist=1) over the reference length; radius >= length is exact
    ours = progressive_transformers_dtw(preds, refs)["pt_dtw_per_sample"]
    theirs = [
        fastdtw(p.reshape(len(p), -1), r.reshape(len(r), -1), radius=20, dist=1)[0] / len(r)
        for p, r in zip(preds, refs)
    ]
    assert ours == pytest.approx(theirs)
    # SLRTP: the toolkit's alignment (Euclidean frame cost), then the mean joint error along the path, pooled
    errors = []
    for p, r in zip(preds, refs):
        _, path = fastdtw(p.reshape(len(p), -1), r.reshape(len(r), -1), radius=20, dist=2)
        i, j = np.array(path).T
        errors.append(np.linalg.norm(p[i] - r[j], axis=-1))
    out = slrtp_metrics(preds, refs, fps=12.0, wrist_indices=(0, 1))
    assert out["slrtp_dtw_mje"] == pytest.approx(np.concatenate(errors).mean())


def test_against_dtaidistance_on_random_inputs():
    dtw_ndim = pytest.importorskip("dtaidistance.dtw_ndim")
    rng = np.random.default_rng(2)
    pred, ref = rng.normal(size=(8, 6, 3)), rng.normal(size=(11, 6, 3))
    p, r = shoulder_normalize(pred, (0, 1)), shoulder_normalize(ref, (0, 1))
    theirs = np.mean([dtw_ndim.distance(p[:, k].copy(), r[:, k].copy()) for k in range(6)])
    assert pose_evaluation_dtw([pred], [ref], (0, 1))["pose_eval_dtw"] == pytest.approx(theirs)


def test_selection_columns_and_errors():
    assert parse_conventions("slrtp, soke") == ("soke", "slrtp")
    assert parse_conventions(None) == ("soke",)
    with pytest.raises(ValueError, match="unknown entries \\['dtw'\\]"):
        parse_conventions("soke,dtw")
    spec = get_skeleton("holistic")
    assert position_units(spec)[0] == "px" and position_units(get_skeleton("smplx133"))[:2] == ("m", "mm")
    every = parse_conventions("slrtp,pose-evaluation,progressive-transformers")
    headers = [h for _, h, _ in convention_columns(every, "px")]
    assert headers[0].startswith("PT DTW") and "(px)" in headers[0] and "SLRTP DTW-MJE" in headers[1]
    assert "shoulder widths" in headers[-1]
    rng = np.random.default_rng(3)
    pos = [rng.normal(size=(5, spec.num_position_joints, 3))]
    got = convention_metrics(("soke", "slrtp", "pose-evaluation"), pos, pos, spec, 25.0)
    assert got["slrtp_dtw_mje"] == 0 and got["pose_eval_dtw"] == 0 and "pt_dtw" not in got
    renamed = dataclasses.replace(spec, position_joint_names=tuple(f"j{i}" for i in range(spec.num_position_joints)))
    with pytest.raises(ValueError, match="no position joints named 'left_shoulder'"):
        convention_metrics(("pose-evaluation",), pos, pos, renamed, 25.0)


def test_table_notes_use_the_positions_units():
    """The notes under the tables name the units of the table's columns: pixels on `holistic`, mm / m on `smplx133`."""
    from hf_sign.evaluation.report import standard_notes

    def notes(units):
        evaluators = {"recognizer_target": "gloss", "recognizer": "r", "contrastive": "c", "trained_here": False}
        results = {"evaluators": evaluators, "split": "test", "systems": [], "position_units": units,
                   "conventions": ["soke"], "fps": 25.0, "representation": "holistic"}
        return [n for n in standard_notes(results, num_candidates=2) if n.startswith(("DTW-JPE", "MPJPE"))]

    pixels = " ".join(notes(["px", "px"]))
    assert "mm" not in pixels and "'(px)' columns" in pixels and "'Σ (px)'" in pixels and "error in px" in pixels
    metric = " ".join(notes(["m", "mm"]))
    assert "'(mm)' columns" in metric and "'Σ (m)'" in metric and "error in mm" in metric

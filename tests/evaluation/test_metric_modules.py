"""`evaluate` metric modules: load offline from their .py path, give the same numbers as the plain
functions, follow the one-import-per-line convention and pass bad input errors through."""

import functools
import re

import evaluate
import numpy as np
import pytest

from hf_sign.evaluation.metric_modules import METRIC_MODULES_DIR, METRIC_NAMES, metric_module_path
from hf_sign.evaluation.metrics import back_translation, dtw_jpe, fid, mpjpe, sibleu, siclip_retrieval

MODULE_DIR = METRIC_MODULES_DIR
NAMES = list(METRIC_NAMES)


@functools.lru_cache(maxsize=None)
def load(name):
    """One loaded module per metric for the whole file (a module is reusable after `compute`)."""
    return evaluate.load(metric_module_path(name), keep_in_memory=True)


@pytest.mark.parametrize("name", NAMES)
def test_module_imports_one_per_line(name):
    lines = (MODULE_DIR / f"{name}.py").read_text().splitlines()
    imports = [line for line in lines if re.match(r"^(import|from)\s", line)]
    assert "import datasets" in imports and "import evaluate" in imports
    assert all("," not in line for line in imports), imports  # evaluate scans these lines for dependencies


def poses(rng, lengths, joints=54):
    return [np.cumsum(rng.normal(scale=0.02, size=(t, joints, 3)), axis=0) for t in lengths]


def test_pose_modules_match_functions():
    rng = np.random.default_rng(0)
    preds, refs = poses(rng, [3, 7, 5]), poses(rng, [6, 7, 2])
    got = load("dtw_jpe").compute(predictions=preds, references=refs, skeleton="smplx133", scale=1000.0, units="mm")
    assert got == dtw_jpe(preds, refs, "smplx133", scale=1000.0, units="mm")
    assert got["units"] == "mm" and got["dtw_jpe_body"] > 0
    got = load("mpjpe").compute(predictions=preds, references=refs, skeleton="smplx133", align="truncate")
    assert got == mpjpe(preds, refs, "smplx133", align="truncate")


def test_fid_module_matches_function():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 5)), rng.normal(size=(20, 5)) + 0.5
    got = load("fid").compute(predictions=a, references=b)
    assert got["fid"] == pytest.approx(fid(a, b), rel=1e-12)


def test_text_modules_match_functions():
    preds = ["the cat sat on a mat", "", "it rains today in the north"]
    refs = ["the cat sat on the mat", "hello there", "today it rains in the north"]
    got = load("back_translation").compute(predictions=preds, references=refs)
    assert got == back_translation(preds, refs)
    same = load("back_translation").compute(predictions=refs, references=refs)
    assert same["bleu4"] == pytest.approx(100.0) and same["rouge_l"] == pytest.approx(100.0)

    tok_p = [[[1, 2, 3, 4, 5], [6, 7, 8, 9], [1, 1, 2, 2]], [[5, 4, 3, 2, 1], [9, 8, 7, 6], [3, 3]]]
    tok_r = [[[1, 2, 3, 4, 6], [6, 7, 8, 9], [1, 2, 2, 2]], [[5, 4, 3, 2, 1], [9, 8, 7], [3, 3, 3]]]
    got = load("sibleu").compute(predictions=tok_p, references=tok_r, max_order=2)
    assert got == sibleu(tok_p, tok_r, max_order=2)
    assert set(got) == {"sibleu_body", "sibleu_left_hand", "sibleu_right_hand", "sibleu_hands", "sibleu"}


def test_siclip_module_both_layouts():
    rng = np.random.default_rng(2)
    signs, texts = rng.normal(size=(12, 8)), rng.normal(size=(12, 8))
    metric = load("siclip")
    assert metric.compute(predictions=signs, references=texts) == siclip_retrieval(signs, texts)
    sim = rng.normal(size=(12, 12))
    targets = rng.permutation(12).tolist()
    got = metric.compute(predictions=sim, references=targets, ks=[1, 3])
    assert got == siclip_retrieval(similarity=sim, targets=targets, ks=[1, 3])
    assert metric.compute(predictions=np.eye(5), references=list(range(5)))["siclip_r1"] == 100.0


def test_module_paths():
    assert sorted(p.stem for p in MODULE_DIR.glob("*.py") if p.stem != "__init__") == sorted(NAMES)
    with pytest.raises(ValueError, match="bleu"):
        metric_module_path("bleu")


def test_modules_pass_bad_input_errors_through():
    with pytest.raises(ValueError, match=r"references\[0\].*53 joints"):
        load("dtw_jpe").compute(
            predictions=[np.zeros((3, 54, 3))], references=[np.zeros((3, 53, 3))], skeleton="smplx133"
        )
    with pytest.raises(ValueError, match=r"references\[0\].*empty"):
        load("back_translation").compute(predictions=["a"], references=[""])
    with pytest.raises(ValueError, match="predictions.*at least 2"):
        load("fid").compute(predictions=[[0.0, 1.0]], references=[[1.0, 2.0]])

"""`hf-sign evaluate`: outputs of any system, read from files and scored by the benchmark's own code (same rows, same
tables), the missing / extra / unreadable report, and clear errors on bad inputs."""

import json

import numpy as np
import pytest

from hf_sign.cli import build_parser, main as hf_sign
from hf_sign.data.io import load_corpus, split_rows
from hf_sign.evaluation.evaluate_command import evaluate_predictions, parse_prediction_sources
from hf_sign.evaluation.harness import GROUND_TRUTH
from hf_sign.evaluation.predictions_io import load_predictions, read_pose_prediction
from hf_sign.render import positions_to_pose, render_to_file, save_pose
from hf_sign.skeletons import get_skeleton
from hf_sign.training.evaluator_trainer import train_evaluators

QUICK = {"recognizer_training.num_train_epochs": 1, "contrastive_training.num_train_epochs": 1}


@pytest.fixture(scope="module")
def corpus(tiny_synthsign, tmp_path_factory):
    evaluators = tmp_path_factory.mktemp("evaluate-evaluators")
    train_evaluators(str(tiny_synthsign), str(evaluators), config="tiny", seed=0, **QUICK)
    rows = split_rows(load_corpus(str(tiny_synthsign))["test"], "test")
    return {"data": tiny_synthsign, "evaluators": evaluators, "rows": rows, "spec": get_skeleton("smplx133")}


def write_folder(folder, rows, fps=None, transform=lambda p: p):
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        extra = {} if fps is None else {"fps": np.array(fps)}
        np.savez(folder / f"{r['id']}.npz", poses=transform(np.asarray(r["poses"], np.float32)), **extra)
    return folder


def test_reference_poses_as_files_score_like_the_ground_truth_row(corpus, tmp_path):
    preds = write_folder(tmp_path / "preds", corpus["rows"])
    (preds / "notes.txt").write_text("not a prediction")
    np.save(preds / "not-a-sample.npy", np.zeros((3, 133), np.float32))
    reversed_ = write_folder(tmp_path / "reversed", corpus["rows"], transform=lambda p: p[::-1])
    results = evaluate_predictions(
        {"Mine": str(preds), "Reversed": str(reversed_)}, str(corpus["data"]), tmp_path / "out",
        evaluator_dir=str(corpus["evaluators"]), conventions="soke,progressive-transformers,slrtp,pose-evaluation",
        num_examples=0, show_progress=False,
    )
    rows = {s["name"]: s for s in results["systems"]}
    assert list(rows)[0] == GROUND_TRUTH and list(rows)[-2:] == ["Mine", "Reversed"] and "Mean pose" in rows
    mine, truth = rows["Mine"]["metrics"], rows[GROUND_TRUTH]["metrics"]
    for key in ("bleu4", "rouge_l", "siclip_r1", "dtw_jpe_body", "pt_dtw", "slrtp_dtw_mje", "pose_eval_dtw"):
        assert mine[key] == pytest.approx(truth[key]), key
    assert mine["dtw_jpe_body"] == 0 and mine["slrtp_wrist_path_ratio"] == pytest.approx(1.0)
    assert rows["Mean pose"]["metrics"]["pt_dtw"] > 0
    assert rows["Reversed"]["metrics"]["dtw_jpe_body"] > 0 and rows["Reversed"]["metrics"]["pose_eval_dtw"] > 0
    md = (tmp_path / "out" / "results.md").read_text()
    for header in ("SOKE DTW-JPE Body ↓ (mm)", "PT DTW (L1 / ref. frame) ↓ (m)", "SLRTP DTW-MJE @12fps ↓ (m)",
                   "pose-evaluation DTW ↓ (shoulder widths)"):
        assert header in md
    report = json.loads((tmp_path / "out" / "predictions_report.json").read_text())[0]
    assert report["name"] == "Mine"
    assert report["extra"] == ["not-a-sample"] and report["ignored_files"] == ["notes.txt"]
    assert report["missing"] == [] and report["unreadable"] == {}


def test_layouts_frame_rates_and_missing_policy(corpus, tmp_path):
    rows, spec = corpus["rows"], corpus["spec"]
    ids = [r["id"] for r in rows]
    by_id, _ = load_predictions(write_folder(tmp_path / "f", rows), "f", ids, spec, 24.0)
    # one .npz keyed by id, and a Parquet file, read the same
    np.savez(tmp_path / "all.npz", **{r["id"]: np.asarray(r["poses"]) for r in rows})
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"id": r["id"], "poses": np.asarray(r["poses"]).tolist()} for r in rows]),
                   tmp_path / "all.parquet")
    for source in ("all.npz", "all.parquet"):
        other, report = load_predictions(tmp_path / source, "x", ids, spec, 24.0)
        assert report.layout == source.split(".")[1] and all(np.allclose(other[i], by_id[i]) for i in ids)
    # sequences at 12 fps are resampled to the dataset's 24 fps
    half, report = load_predictions(write_folder(tmp_path / "h", rows, fps=12.0, transform=lambda p: p[::2]), "h",
                                    ids, spec, 24.0)
    assert report.resampled == {i: 12.0 for i in ids}
    assert abs(half[ids[0]].shape[0] - by_id[ids[0]].shape[0]) <= 2
    # a missing sample stops the run with the list, unless --allow-missing scores the covered ones
    (tmp_path / "f" / f"{ids[1]}.npz").unlink()
    with pytest.raises(ValueError, match=f"1 of the 2 'test' samples.*1 missing \\({ids[1]}\\).*--allow-missing"):
        evaluate_predictions({"f": str(tmp_path / "f")}, str(corpus["data"]), tmp_path / "o1",
                             evaluator_dir=str(corpus["evaluators"]))
    assert json.loads((tmp_path / "o1" / "predictions_report.json").read_text())[0]["missing"] == [ids[1]]
    results = evaluate_predictions({"f": str(tmp_path / "f")}, str(corpus["data"]), tmp_path / "o2",
                                   evaluator_dir=str(corpus["evaluators"]), allow_missing=True, num_examples=0,
                                   show_progress=False)
    assert results["num_samples"] == 1 and any("1 of 2 samples" in n for n in results["notes"])


def expect_error(corpus, tmp_path, make, match):
    folder = tmp_path / "bad"
    folder.mkdir()
    write_folder(folder, corpus["rows"][1:])
    make(folder, corpus["rows"][0]["id"])
    with pytest.raises(ValueError, match=match):
        evaluate_predictions({"bad": str(folder)}, str(corpus["data"]), tmp_path / "out",
                             evaluator_dir=str(corpus["evaluators"]))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d, i: np.save(d / f"{i}.npy", np.zeros((5, 7), np.float32)),
         "wrong frame width: 7 features per frame, but the dataset's skeleton 'smplx133' has 133"),
        (lambda d, i: np.save(d / f"{i}.npy", np.where(np.arange(5)[:, None] == 3, np.nan, np.zeros((5, 133)))),
         "NaN or inf values in 1 frame\\(s\\), the first at frame 3"),
        (lambda d, i: (d / f"{i}.npz").write_bytes(b"not a zip file"), "1 unreadable"),
        (lambda d, i: (d / f"{i}.npz").write_bytes(b"PK\x03\x04cut"), "Unreadable .*BadZipFile"),
        (lambda d, i: (d / f"{i}.pose").write_bytes(b"\x00\x01"), "mixes .pose files \\(1, .* two `--predictions`"),
        (lambda d, i: np.savez(d / f"{i}.npz", poses=np.zeros((5, 216), np.float32), representation="holistic"),
         "skeleton 'holistic' cannot be converted to the dataset's 'smplx133'"),
    ],
    ids=["width", "nan", "unreadable", "truncated-zip", "pose-mixed-with-features", "no-mapping"],
)
def test_bad_predictions_are_named(corpus, tmp_path, make, match):
    expect_error(corpus, tmp_path, make, match)


def test_bad_sources_and_options(corpus, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    data, ev = str(corpus["data"]), str(corpus["evaluators"])
    with pytest.raises(ValueError, match="no prediction files .* \\(it is empty\\)"):
        evaluate_predictions({"e": str(tmp_path / "empty")}, data, tmp_path / "o", evaluator_dir=ev)
    write_folder(tmp_path / "other", [{"id": "nope", "poses": np.zeros((3, 133))}])
    with pytest.raises(ValueError, match="none of its 1 ids matches a sample of the split"):
        evaluate_predictions({"o": str(tmp_path / "other")}, data, tmp_path / "o", evaluator_dir=ev)
    with pytest.raises(ValueError, match="`conventions` has unknown entries \\['dtw-jpe'\\]"):
        evaluate_predictions({"o": str(tmp_path / "other")}, data, tmp_path / "o", conventions="soke,dtw-jpe")
    assert parse_prediction_sources(["runs/mine/", "B=x.npz"]) == {"mine": "runs/mine/", "B": "x.npz"}
    bench = build_parser().parse_args(["benchmark", "--dataset", data, "--out", "o", "--conventions", "slrtp"])
    assert bench.conventions == "slrtp"
    # the command line reports the error in one line
    code = hf_sign(["evaluate", "--predictions", str(tmp_path / "empty"), "--dataset", data, "--out",
                    str(tmp_path / "o"), "--evaluator", ev])
    assert code == 2 and "no prediction files" in capsys.readouterr().err


def test_reads_spoken_to_signed_pose_output(tmp_path):
    """A `.pose` written by another tool (spoken-to-signed's reduced holistic: no nose, eyes, ears) reads back as
    `holistic` features, its absent keypoints counted and placed on their nearest detected ancestor."""
    import contextlib
    import io

    lookup_module = pytest.importorskip("spoken_to_signed.gloss_to_pose.lookup.fingerspelling_lookup")
    with contextlib.redirect_stdout(io.StringIO()):
        pose = lookup_module.FingerspellingPoseLookup().lookup("ab", "ab", "en", "ase").pose
    with open(tmp_path / "fs-ase-word-ab.pose", "wb") as fh:
        pose.write(fh)
    spec = get_skeleton("holistic")
    features, fps, filled = read_pose_prediction(tmp_path / "fs-ase-word-ab.pose", spec)
    assert features.shape == (len(pose.body.data), spec.feature_dim) and fps == pose.body.fps
    assert filled >= 5  # nose, eyes and ears are not in the reduced POSE_LANDMARKS
    joints = features.reshape(len(features), -1, 3)
    names = list(spec.position_joint_names)
    assert np.allclose(joints[:, names.index("nose")], joints[:, names.index("neck")])
    by_id, report = load_predictions(tmp_path, "s2s", ["fs-ase-word-ab", "x"], spec, 25.0)
    assert list(by_id) == ["fs-ase-word-ab"] and report.missing == ["x"] and report.filled_keypoints


def write_pose_folder(folder, rows, spec, transform=lambda p: p):
    """One `.pose` per sample, written as the demo writes its `.pose` (`render_to_file` of the features)."""
    for r in rows:
        render_to_file(transform(np.asarray(r["poses"], np.float32)), spec, folder / f"{r['id']}.pose", fps=24.0)
    return folder


def test_demo_pose_files_are_scored_on_positions_by_the_cli(corpus, tmp_path, capsys):
    """`.pose` files of `smplx133` signing (no pelvis, spine, neck, collars, head) are scored on the position columns:
    the references' own poses score 0, perturbed ones do not, the feature columns are '–' with the note."""
    rows, spec = corpus["rows"], corpus["spec"]
    own = write_pose_folder(tmp_path / "own", rows, spec)
    noise = np.random.default_rng(0)
    noisy = write_pose_folder(tmp_path / "noisy", rows, spec, lambda p: p + 0.2 * noise.standard_normal(p.shape))
    out = tmp_path / "out"
    code = hf_sign(["evaluate", "--predictions", f"Own={own}", "--predictions", f"Noisy={noisy}", "--dataset",
                    str(corpus["data"]), "--out", str(out), "--evaluator", str(corpus["evaluators"]), "--conventions",
                    "soke,progressive-transformers,slrtp,pose-evaluation", "--num-examples", "0"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    by_name = {s["name"]: s["metrics"] for s in results["systems"]}
    mine, noisy_m, truth = by_name["Own"], by_name["Noisy"], by_name[GROUND_TRUTH]
    assert mine["positions_only"] and mine["num_position_joints"] == 46  # 54 joints less the 8 without a point
    for key in ("dtw_jpe_body", "dtw_jpe_hands", "mpjpe_body", "mpjpe_hands"):  # millimetres
        assert mine[key] == pytest.approx(0, abs=0.05), key
        assert noisy_m[key] > 5, key
    for key in ("dtw_jpe_body_sum", "dtw_jpe_hands_sum", "pt_dtw", "slrtp_dtw_mje", "pose_eval_dtw"):
        assert mine[key] == pytest.approx(0, abs=1e-3), key
        assert noisy_m[key] > 1e-2, key
    assert mine["slrtp_wrist_path_ratio"] == pytest.approx(1, abs=1e-3)
    for key in ("bleu4", "rouge_l", "fid", "siclip_r1", "siclip_r5", "sibleu"):
        assert mine[key] is None and noisy_m[key] is None, key
    assert truth["bleu4"] is not None and truth["dtw_jpe_body"] == 0 and by_name["Mean pose"]["fid"] is not None
    md = (out / "results.md").read_text()
    own_rows = [line for line in md.splitlines() if line.startswith("| Own ‡ |")]
    assert len(own_rows) == 4  # one per table
    assert own_rows[0] == "| Own ‡ | – | – | – | – | – |"  # back-translation
    assert own_rows[1].count("0.00") == 6  # the SOKE DTW-JPE and MPJPE columns
    assert own_rows[2].startswith("| Own ‡ | – | – | – | – |")  # FID, SiCLIP, SiBLEU
    note = next(n for n in results["notes"] if n.startswith("‡"))
    assert "shoulders' midpoint" in note and "Own: 46" in note and "'–'" in note


def test_pose_files_that_cannot_be_mapped_are_named(corpus, tmp_path):
    rows, spec = corpus["rows"], corpus["spec"]
    sid = rows[0]["id"]
    positions = spec.to_positions(np.asarray(rows[0]["poses"], np.float32))

    def pixels_only(folder):  # a .pose without POSE_WORLD_LANDMARKS, as spoken-to-signed writes
        pose = positions_to_pose(positions, spec, 24.0)
        pose = pose.get_components([c.name for c in pose.header.components if c.name != "POSE_WORLD_LANDMARKS"])
        with open(folder / f"{sid}.pose", "wb") as fh:
            pose.write(fh)

    holistic = get_skeleton("holistic")
    pixels = 250 + 100 * np.random.default_rng(0).random((5, holistic.num_position_joints, 3))
    for make, match in (
        (pixels_only, "lacks \\(components .*pixel keypoints cannot be turned into metres"),
        (lambda d: save_pose(pixels, holistic, 24.0, d / f"{sid}.pose"), "does not hold metres: the median shoulder"),
    ):
        folder = write_pose_folder(tmp_path / make.__name__, rows[1:], spec)
        make(folder)
        with pytest.raises(ValueError, match=f"1 unreadable.*Unreadable {sid}: .*{match}"):
            evaluate_predictions({"p": str(folder)}, str(corpus["data"]), tmp_path / "o",
                                 evaluator_dir=str(corpus["evaluators"]))
    with pytest.raises(ValueError, match="skeleton is 'pt50'; .pose predictions need a 'holistic'"):
        read_pose_prediction(tmp_path / "pixels_only" / f"{sid}.pose", get_skeleton("pt50"))

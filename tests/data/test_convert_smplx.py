"""SMPL-X pickle converters (How2Sign / CSL-Daily / PHOENIX-2014T, SOKE layout) and frame-rate resampling."""

import csv
import gzip
import json
import pickle

import numpy as np
import pytest

from hf_sign.data.converters.base import ConversionError
from hf_sign.data.converters.smplx_pickles import convert_smplx_corpus
from hf_sign.data.resample import resample_sequence, resampled_length, subsample_indices

SIZES = {
    "smplx_root_pose": 3, "smplx_body_pose": 63, "smplx_lhand_pose": 45, "smplx_rhand_pose": 45,
    "smplx_jaw_pose": 3, "smplx_shape": 10, "smplx_expr": 10,
}


def make_frame(rng):
    frame = {k: rng.normal(scale=0.3, size=n).astype(np.float32) for k, n in SIZES.items()}
    frame["cam_trans"] = rng.normal(size=3).astype(np.float32)  # extra keys are ignored
    return frame


def expected_feature(frame):
    return np.concatenate([frame["smplx_body_pose"][33:63], frame["smplx_lhand_pose"], frame["smplx_rhand_pose"],
                           frame["smplx_jaw_pose"], frame["smplx_expr"]])


def write_video(folder, file_names, rng):
    folder.mkdir(parents=True)
    frames = []
    for name in file_names:
        frame = make_frame(rng)
        with open(folder / name, "wb") as fh:
            pickle.dump(frame, fh)
        frames.append(frame)
    return frames


def write_gz(path, obj):
    with gzip.open(path, "wb") as fh:
        pickle.dump(obj, fh)


def write_how2sign_csv(path, rows, delimiter):
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = [
        "VIDEO_ID",
        "VIDEO_NAME",
        "SENTENCE_ID",
        "SENTENCE_NAME",
        "START_REALIGNED",
        "END_REALIGNED",
        "SENTENCE",
        "fps",
    ]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(cols)
        for name, text, fps in rows:
            w.writerow([name[:5], name[:8], name + "_s", name, 0.0, 1.0, text, fps])


@pytest.fixture()
def how2sign(tmp_path):
    """SRC/{split}/re_aligned/how2sign_realigned_{split}_preprocessed_fps.csv
    + SRC/{split}/poses/<name>/<name>_<i>_3D.pkl."""
    rng = np.random.default_rng(0)
    src = tmp_path / "How2Sign"
    videos = {}
    spec = {
        "train": [
            ("vidA_0-1-rgb_front", "Hello there, friend.", 30.0, 10),
            ("vidB_3-2-rgb_front", "Second one.", 24.0, 5),
        ],
        "val": [("vidC_1-1-rgb_front", "A validation sentence.", 29.97, 6)],
        "test": [("vidD_2-1-rgb_front", "A test sentence.", 24.0, 4)],
    }
    for split, rows in spec.items():
        # SOKE's tables are comma-separated, How2Sign's own ones tab-separated: cover both.
        write_how2sign_csv(src / split / "re_aligned" / f"how2sign_realigned_{split}_preprocessed_fps.csv",
                           [(n, t, f) for n, t, f, _ in rows], delimiter="," if split != "val" else "\t")
        for name, _, fps, t in rows:
            videos[name] = write_video(src / split / "poses" / name, [f"{name}_{i}_3D.pkl" for i in range(t)], rng)
    return src, videos


@pytest.fixture()
def csl(tmp_path):
    """SRC/csl_clean.{train,val,test} (gzip pickles) + SRC/poses/<name>/<frame>.pkl."""
    rng = np.random.default_rng(1)
    src = tmp_path / "CSL-Daily"
    src.mkdir()
    videos = {}
    names = {
        "train": ["S000001_P0000_T00", "S000002_P0001_T00"],
        "val": ["S000003_P0002_T00"],
        "test": ["S000004_P0003_T00"],
    }
    for split, split_names in names.items():
        anns = []
        for j, name in enumerate(split_names):
            t = 10 if j == 0 else 5
            # unpadded numbers: 10.pkl must come after 9.pkl
            videos[name] = write_video(src / "poses" / name, [f"{i}.pkl" for i in range(t)], rng)
            anns.append(
                {
                    "name": name,
                    "signer": name.split("_")[1],
                    "gloss": "我 喜欢 书",
                    "text": "我喜欢书。",
                    "num_frames": t,
                }
            )
        write_gz(src / f"csl_clean.{split}", anns)
    return src, videos


@pytest.fixture()
def phoenix(tmp_path):
    """SRC/phoenix14t.{train,dev,test} (gzip pickles) + SRC/<split>/<video>/imagesNNNN.pkl."""
    rng = np.random.default_rng(2)
    src = tmp_path / "Phoenix_2014T"
    src.mkdir()
    videos = {}
    for split, n in {"train": 2, "dev": 1, "test": 1}.items():
        anns = []
        for j in range(n):
            name = f"{split}/01April_2010_Thursday_heute-{j}"
            videos[name] = write_video(src / name, [f"images{i:04d}.pkl" for i in range(1, 6)], rng)
            anns.append(
                {"name": name, "signer": "Signer01", "gloss": "JETZT WETTER MORGEN", "text": "und nun das wetter ."}
            )
        write_gz(src / f"phoenix14t.{split}", anns)
    return src, videos


# ------------------------------------------------------------------------------------- resampling
def test_resample_soke_subsample_rule():
    x = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    idx = subsample_indices(10, 30, 24)  # SOKE: count = int(24 * 10 / 30) = 8, frame floor(i * 10 / 8)
    np.testing.assert_array_equal(idx, [0, 1, 2, 3, 5, 6, 7, 8])
    np.testing.assert_array_equal(resample_sequence(x, 30, 24, kind="subsample")[:, 0], idx)
    assert resampled_length(6, 29.97, 24) == 4


def test_resample_linear_and_nearest():
    x = np.arange(10, dtype=np.float64)[:, None]
    lin = resample_sequence(x, 30, 24, kind="linear")
    np.testing.assert_allclose(lin[:, 0], np.arange(8) * 1.25)
    near = resample_sequence(x, 30, 24, kind="nearest")
    np.testing.assert_array_equal(near[:, 0], np.floor(np.arange(8) * 1.25 + 0.5))
    up = resample_sequence(x[:4], 12, 24, kind="linear")  # upsampling: midpoints, clamped at the end
    np.testing.assert_allclose(up[:, 0], [0, 0.5, 1, 1.5, 2, 2.5, 3, 3])
    np.testing.assert_array_equal(resample_sequence(x, 25, 25), x)
    with pytest.raises(ValueError, match="kind"):
        resample_sequence(x, 30, 24, kind="cubic")
    with pytest.raises(ValueError, match="src_fps"):
        resample_sequence(x, 0, 24)


# -------------------------------------------------------------------------------- good conversions
def test_how2sign_values_resampling_and_load_dataset(how2sign, tmp_path):
    import datasets

    src, videos = how2sign
    out = tmp_path / "out"
    dd, skipped = convert_smplx_corpus("how2sign", src, out)
    assert skipped == []
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert {s: len(loaded[s]) for s in loaded} == {"train": 2, "validation": 1, "test": 1}
    row = loaded["train"][0]
    assert row["id"] == "vidA_0-1-rgb_front" and row["text"] == "Hello there, friend."
    assert row["gloss"] == [] and row["language"] == "ase" and row["representation"] == "smplx133"
    # 10 frames at 30 fps -> 8 frames at 24 fps, SOKE's picks 0,1,2,3,5,6,7,8
    assert row["fps"] == 24.0 and row["num_frames"] == 8
    expected = np.stack([expected_feature(videos["vidA_0-1-rgb_front"][i]) for i in (0, 1, 2, 3, 5, 6, 7, 8)])
    np.testing.assert_array_equal(np.asarray(row["poses"], dtype=np.float32), expected)
    # exact slices: upper body = body_pose[33:63], then hands, jaw, expression
    f0 = videos["vidA_0-1-rgb_front"][0]
    p0 = np.asarray(row["poses"][0], dtype=np.float32)
    np.testing.assert_array_equal(p0[:30], f0["smplx_body_pose"][33:63])
    np.testing.assert_array_equal(p0[30:75], f0["smplx_lhand_pose"])
    np.testing.assert_array_equal(p0[75:120], f0["smplx_rhand_pose"])
    np.testing.assert_array_equal(p0[120:123], f0["smplx_jaw_pose"])
    np.testing.assert_array_equal(p0[123:133], f0["smplx_expr"])
    # 24 fps clips are untouched; the tab-separated val table was read too
    b = loaded["train"][1]
    assert b["fps"] == 24.0 and b["num_frames"] == 5
    np.testing.assert_array_equal(
        np.asarray(b["poses"], np.float32), np.stack([expected_feature(f) for f in videos["vidB_3-2-rgb_front"]])
    )
    assert loaded["validation"][0]["num_frames"] == 4 and loaded["validation"][0]["text"] == "A validation sentence."


def test_csl_natural_frame_order_resampling_and_native_rate(csl, tmp_path):
    src, videos = csl
    dd, _ = convert_smplx_corpus("csl", src, tmp_path / "out")
    row = dd["train"][0]
    assert row["id"] == "S000001_P0000_T00" and row["signer"] == "P0000" and row["language"] == "csl"
    assert row["gloss"] == ["我", "喜欢", "书"] and row["text"] == "我喜欢书。"
    assert row["fps"] == 24.0 and row["num_frames"] == 8  # CSL-Daily is 30 fps
    frames = videos["S000001_P0000_T00"]
    np.testing.assert_array_equal(
        np.asarray(row["poses"], np.float32), np.stack([expected_feature(frames[i]) for i in (0, 1, 2, 3, 5, 6, 7, 8)])
    )
    dd, _ = convert_smplx_corpus("csl", src, tmp_path / "native", target_fps=None)  # SOKE's own CSL handling
    row = dd["train"][0]
    assert row["fps"] == 30.0 and row["num_frames"] == 10
    np.testing.assert_array_equal(
        np.asarray(row["poses"], np.float32), np.stack([expected_feature(f) for f in frames])
    )


def test_phoenix_smplx(phoenix, tmp_path):
    import datasets

    src, videos = phoenix
    dd, _ = convert_smplx_corpus("phoenix-smplx", src, tmp_path / "out", target_fps=None)
    loaded = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    row = loaded["validation"][0]
    assert row["id"] == "dev/01April_2010_Thursday_heute-0" and row["language"] == "gsg"
    assert row["gloss"] == ["JETZT", "WETTER", "MORGEN"] and row["signer"] == "Signer01"
    assert row["fps"] == 25.0 and row["num_frames"] == 5
    np.testing.assert_array_equal(np.asarray(row["poses"], np.float32),
                                  np.stack([expected_feature(f) for f in videos["dev/01April_2010_Thursday_heute-0"]]))
    dd, _ = convert_smplx_corpus("phoenix-smplx", src, tmp_path / "out24")  # 25 -> 24 fps: int(24*5/25) = 4 frames
    assert dd["train"][0]["num_frames"] == 4 and dd["train"][0]["fps"] == 24.0


# --------------------------------------------------------------------------------------- bad files
def _corrupt(kind, path):
    frame = pickle.loads(path.read_bytes())
    if kind == "nan":
        frame["smplx_lhand_pose"][4] = np.nan
    elif kind == "inf":
        frame["smplx_expr"][0] = np.inf
    elif kind == "wrong_dim":
        frame["smplx_rhand_pose"] = np.zeros(42, np.float32)
    elif kind == "missing_key":
        del frame["smplx_jaw_pose"]
    elif kind == "not_dict":
        frame = [1, 2, 3]
    if kind == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(pickle.dumps(frame))


@pytest.mark.parametrize(
    "kind, pattern",
    [
        ("nan", r"S000002_P0001_T00/3\.pkl \(frame 3\): 'smplx_lhand_pose' has NaN/inf"),
        ("inf", r"S000002_P0001_T00/3\.pkl \(frame 3\): 'smplx_expr' has NaN/inf"),
        ("wrong_dim", r"S000002_P0001_T00/3\.pkl \(frame 3\): 'smplx_rhand_pose' has shape \(42,\).*expected 45"),
        ("missing_key", r"S000002_P0001_T00/3\.pkl \(frame 3\): missing key 'smplx_jaw_pose'"),
        ("not_dict", r"S000002_P0001_T00/3\.pkl \(frame 3\): expected a dict"),
        ("truncated", r"S000002_P0001_T00/3\.pkl is truncated or not a readable pickle"),
    ],
)
def test_bad_frame_is_named_and_skippable(csl, tmp_path, kind, pattern):
    src, _ = csl
    _corrupt(kind, src / "poses" / "S000002_P0001_T00" / "3.pkl")
    with pytest.raises(ConversionError, match=pattern):
        convert_smplx_corpus("csl", src, tmp_path / "out", target_fps=None)
    dd, skipped = convert_smplx_corpus("csl", src, tmp_path / "out2", skip_invalid=True, target_fps=None)
    assert len(skipped) == 1 and skipped[0]["split"] == "train" and skipped[0]["item"] == "poses/S000002_P0001_T00"
    assert "3.pkl" in skipped[0]["error"]
    assert json.loads((tmp_path / "out2" / "skipped.jsonl").read_text()) == skipped[0]
    assert [r["id"] for r in dd["train"]] == ["S000001_P0000_T00"] and len(dd["test"]) == 1


def test_empty_and_missing_videos(csl, tmp_path):
    src, _ = csl
    for f in (src / "poses" / "S000002_P0001_T00").iterdir():
        f.unlink()
    with pytest.raises(ConversionError, match=r"S000002_P0001_T00 has no frame files.*empty video"):
        convert_smplx_corpus("csl", src, tmp_path / "out")
    (src / "poses" / "S000002_P0001_T00").rmdir()
    with pytest.raises(ConversionError, match=r"missing video folder .*S000002_P0001_T00"):
        convert_smplx_corpus("csl", src, tmp_path / "out")
    dd, skipped = convert_smplx_corpus("csl", src, tmp_path / "out", skip_invalid=True)
    assert [s["item"] for s in skipped] == ["poses/S000002_P0001_T00"] and len(dd["train"]) == 1


def test_how2sign_missing_frame_file_is_named(how2sign, tmp_path):
    src, _ = how2sign
    (src / "train" / "poses" / "vidA_0-1-rgb_front" / "vidA_0-1-rgb_front_4_3D.pkl").unlink()
    with pytest.raises(ConversionError, match=r"missing frame file .*vidA_0-1-rgb_front_4_3D\.pkl \(frame 4\)"):
        convert_smplx_corpus("how2sign", src, tmp_path / "out")


def test_bad_annotation_files_are_named(phoenix, csl, how2sign, tmp_path):
    src, _ = phoenix
    data = (src / "phoenix14t.dev").read_bytes()
    (src / "phoenix14t.dev").write_bytes(data[: len(data) // 2])
    for skip in (False, True):
        with pytest.raises(ConversionError, match=r"phoenix14t\.dev is truncated or not a gzip-compressed pickle"):
            convert_smplx_corpus("phoenix-smplx", src, tmp_path / "out", skip_invalid=skip)
    csl_src, _ = csl
    write_gz(csl_src / "csl_clean.val", {"not": "a list"})
    with pytest.raises(ConversionError, match=r"csl_clean\.val must hold a list"):
        convert_smplx_corpus("csl", csl_src, tmp_path / "out")
    h2s_src, _ = how2sign
    table = h2s_src / "test" / "re_aligned" / "how2sign_realigned_test_preprocessed_fps.csv"
    table.write_text("SENTENCE_NAME,SENTENCE\nvidD_2-1-rgb_front,hi\n")
    with pytest.raises(
        ConversionError, match=r"how2sign_realigned_test_preprocessed_fps\.csv lacks column\(s\) \['fps'\]"
    ):
        convert_smplx_corpus("how2sign", h2s_src, tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConversionError, match="no annotation file found"):
        convert_smplx_corpus("csl", tmp_path / "empty", tmp_path / "out3")
    with pytest.raises(ValueError, match="Unknown SMPL-X corpus"):
        convert_smplx_corpus("signavatars", csl_src, tmp_path / "out")

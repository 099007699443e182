"""Progressive Transformers `.skels` converter on fixtures written in PT's exact text format."""

import json

import datasets
import numpy as np
import pytest

from hf_sign.data.converters.base import ConversionError
from hf_sign.data.converters.phoenix_skels import convert_phoenix_skels, parse_skels_line

GLOSS = {"train": ["DRUCK TIEF KOMMEN", "MORGEN SONNE"], "dev": ["REGEN NORD"], "test": ["WIND STARK"]}
TEXT = {
    "train": ["tiefer luftdruck bestimmt unser wetter .", "morgen sonne ."],
    "dev": ["regen im norden ."],
    "test": ["starker wind ."],
}


def skels_line(frames: np.ndarray) -> str:
    """PT's format: per frame 150 coordinates then the counter, all frames on one line."""
    t = len(frames)
    values = []
    for i, frame in enumerate(frames):
        values += [f"{v:.5f}" for v in frame] + [f"{i / max(t - 1, 1):.4f}"]
    return " ".join(values)


def write_split(src, stem, sequences, gloss=None, text=None, files=None):
    (src / f"{stem}.skels").write_text("".join(skels_line(s) + "\n" for s in sequences), encoding="utf-8")
    (src / f"{stem}.gloss").write_text("".join(g + "\n" for g in (gloss or GLOSS[stem])), encoding="utf-8")
    (src / f"{stem}.text").write_text("".join(t + "\n" for t in (text or TEXT[stem])), encoding="utf-8")
    names = files or [f"{stem}/video-{i}" for i in range(len(sequences))]
    (src / f"{stem}.files").write_text("".join(n + "\n" for n in names), encoding="utf-8")


@pytest.fixture()
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "pt"
    src.mkdir()
    seqs = {stem: [rng.uniform(-0.5, 0.5, size=(t, 150)).round(5) for t in lens]
            for stem, lens in {"train": (3, 5), "dev": (4,), "test": (2,)}.items()}
    for stem, s in seqs.items():
        write_split(src, stem, s)
    return src, seqs


def test_convert_values_and_load_dataset(corpus, tmp_path):
    import datasets

    src, seqs = corpus
    out = tmp_path / "out"
    dd, skipped = convert_phoenix_skels(src, out)
    assert skipped == [] and not (out / "skipped.jsonl").exists()
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "validation", "test"}
    assert [len(loaded[s]) for s in ("train", "validation", "test")] == [2, 1, 1]
    row = loaded["train"][1]
    assert row["id"] == "train/video-1"
    assert row["gloss"] == ["MORGEN", "SONNE"] and row["text"] == "morgen sonne ."
    assert row["language"] == "gsg" and row["representation"] == "pt50" and row["fps"] == 25.0
    assert row["num_frames"] == 5
    np.testing.assert_allclose(np.asarray(row["poses"]), seqs["train"][1], atol=1e-6)  # counter dropped
    assert loaded["validation"][0]["id"] == "dev/video-0"
    np.testing.assert_allclose(np.asarray(loaded["validation"][0]["poses"]), seqs["dev"][0], atol=1e-6)


def test_parse_drops_counter_and_checks_length(tmp_path):
    frames = np.arange(300, dtype=np.float64).reshape(2, 150) / 1000
    out = parse_skels_line(skels_line(frames), "x.skels", 1)
    np.testing.assert_allclose(out, frames, atol=1e-6)
    with pytest.raises(ConversionError, match=r"x\.skels line 7 has 303 values.*frame 2 is incomplete \(1 values\)"):
        parse_skels_line(skels_line(frames) + " 0.1", "x.skels", 7)


@pytest.mark.parametrize(
    "kind, pattern",
    [
        ("short", r"train\.skels line 2 has \d+ values, not a multiple of 151.*frame 4 is incomplete"),
        ("nan", r"train\.skels line 2: NaN/inf values in frame 1"),
        ("inf", r"train\.skels line 2: NaN/inf values in frame 1"),
        ("empty", r"train\.skels line 2 is empty"),
        ("word", r"train\.skels line 2: value 3 \('abc', frame 0\) is not a number"),
    ],
)
def test_bad_line_is_named_and_skippable(corpus, tmp_path, kind, pattern):
    src, _ = corpus
    lines = (src / "train.skels").read_text().split("\n")
    tokens = lines[1].split()
    if kind == "short":
        tokens = tokens[:-1]
    elif kind in ("nan", "inf"):
        tokens[151 + 7] = kind
    elif kind == "empty":
        tokens = []
    elif kind == "word":
        tokens[3] = "abc"
    lines[1] = " ".join(tokens)
    (src / "train.skels").write_text("\n".join(lines))
    with pytest.raises(ConversionError, match=pattern):
        convert_phoenix_skels(src, tmp_path / "out")

    dd, skipped = convert_phoenix_skels(src, tmp_path / "out2", skip_invalid=True)
    assert [s["split"] for s in skipped] == ["train"] and "train.skels line 2" in skipped[0]["error"]
    report = [json.loads(line) for line in (tmp_path / "out2" / "skipped.jsonl").read_text().splitlines()]
    assert report == skipped
    assert [r["id"] for r in dd["train"]] == ["train/video-0"] and len(dd["validation"]) == 1


def test_mismatched_line_counts_are_named(corpus, tmp_path):
    src, _ = corpus
    (src / "dev.gloss").write_text("REGEN NORD\nEXTRA\n")
    for skip in (False, True):  # a split that cannot be aligned stops the conversion either way
        with pytest.raises(ConversionError, match=r"'dev'.*different line counts.*dev\.gloss'?: 2"):
            convert_phoenix_skels(src, tmp_path / "out", skip_invalid=skip)


def test_missing_companion_file_and_empty_id(corpus, tmp_path):
    src, _ = corpus
    (src / "test.text").unlink()
    with pytest.raises(ConversionError, match=r"missing .*test\.text"):
        convert_phoenix_skels(src, tmp_path / "out")
    (src / "test.text").write_text("starker wind .\n")
    (src / "test.files").write_text("\n")
    with pytest.raises(ConversionError, match=r"test\.files line 1 is empty"):
        convert_phoenix_skels(src, tmp_path / "out")


def test_no_data_is_an_error(tmp_path):
    with pytest.raises(ConversionError, match="no Progressive Transformers data"):
        convert_phoenix_skels(tmp_path, tmp_path / "out")


def test_missing_split_warns_and_is_left_out(corpus, tmp_path):
    src, _ = corpus
    for ext in ("skels", "gloss", "text", "files"):
        (src / f"test.{ext}").unlink()
    with pytest.warns(UserWarning, match="test"):
        dd, _ = convert_phoenix_skels(src, tmp_path / "out")
    assert "test" not in dd and len(dd["train"]) == 2
    loaded = datasets.load_dataset(str(tmp_path / "out"))
    assert set(loaded) == {"train", "validation"}
    assert "| test | 0 |" in (tmp_path / "out" / "README.md").read_text()

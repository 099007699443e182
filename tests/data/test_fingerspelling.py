"""The fingerspelling corpus built from the `spoken-to-signed` lexicon (real clips, small subsets)."""

import sys

import numpy as np
import pytest
from datasets import load_dataset

from hf_sign.data import fingerspelling as fs, fingerspelling_clips as fs_clips

LANGS = ["ase", "gsg"]


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "spoken_to_signed", None)  # makes `import spoken_to_signed` fail
    with pytest.raises(ImportError, match=r'pip install "hf-sign\[fingerspelling\]"'):
        fs_clips.lexicon_root()
    with pytest.raises(ImportError, match=r"hf-sign\[fingerspelling\]"):
        fs.generate_fingerspelling(languages=["ase"], words_per_language=3)


def test_spelling_rules_without_clips():
    de = ["A", "C", "H", "S", "SCH", "U", "L", "E", "ä", "K", "ß", "F"]
    assert [de[i] for i in fs.spell("Schule", de, "de")] == ["SCH", "U", "L", "E"]
    assert [de[i] for i in fs.spell("Käse", de, "de")] == ["K", "ä", "S", "E"]
    assert fs.spell("Öl", de, "de") is None  # no clip for Ö -> the word is not used
    assert fs.spell("Bär", ["B", "A\u0308", "R"], "de") == [0, 1, 2]  # decomposed index letters match
    assert [fs.gloss_of(de[i]) for i in fs.spell("Faß", de, "de")] == ["F", "A", "ß"]
    tr = ["I", "İ", "Ş", "K", "G", "E", "C"]
    assert [tr[i] for i in fs.spell("ışık", tr, "tr")] == ["I", "Ş", "I", "K"]
    assert [tr[i] for i in fs.spell("gece", tr, "tr")] == ["G", "E", "C", "E"]
    assert [tr[i] for i in fs.spell("kişi", tr, "tr")] == ["K", "İ", "Ş", "İ"]
    el = ["Κ", "Ο", "Σ", "Μ"]
    assert [el[i] for i in fs.spell("κόσμος", el, "el")] == ["Κ", "Ο", "Σ", "Μ", "Ο", "Σ"]
    ar = ["ال", "ا", "ل", "م"]
    assert [ar[i] for i in fs.spell("الم", ar, "ar")] == ["ال", "م"]
    assert [ar[i] for i in fs.spell("مال", ar, "ar")] == ["م", "ا", "ل"]  # article only word-initially
    assert fs.gloss_of("ä") == "Ä" and fs.gloss_of("Lj") == "LJ"


def test_word_splits_are_global_and_seeded():
    a, b, c = fs.assign_word_splits(0), fs.assign_word_splits(0), fs.assign_word_splits(1)
    assert a == b and a != c
    assert set(a.values()) == {"train", "validation", "test"}
    assert a["taxi"] in {"train", "validation", "test"}  # one split for a word shared by en and de


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    pytest.importorskip("spoken_to_signed")
    out = tmp_path_factory.mktemp("fingerspelling")
    dd = fs.build_fingerspelling(out, seed=0, languages=LANGS, words_per_language=6)
    return out, dd


def test_build_loads_offline_with_letters_and_words(corpus):
    out, dd = corpus
    loaded = load_dataset(str(out))
    assert set(loaded) == {"train", "validation", "test"}
    train = loaded["train"]
    letters = [r for r in train if "-letter-" in r["id"]]
    assert {r["language"] for r in letters} == set(LANGS)
    assert sum(r["language"] == "ase" for r in letters) == 26
    assert sum(r["language"] == "gsg" for r in letters) == 30
    for r in letters:
        assert r["gloss"] == [fs.gloss_of(r["text"])] and r["gloss_spans"] == [[0, r["num_frames"]]]
    words = [r for split in loaded for r in loaded[split] if "-word-" in r["id"]]
    assert len(words) == 2 * 6
    for split in ("validation", "test"):
        assert sorted(r["language"] for r in loaded[split]) == LANGS  # one held-out word per language
    row = loaded["test"][0]
    assert row["representation"] == "holistic" and row["fps"] == 25.0 and row["signer"] == "fs-lexicon"
    assert row["prompt"] == f'How do you sign "{row["text"]}"?'
    poses = np.asarray(row["poses"], dtype=np.float32)
    assert poses.shape == (row["num_frames"], 216) and np.isfinite(poses).all()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "spoken-to-signed" in card and "0." in card and "| ase | en | 26 |" in card
    assert row["text"] in card  # held-out words are listed


def test_word_spans_tile_the_word_and_follow_letters(corpus):
    _, dd = corpus
    clips = {lang: [c.letter for c in lc] for lang, lc in fs_clips.load_letter_clips(LANGS).items()}
    spoken = {"ase": "en", "gsg": "de"}
    for split in dd:
        for r in dd[split]:
            if "-word-" not in r["id"]:
                continue
            seq = fs.spell(r["text"], clips[r["language"]], spoken[r["language"]])
            assert r["gloss"] == [fs.gloss_of(clips[r["language"]][i]) for i in seq]
            spans = r["gloss_spans"]
            assert len(spans) == len(r["gloss"]) >= 2
            assert spans[0][0] == 0 and spans[-1][1] == r["num_frames"]
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])) and all(s[0] < s[1] for s in spans)


def test_held_out_words_never_in_train_and_deterministic(corpus):
    _, dd = corpus
    train_words = {r["text"].casefold() for r in dd["train"] if "-word-" in r["id"]}
    for split in ("validation", "test"):
        held = {r["text"].casefold() for r in dd[split]}
        assert held and not held & train_words
    assert not {r["text"].casefold() for r in dd["validation"]} & {r["text"].casefold() for r in dd["test"]}
    again = fs.generate_fingerspelling(seed=0, languages=LANGS, words_per_language=6)
    for split in dd:
        assert [r["id"] for r in again[split]] == dd[split]["id"]
        np.testing.assert_array_equal(np.asarray(again[split][-1]["poses"]), np.asarray(dd[split][-1]["poses"]))
    other = fs.generate_fingerspelling(seed=1, languages=LANGS, words_per_language=6)
    assert [r["id"] for r in other["test"]] != dd["test"]["id"]


def test_unknown_language_is_an_error():
    pytest.importorskip("spoken_to_signed")
    with pytest.raises(ValueError, match="xyz"):
        fs.generate_fingerspelling(languages=["xyz"])


@pytest.mark.slow
def test_full_corpus(tmp_path):
    pytest.importorskip("spoken_to_signed")
    dd = fs.build_fingerspelling(tmp_path)
    languages = set(dd["train"]["language"])
    assert len(languages) >= 19 and "fsl" not in languages
    assert len(dd["validation"]) > 50 and len(dd["test"]) > 50

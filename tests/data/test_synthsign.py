"""SynthSign: grammar, lexicon, splits, determinism, schema, the written dataset, and pose plausibility via FK."""

import re

import numpy as np
import pytest

from hf_sign.data.schema import FEATURE_FIELDS
from hf_sign.data.synthsign import (
    DEFAULT_SPLIT_SIZES,
    build_synthsign,
    generate_synthsign,
    get_lexicon,
    heldout_bigrams,
    is_heldout_bigram,
)
from hf_sign.data.synthsign_grammar import (
    FUNCTION_WORDS,
    GRAMMATICAL_GLOSSES,
    align_text_to_gloss,
    text_to_gloss,
    tokenize,
    tokenize_with_spans,
)
from hf_sign.data.synthsign_sentences import SynthSignGrammar
from hf_sign.data.synthsign_signs import _distinct
from hf_sign.skeletons.spec import get_skeleton

SIZES = dict(num_train=30, num_validation=10, num_test=10)
SMPLX133 = get_skeleton("smplx133")
J = {n: i for i, n in enumerate(SMPLX133.position_joint_names)}


def smplx133_to_joints(features):
    """Forward kinematics through the skeleton registry (the proxy body unless HF_SIGN_SMPLX_DIR is set)."""
    return SMPLX133.to_positions(features)


@pytest.fixture(scope="module")
def corpus():
    return generate_synthsign(seed=0, show_progress=False, **SIZES)


@pytest.fixture(scope="module")
def lexicon():
    return get_lexicon()


def _bigrams(gloss):
    return set(zip(gloss[:-1], gloss[1:]))


# ---------------------------------------------------------------------------------------- determinism
def test_same_seed_is_identical_and_other_seed_differs(corpus):
    again = generate_synthsign(seed=0, show_progress=False, **SIZES)
    for split in ("train", "validation", "test"):
        assert [r["text"] for r in corpus[split]] == [r["text"] for r in again[split]]
        for a, b in zip(corpus[split], again[split]):
            assert a["poses"].tobytes() == b["poses"].tobytes()
            assert a["gloss_spans"] == b["gloss_spans"] and a["signer"] == b["signer"]
    other = generate_synthsign(seed=1, show_progress=False, **SIZES)
    assert [r["text"] for r in other["train"]] != [r["text"] for r in corpus["train"]]


def test_default_sizes_are_documented():
    assert DEFAULT_SPLIT_SIZES == {"train": 2000, "validation": 200, "test": 200}


# --------------------------------------------------------------------------------------------- splits
def test_splits_are_disjoint(corpus):
    texts = {s: [r["text"] for r in rows] for s, rows in corpus.items()}
    glosses = {s: [tuple(r["gloss"]) for r in rows] for s, rows in corpus.items()}
    all_texts = sum(texts.values(), [])
    assert len(all_texts) == len(set(all_texts))
    all_glosses = sum(glosses.values(), [])
    assert len(all_glosses) == len(set(all_glosses))
    assert [len(corpus[s]) for s in ("train", "validation", "test")] == [30, 10, 10]


def test_every_test_sentence_has_a_bigram_unseen_in_train(corpus):
    train_bigrams = set().union(*(_bigrams(r["gloss"]) for r in corpus["train"]))
    for r in corpus["test"]:
        assert _bigrams(r["gloss"]) - train_bigrams, r["text"]
        assert heldout_bigrams(r["gloss"], seed=0)
    for split in ("train", "validation"):
        assert not any(heldout_bigrams(r["gloss"], seed=0) for r in corpus[split])


def test_heldout_rule_is_seeded_and_skips_grammatical_glosses():
    glosses = get_lexicon().glosses[:60]
    pairs = [(a, b) for a in glosses for b in glosses if a not in GRAMMATICAL_GLOSSES and b not in GRAMMATICAL_GLOSSES]
    held0 = np.array([is_heldout_bigram(a, b, 0) for a, b in pairs])
    held5 = np.array([is_heldout_bigram(a, b, 5) for a, b in pairs])
    assert 0.07 < held0.mean() < 0.13  # HELDOUT_FRACTION = 0.1
    assert (held0 != held5).any()
    assert not any(is_heldout_bigram("LIKE", g, s) for g in GRAMMATICAL_GLOSSES for s in range(20))


def test_train_covers_test_and_validation_glosses(corpus):
    train_vocab = {g for r in corpus["train"] for g in r["gloss"]}
    for split in ("validation", "test"):
        for r in corpus[split]:
            assert set(r["gloss"]) <= train_vocab, r["gloss"]


# --------------------------------------------------------------------------------------------- schema
def test_rows_follow_the_schema(corpus):
    for split, rows in corpus.items():
        for i, r in enumerate(rows):
            assert set(FEATURE_FIELDS) <= set(r)
            assert r["id"] == f"synthsign-{split}-{i:06d}"
            assert r["language"] == "synth" and r["representation"] == "smplx133" and r["fps"] == 24.0
            assert re.fullmatch(r"signer_0[1-8]", r["signer"])
            assert r["prompt"] == f'How do you sign "{r["text"]}"?'
            poses = r["poses"]
            assert poses.dtype == np.float32 and poses.shape == (r["num_frames"], 133)
            assert np.isfinite(poses).all()
            assert 3 <= len(r["gloss"]) <= 8
            assert 40 <= r["num_frames"] <= 320
            spans = r["gloss_spans"]
            assert len(spans) == len(r["gloss"])
            assert spans[0][0] > 0 and spans[-1][1] < r["num_frames"]  # rest pose before and after
            for (a, b), (c, _) in zip(spans, spans[1:] + [[r["num_frames"], None]]):
                assert 0 < a < b <= c  # increasing, non-overlapping (transitions between them)


def test_text_maps_to_gloss_with_reordering_and_without_function_words(corpus):
    rows = [r for rows in corpus.values() for r in rows]
    for r in rows:
        assert text_to_gloss(r["text"]) == r["gloss"]
        assert not {g.lower() for g in r["gloss"]} & FUNCTION_WORDS
        assert r["text"] == r["text"].lower()
    # some sentence's glosses come in another order than their words
    reordered = 0
    for r in rows:
        words = r["text"].rstrip("?").split()
        pos = [words.index(g.lower()) for g in r["gloss"] if g.lower() in words]
        reordered += pos != sorted(pos)
    assert reordered > 0


@pytest.mark.parametrize(
    "text, gloss",
    [
        ("the weather tomorrow will be rainy", ["TOMORROW", "WEATHER", "RAIN"]),
        ("i do not like coffee", ["ME", "COFFEE", "LIKE", "NOT"]),
        ("he didn't go to school yesterday", ["YESTERDAY", "HE", "SCHOOL", "GO", "NOT"]),
        ("where does your sister work?", ["YOUR", "SISTER", "WORK", "WHERE"]),
        ("how many books do you have?", ["BOOK", "YOU", "HAVE", "HOW-MANY"]),
        ("do you like ice cream?", ["YOU", "ICE-CREAM", "LIKE", "QUESTION"]),
        ("my two red cars are expensive", ["MY", "CAR", "RED", "TWO", "EXPENSIVE"]),
        ("the children eat apples", ["CHILD+", "APPLE+", "EAT"]),
        ("i went to the store because i needed milk", ["ME", "STORE", "GO", "WHY", "ME", "MILK", "NEED"]),
        ("she is tired but i am happy", ["SHE", "TIRED", "BUT", "ME", "HAPPY"]),
    ],
)
def test_text_to_gloss_rules(text, gloss):
    assert text_to_gloss(text) == gloss


def test_context_homonyms_get_different_glosses():
    assert text_to_gloss("the bank is on the right")[-1] == "RIGHT-DIRECTION"
    assert text_to_gloss("you are right")[-1] == "CORRECT"
    assert "BANK-MONEY" in text_to_gloss("i went to the bank")
    assert "RIVER-BANK" in text_to_gloss("i went to the river bank")
    assert text_to_gloss("the bag is light") == ["BAG", "LIGHT-WEIGHT"]
    assert text_to_gloss("my light is broken") == ["MY", "LAMP", "BROKEN"]
    assert text_to_gloss("she bought a light bag") == ["SHE", "BAG", "LIGHT-WEIGHT", "BUY"]
    assert text_to_gloss("i watch the birds") == ["ME", "BIRD+", "WATCH"]
    assert text_to_gloss("i lost my new watch") == ["ME", "MY", "WRISTWATCH", "NEW", "LOSE"]


def test_grammar_samples_agree_with_text_to_gloss():
    grammar, rng = SynthSignGrammar(), np.random.default_rng(123)
    kinds = set()
    for _ in range(400):
        s = grammar.sample(rng)
        assert text_to_gloss(s.text) == s.gloss, s.text
        kinds.add(s.kind)
    assert kinds == {"statement", "yes_no", "wh", "two_clause"}


@pytest.mark.parametrize(
    "text, aligned",
    [
        ("the weather tomorrow will be rainy", [("TOMORROW", "tomorrow"), ("WEATHER", "weather"), ("RAIN", "rainy")]),
        (
            "my dentist doesn't find your ticket",
            [
                ("MY", "my"),
                ("DENTIST", "dentist"),
                ("YOUR", "your"),
                ("TICKET", "ticket"),
                ("FIND", "find"),
                ("NOT", "doesn't"),
            ],
        ),
        ("Do you like ice cream?", [("YOU", "you"), ("ICE-CREAM", "ice cream"), ("LIKE", "like"), ("QUESTION", "?")]),
        (
            "i went to the store because i needed milk",
            [
                ("ME", "i"),
                ("STORE", "store"),
                ("GO", "went"),
                ("WHY", "because"),
                ("ME", "i"),
                ("MILK", "milk"),
                ("NEED", "needed"),
            ],
        ),
        (
            "she is tired but i am happy",
            [("SHE", "she"), ("TIRED", "tired"), ("BUT", "but"), ("ME", "i"), ("HAPPY", "happy")],
        ),
        (
            "how many books do you have?",
            [("BOOK", "books"), ("YOU", "you"), ("HAVE", "have"), ("HOW-MANY", "how many")],
        ),
        (
            "my two red cars are expensive",
            [("MY", "my"), ("CAR", "cars"), ("RED", "red"), ("TWO", "two"), ("EXPENSIVE", "expensive")],
        ),
    ],
)
def test_align_text_to_gloss_points_every_gloss_at_its_words(text, aligned):
    assert [(g, text[a:b].lower()) for g, (a, b) in align_text_to_gloss(text)] == aligned


def test_tokenize_with_spans_matches_tokenize_on_the_corpus(corpus):
    for r in (r for rows in corpus.values() for r in rows):
        tokens = tokenize_with_spans(r["text"])
        assert [t for t, _ in tokens] == tokenize(r["text"])
        assert all(0 <= a < b <= len(r["text"]) for _, (a, b) in tokens)
        assert [g for g, _ in align_text_to_gloss(r["text"])] == r["gloss"]


def test_unknown_inputs_raise():
    with pytest.raises(ValueError, match="xylophone"):
        text_to_gloss("i like the xylophone")
    with pytest.raises(ValueError, match="empty"):
        align_text_to_gloss("  ?")
    with pytest.raises(ValueError, match="NOT-A-GLOSS"):
        get_lexicon().gloss_motion("NOT-A-GLOSS")
    with pytest.raises(ValueError, match="signer_99"):
        get_lexicon().gloss_motion("BOOK", "signer_99")
    with pytest.raises(ValueError, match="num_test"):
        generate_synthsign(num_test=-1, show_progress=False)


# -------------------------------------------------------------------------------------------- lexicon
def test_lexicon_size_and_distinct_parameters(lexicon):
    assert 250 <= len(lexicon.glosses) <= 350
    numbers = ("ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN")  # differ by handshape
    randoms = [s for g, s in lexicon.specs.items() if g not in numbers]
    sigs = [s.signature for s in randoms]
    assert len(set(sigs)) == len(sigs)
    assert len({s.hands for s in lexicon.specs.values()}) == 5
    assert len({s.movement for s in lexicon.specs.values()}) == 8
    assert _distinct(lexicon.specs["BOOK"].signature, lexicon.specs["CAR"].signature, 3)


def test_plural_repeats_the_sign(lexicon):
    single, plural = lexicon.gloss_motion("BOOK"), lexicon.gloss_motion("BOOK+")
    assert plural.shape[1] == 133 and len(plural) > 1.3 * len(single)


def _trajectory(lexicon, gloss, signer="signer_01", n=16):
    pts = smplx133_to_joints(lexicon.gloss_motion(gloss, signer))
    points = ("wrist", "thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip")
    ids = [J[f"{side}_{p}"] for side in ("right", "left") for p in points]
    pts = pts[:, ids]
    t = np.linspace(0, len(pts) - 1, n)
    resampled = [[np.interp(t, np.arange(len(pts)), pts[:, k, d]) for d in range(3)] for k in range(len(ids))]
    return np.stack(resampled).transpose(2, 0, 1)  # (n, joints, 3)


def test_different_glosses_have_clearly_different_trajectories(lexicon):
    you, me = _trajectory(lexicon, "YOU"), _trajectory(lexicon, "ME")
    assert np.linalg.norm(you - me, axis=-1).mean() > 0.05
    trajs = np.stack([_trajectory(lexicon, g) for g in lexicon.glosses])  # (G, 16, 12, 3)
    flat = trajs.reshape(len(trajs), -1, 3)
    d = np.full((len(trajs), len(trajs)), np.inf)
    for i in range(len(trajs)):
        d[i, i + 1:] = np.linalg.norm(flat[i + 1:] - flat[i], axis=-1).mean(-1)
    assert d.min() > 0.015  # mean over wrists and fingertips of both hands, metres
    assert np.median(d[np.isfinite(d)]) > 0.15


# -------------------------------------------------------------------------------- pose plausibility (FK)
def test_rest_pose_has_wrists_below_shoulders(lexicon):
    for signer in ("signer_01", "signer_03"):
        pts = smplx133_to_joints(lexicon.rest_pose(signer)[None])[0]
        for side in ("left", "right"):
            assert pts[J[f"{side}_wrist"], 1] < pts[J[f"{side}_shoulder"], 1] - 0.3
            assert pts[J[f"{side}_elbow"], 1] < pts[J[f"{side}_shoulder"], 1]


@pytest.mark.parametrize("signer, dominant", [("signer_01", "right"), ("signer_03", "left")])
def test_signing_raises_the_dominant_hand_in_front_of_the_body(corpus, lexicon, signer, dominant):
    assert lexicon.signers[signer].left_handed == (dominant == "left")
    rest = smplx133_to_joints(lexicon.rest_pose(signer)[None])[0]
    rest_height = rest[J[f"{dominant}_wrist"], 1]
    pelvis_z = rest[J["pelvis"], 2]
    for gloss in ("ME", "YOU", "BOOK", "TOMORROW", "WHERE"):
        pts = smplx133_to_joints(lexicon.gloss_motion(gloss, signer))
        wrist = pts[:, J[f"{dominant}_wrist"]]
        assert (wrist[:, 1] > rest_height + 0.15).all(), gloss
        assert (wrist[:, 2] > pelvis_z + 0.05).all(), gloss
        assert (pts[:, J[f"{dominant}_index_tip"], 2] > pelvis_z - 0.05).all(), gloss


def test_corpus_signs_happen_in_signing_space(corpus, lexicon):
    for r in corpus["train"][:12]:
        pts = smplx133_to_joints(r["poses"])
        dominant = "left" if lexicon.signers[r["signer"]].left_handed else "right"
        rest_height = pts[0, J[f"{dominant}_wrist"], 1]
        assert pts[0, J["left_wrist"], 1] < pts[0, J["left_shoulder"], 1]  # starts at rest
        assert pts[-1, J["right_wrist"], 1] < pts[-1, J["right_shoulder"], 1]  # ends at rest
        for a, b in r["gloss_spans"]:
            wrist = pts[a:b, J[f"{dominant}_wrist"]]
            assert wrist[:, 1].max() > rest_height + 0.15
            assert (wrist[:, 2] > pts[0, J["pelvis"], 2] - 0.05).all()
        # smooth: no teleporting between consecutive frames (metres per frame at 24 fps; 0.12 ~ 2.9 m/s)
        speed = np.linalg.norm(np.diff(pts, axis=0), axis=-1)
        assert speed[:, [J["left_wrist"], J["right_wrist"]]].max() < 0.12
        assert speed[:, 12:54].max() < 0.2


def test_sentence_non_manuals(lexicon):
    poses, spans = lexicon.sentence_motion(["ME", "COFFEE", "LIKE", "NOT"], "signer_01")
    head_y = poses[:, 9 + 1]
    a, b = spans[2][0], spans[3][1]
    assert head_y[a:b].std() > 5 * head_y[: spans[0][0]].std() + 0.02  # head shake over LIKE NOT
    poses_q, spans_q = lexicon.sentence_motion(["YOU", "COFFEE", "LIKE", "QUESTION"], "signer_01")
    brow = poses_q[:, 123]
    assert brow[spans_q[1][0]:spans_q[2][1]].min() > brow[0] + 1.0  # raised brows over the question


# ----------------------------------------------------------------------------------------- on disk
def test_build_writes_a_loadable_dataset_with_card(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    dd = build_synthsign(
        tmp_path / "synthsign", seed=3, show_progress=False, num_train=12, num_validation=4, num_test=4
    )
    assert {k: len(v) for k, v in dd.items()} == {"train": 12, "validation": 4, "test": 4}
    loaded = datasets.load_dataset(str(tmp_path / "synthsign"))
    assert set(loaded) == {"train", "validation", "test"}
    row = loaded["test"].with_format("numpy")[0]
    for field in ("text", "gloss", "prompt", "gloss_spans"):
        assert field in loaded["test"].column_names
    assert np.asarray(row["poses"]).shape[1] == 133
    assert list(row["gloss"]) == text_to_gloss(str(row["text"]))
    card = (tmp_path / "synthsign" / "README.md").read_text()
    assert card.startswith("---\n") and "dataset_info:" in card and "num_examples: 12" in card
    for section in (
        "## Grammar",
        "## Lexicon",
        "## Signers",
        "## Transitions",
        "## Splits and held-out bigrams",
        "## Fields",
    ):
        assert section in card
    assert "Corpus seed: **3**" in card and "| test | 4 |" in card and "$" not in card


def test_coarticulation_assimilates_sign_boundaries():
    from hf_sign.data.synthsign_kinematics import CHANNELS
    from hf_sign.data.synthsign_lexicon import ASSIMILATION, coarticulate

    lex = get_lexicon()
    signs = [lex.sign_channels(g, "signer_01") for g in ("TOMORROW", "STAY", "RAIN")]  # STAY: 23 frames, a core
    out = coarticulate(signs, np.random.default_rng(0))
    pos, expr = CHANNELS["dom_pos"], CHANNELS["expr"]
    lo, hi = ASSIMILATION
    # the middle sign starts part of the way towards where the first ends, and ends part of the way to the third
    for frame, neighbour in ((0, signs[0][-1]), (-1, signs[2][0])):
        gap = neighbour[pos] - signs[1][frame, pos]
        moved = out[1][frame, pos] - signs[1][frame, pos]
        frac = float(moved @ gap / (gap @ gap))
        assert lo - 1e-9 <= frac <= hi + 1e-9
        np.testing.assert_allclose(moved, frac * gap, atol=1e-9)
    n = len(signs[1])
    np.testing.assert_allclose(out[1][n // 2, pos], signs[1][n // 2, pos], atol=1e-9)  # the sign's core is kept
    # no speed spikes: assimilation never makes the wrist move faster than the citation form plus a margin
    speed = lambda ch: np.linalg.norm(np.diff(ch[:, pos], axis=0), axis=-1).max()  # noqa: E731
    short = [lex.sign_channels(g, "signer_01") for g in ("TOMORROW", "WEATHER", "RAIN")]  # 9-10 frames each
    for a, b in zip(coarticulate(short, np.random.default_rng(0)), short):
        assert speed(a) < speed(b) + 0.03
    np.testing.assert_allclose(out[0][0], signs[0][0])  # sentence edges are not assimilated
    for a, b in zip(out, signs):
        np.testing.assert_array_equal(a[:, expr], b[:, expr])  # non-manuals untouched
    # without an rng: exactly the midpoint strength at both boundaries
    plain = coarticulate(signs)
    for frame, neighbour in ((0, signs[0][-1]), (-1, signs[2][0])):
        gap = neighbour[pos] - signs[1][frame, pos]
        np.testing.assert_allclose(plain[1][frame, pos] - signs[1][frame, pos], (lo + hi) / 2 * gap, atol=1e-9)


def test_long_sentences_are_signed_faster():
    lex = get_lexicon()
    _, short = lex.sentence_motion(["RAIN", "TOMORROW", "HAPPY"], "signer_01")
    _, long = lex.sentence_motion(["RAIN", "TOMORROW", "HAPPY", "WEATHER", "RAIN", "TOMORROW", "HAPPY"], "signer_01")
    dur = lambda spans: [b - a for a, b in spans]  # noqa: E731
    assert all(a < b for a, b in zip(dur(long)[:3], dur(short)))

"""SynthSign: a procedural sign language corpus on the `smplx133` skeleton, deterministic from a seed.

The language lives in these modules: `synthsign_words` (the vocabulary), `synthsign_grammar` (the gloss
rules, `text_to_gloss`), `synthsign_sentences` (English sentences and their gloss sequences: `SynthSignGrammar`),
`synthsign_signs` (the parameters of each sign, the signers), `synthsign_lexicon` (a motion per gloss,
co-articulated sentences: `SynthSignLexicon`) and `synthsign_kinematics` (hand-space channels -> axis-angle
features). This module samples a corpus from it and writes it as a Hub-style dataset folder.

Splits (`generate_synthsign`):

* a seed-dependent set of *held-out gloss bigrams*: each bigram of two content glosses (not `NOT`,
  `QUESTION`, `BUT` or a wh-sign) is held out with probability `HELDOUT_FRACTION`, decided by a hash of
  (seed, bigram), so membership needs no enumeration;
* train: sentences without any held-out bigram;
* validation: in-distribution, i.e. sampled like train (no held-out bigram) and only from glosses that
  occur in train;
* test: every sentence contains at least one held-out bigram (so it never occurs in train) and uses only
  glosses that occur in train: the test measures composition, not unseen signs;
* no two sentences of the corpus share their text or their gloss sequence.

Determinism: sentence `i` of split `s` is drawn from `np.random.default_rng([seed, s, i])` (retries use
the same stream), its motion (signer, jitter) from `np.random.default_rng([seed, s, i, 1])`, so the poses of
a sample do not depend on the order in which samples are built. The same seed gives byte-identical arrays.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np
from tqdm.auto import tqdm

from .io import load_corpus, render_card, save_corpus_streaming
from .schema import make_sample, sign_features
from .synthsign_grammar import GRAMMATICAL_GLOSSES, text_to_gloss
from .synthsign_kinematics import FEATURE_DIM, HANDSHAPES
from .synthsign_lexicon import SynthSignLexicon, get_lexicon
from .synthsign_sentences import GrammarSentence, SynthSignGrammar
from .synthsign_signs import LEXICON_SEED, SIGNER_STYLES, make_style_signer

__all__ = [
    "DEFAULT_SPLIT_SIZES", "FPS", "HELDOUT_FRACTION", "SynthSignGrammar", "SynthSignLexicon", "build_synthsign",
    "generate_synthsign", "get_lexicon", "heldout_bigrams", "is_heldout_bigram", "text_to_gloss",
]

DEFAULT_SPLIT_SIZES = {"train": 2000, "validation": 200, "test": 200}
FPS = 24.0
LANGUAGE = "synth"
REPRESENTATION = "smplx133"
HELDOUT_FRACTION = 0.1
_SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}
_MAX_TRIES = 5000  # per sample; the test split (held-out bigram + train vocabulary) needs the most
_ROWS_PER_GROUP = 256  # rows synthesised, then written as one Parquet row group, at a time (bounded memory)


def is_heldout_bigram(first: str, second: str, seed: int = 0) -> bool:
    """Whether the gloss bigram (`first`, `second`) is reserved for the test split of corpus `seed`."""
    if first in GRAMMATICAL_GLOSSES or second in GRAMMATICAL_GLOSSES:
        return False
    digest = hashlib.blake2b(f"{seed}|{first}|{second}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64 < HELDOUT_FRACTION


def heldout_bigrams(gloss: Sequence[str], seed: int = 0) -> List[Tuple[str, str]]:
    """The held-out bigrams of corpus `seed` that occur in `gloss`."""
    return [(a, b) for a, b in zip(gloss[:-1], gloss[1:]) if is_heldout_bigram(a, b, seed)]


def _select_sentences(
    grammar: SynthSignGrammar,
    split: str,
    num: int,
    seed: int,
    used: Set,
    allowed: Optional[Set[str]],
    want_heldout: bool,
) -> List[GrammarSentence]:
    out = []
    for i in range(num):
        rng = np.random.default_rng([seed, _SPLIT_CODES[split], i])
        for _ in range(_MAX_TRIES):
            sent = grammar.sample(rng, allowed)
            key_text, key_gloss = ("text", sent.text), ("gloss", tuple(sent.gloss))
            if key_text in used or key_gloss in used:
                continue
            if bool(heldout_bigrams(sent.gloss, seed)) != want_heldout:
                continue
            if text_to_gloss(sent.text) != sent.gloss:  # the token rules must recover the sampled structure
                raise RuntimeError(
                    f"SynthSign grammar bug: {sent.text!r} -> {text_to_gloss(sent.text)}, sampled {sent.gloss}."
                )
            break
        else:
            raise RuntimeError(
                f"SynthSign could not draw sentence {i} of split {split!r} in {_MAX_TRIES} tries; "
                "use a larger train split (the test split only uses glosses seen in train)."
            )
        used.update([key_text, key_gloss])
        out.append(sent)
    return out


def _check_sizes(**sizes: int) -> None:
    for name, n in sizes.items():
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"`{name}` must be a non-negative int; got {n!r}.")
    if sizes["num_train"] == 0 and (sizes["num_validation"] or sizes["num_test"]):
        raise ValueError("`num_train` must be > 0 when validation/test are requested (they use train's glosses).")


def generate_synthsign(
    seed: int = 0,
    num_train: int = DEFAULT_SPLIT_SIZES["train"],
    num_validation: int = DEFAULT_SPLIT_SIZES["validation"],
    num_test: int = DEFAULT_SPLIT_SIZES["test"],
    show_progress: bool = True,
    signer_style: Optional[str] = None,
) -> Dict[str, List[Dict[str, Any]]]:
    """Generate the SynthSign corpus as rows of the hf-sign schema.

    Args:
        seed (`int`, defaults to 0): corpus seed (sentences, signer assignment, jitter, held-out bigrams). The
            lexicon and the signers are fixed (`LEXICON_SEED`).
        num_train (`int`, defaults to 2000): train sentences.
        num_validation (`int`, defaults to 200): validation sentences (in-distribution).
        num_test (`int`, defaults to 200): test sentences (each with a gloss bigram never seen in train).
        show_progress (`bool`, defaults to `True`): show a tqdm bar over the pose synthesis.
        signer_style (`str`, *optional*): every sentence signed by the new signer of this style
            (`synthsign_signs.SIGNER_STYLES`: `slow-expansive`, `fast-compact`) instead of the eight corpus signers:
            a variant to adapt a trained model to. The sentences are those of `seed`.

    Returns:
        `Dict[str, List[dict]]`: split name -> rows built with `make_sample` (`poses` float32 (T, 133), 24 fps).
    """
    splits = _split_rows(seed, num_train, num_validation, num_test, show_progress, signer_style)
    return {split: list(rows) for split, rows in splits.items()}


def _split_rows(
    seed: int,
    num_train: int,
    num_validation: int,
    num_test: int,
    show_progress: bool,
    signer_style: Optional[str],
) -> Dict[str, Iterator[Dict[str, Any]]]:
    """Per split, a generator of its rows: the sentences of every split are drawn up front (small, and validation/test
    depend on train's glosses), the poses are synthesised as the rows are consumed."""
    _check_sizes(num_train=num_train, num_validation=num_validation, num_test=num_test)
    styled = make_style_signer(signer_style) if signer_style is not None else None
    grammar, lexicon = SynthSignGrammar(), get_lexicon(LEXICON_SEED)
    used: Set = set()
    sentences: Dict[str, List[GrammarSentence]] = {}
    sentences["train"] = _select_sentences(grammar, "train", num_train, seed, used, None, want_heldout=False)
    vocab = {g for s in sentences["train"] for g in s.gloss}
    sentences["validation"] = _select_sentences(
        grammar, "validation", num_validation, seed, used, vocab, want_heldout=False
    )
    sentences["test"] = _select_sentences(grammar, "test", num_test, seed, used, vocab, want_heldout=True)
    signer_ids = sorted(lexicon.signers)
    total = num_train + num_validation + num_test
    bar = tqdm(total=total, desc="SynthSign", unit="sentence", disable=not show_progress)

    def rows_of(split: str) -> Iterator[Dict[str, Any]]:
        for i, sent in enumerate(sentences[split]):
            rng = np.random.default_rng([seed, _SPLIT_CODES[split], i, 1])
            signer = signer_ids[int(rng.integers(len(signer_ids)))]  # drawn either way: the same jitter
            if styled is not None:
                signer = styled.signer_id
            poses, spans = lexicon.sentence_motion(sent.gloss, styled or signer, rng)
            yield make_sample(
                id=f"synthsign-{split}-{i:06d}",
                text=sent.text,
                poses=poses,
                fps=FPS,
                representation=REPRESENTATION,
                gloss=sent.gloss,
                gloss_spans=spans,
                language=LANGUAGE,
                signer=signer,
            )
            bar.update(1)
            if bar.n == bar.total:  # the last row of the last split consumed, whatever the order
                bar.close()

    return {split: rows_of(split) for split in sentences}


def corpus_stats(splits: Dict[str, List[Dict[str, Any]]], seed: int) -> Dict[str, Any]:
    """Numbers quoted on the dataset card."""
    frames = [r["num_frames"] for rows in splits.values() for r in rows]
    glosses = [len(r["gloss"]) for rows in splits.values() for r in rows]
    train_vocab = {g for r in splits.get("train", []) for g in r["gloss"]}
    test_bigrams = {bg for r in splits.get("test", []) for bg in heldout_bigrams(r["gloss"], seed)}
    lexicon = get_lexicon(LEXICON_SEED)
    return {
        "seed": seed,
        "num_train": len(splits.get("train", [])),
        "num_validation": len(splits.get("validation", [])),
        "num_test": len(splits.get("test", [])),
        "num_glosses": len(lexicon.glosses),
        "num_train_glosses": len(train_vocab),
        "num_test_heldout_bigrams": len(test_bigrams),
        "heldout_fraction": HELDOUT_FRACTION,
        "num_signers": len(lexicon.signers),
        "last_signer": max(lexicon.signers),
        "left_handed": ", ".join(s for s, p in sorted(lexicon.signers.items()) if p.left_handed),
        "num_handshapes": len(HANDSHAPES),
        "handshapes": ", ".join(f"`{h}`" for h in HANDSHAPES),
        "frames_min": min(frames) if frames else 0,
        "frames_mean": f"{np.mean(frames):.1f}" if frames else "0",
        "frames_max": max(frames) if frames else 0,
        "glosses_mean": f"{np.mean(glosses):.2f}" if glosses else "0",
        "lexicon_seed": LEXICON_SEED,
        "fps": int(FPS),
        "feature_dim": FEATURE_DIM,
    }


def build_synthsign(
    out_dir,
    seed: int = 0,
    num_train: int = DEFAULT_SPLIT_SIZES["train"],
    num_validation: int = DEFAULT_SPLIT_SIZES["validation"],
    num_test: int = DEFAULT_SPLIT_SIZES["test"],
    show_progress: bool = True,
    signer_style: Optional[str] = None,
):
    """Generate SynthSign and write it to `out_dir` (Parquet splits + dataset card), loadable with
    `datasets.load_dataset(out_dir)`.

    The rows are synthesised and written a row group at a time (`io.save_corpus_streaming`): memory stays bounded
    whatever the corpus size (the sentences and each row's frame count and glosses, for the card, are all it keeps).

    Args:
        out_dir (`str` or `os.PathLike`): output folder (created; existing shards are replaced).
        seed, num_train, num_validation, num_test, show_progress, signer_style: as in `generate_synthsign`.

    Returns:
        `datasets.DatasetDict`: the written splits, memory-mapped (`io.load_corpus(out_dir, memory_map=True)`).
    """
    splits = _split_rows(seed, num_train, num_validation, num_test, show_progress, signer_style)
    # The card's statistics need only each row's frame count and glosses: keep those while the poses stream to disk.
    light: Dict[str, List[Dict[str, Any]]] = {split: [] for split in splits}

    def streamed(split: str) -> Iterator[Dict[str, Any]]:
        for row in splits[split]:
            light[split].append({"num_frames": row["num_frames"], "gloss": row["gloss"]})
            yield row

    def card() -> str:
        text = render_card("synthsign_dataset_card.md", **corpus_stats(light, seed))
        if signer_style is not None:  # the card's signer section describes the eight corpus signers
            style = ", ".join(f"{k} {v}" for k, v in SIGNER_STYLES[signer_style].items())
            text += (
                f"\n## Signer style variant\n\nEvery sample of this variant is signed by one new signer, "
                f"`signer_{signer_style}` ({style}), instead of the signers described above; the sentences are those "
                f"of seed {seed}. It is a corpus to adapt a trained model to (`hf-sign finetune`).\n"
            )
        return text

    save_corpus_streaming(
        {split: streamed(split) for split in splits}, sign_features(FEATURE_DIM), out_dir, card, _ROWS_PER_GROUP
    )
    return load_corpus(out_dir, memory_map=True)

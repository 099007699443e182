"""What a pipeline checks in the text (or glosses) it is asked to sign, beyond its type: characters it refuses and
words its tokenizer does not know.

* Control characters (Unicode categories `Cc` and `Cs`, except tab, newline and carriage return) are refused
  ([`check_characters`]): they carry no words and a tokenizer either drops them or reads them as unknown.
* Unknown words ([`find_unknown_words`]). A *word* is one piece of the tokenizer's pre-tokenisation (for the
  word-level tokenizers of Sign-SALD and Stable Signer: a word or a punctuation run); a word is *known* when it holds a
  letter or digit and none of its tokens is the unknown token.
  A byte-level BPE (MaDiS) has no unknown token: every string encodes, byte by byte if need be. There a word is a
  whitespace-separated piece, and it is unknown when it holds a character outside the tokenizer's *training
  alphabet*: the characters of its learned merges (what its training text held often enough to merge) plus printable
  ASCII. A tokenizer trained on English text thus reports Chinese, Arabic or emoji words as unknown, while a
  multilingual one (a converted Qwen3 tokenizer) knows them.

The pipelines warn about unknown words, report them in `info` (`unknown_words`, `unknown_word_fraction`) and refuse
a prompt with no known word at all (its output would be the same whatever it said).
"""

from __future__ import annotations

import json
import string
import unicodedata
import weakref
from typing import Any, List, Optional, Set, Tuple

__all__ = ["check_characters", "find_unknown_words", "training_alphabet"]

_ALLOWED_CONTROLS = "\t\n\r"
_alphabets: "weakref.WeakKeyDictionary[Any, Set[str]]" = weakref.WeakKeyDictionary()


def check_characters(text: str, name: str) -> None:
    """Raise a `ValueError` naming `name` and the position of the first control character in `text`."""
    for pos, ch in enumerate(text):
        if ch not in _ALLOWED_CONTROLS and unicodedata.category(ch) in ("Cc", "Cs"):
            raise ValueError(
                f"`{name}` holds the control character U+{ord(ch):04X} at position {pos}; remove it (of the control "
                "characters only tab, newline and carriage return are accepted, as spaces)."
            )


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    pre = json.loads(backend.to_str()).get("pre_tokenizer") or {}
    kinds = [pre.get("type")] + [p.get("type") for p in pre.get("pretokenizers", []) or []]
    return "ByteLevel" in kinds


def _bytes_decoder() -> dict:
    # GPT-2's byte <-> printable-unicode table, which byte-level BPE vocabularies are written in
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def training_alphabet(tokenizer: Any) -> Set[str]:
    """The characters a byte-level BPE tokenizer saw in training: those of its learned merges (vocabulary entries of
    two or more bytes) and printable ASCII. Cached per tokenizer."""
    try:
        return _alphabets[tokenizer]
    except (KeyError, TypeError):
        pass
    table = _bytes_decoder()
    special = set(getattr(tokenizer, "all_special_tokens", []) or [])
    alphabet = set(string.printable) - set("\x0b\x0c")
    for token in tokenizer.get_vocab():
        if token in special or len(token) < 2 or any(c not in table for c in token):
            continue
        alphabet.update(bytes(table[c] for c in token).decode("utf-8", errors="ignore"))
    try:
        _alphabets[tokenizer] = alphabet
    except TypeError:  # not weak-referenceable: recomputed next time
        pass
    return alphabet


def _is_word(piece: str) -> bool:
    return any(c.isalnum() for c in piece)


def find_unknown_words(tokenizer: Any, text: str) -> Tuple[List[str], float, int]:
    """`(unknown words, their fraction of all words, number of known words)` of `text` under `tokenizer` (see the
    module docstring for what a word and an unknown word are). A slow tokenizer without offsets reports nothing."""
    if _is_byte_level(tokenizer):
        alphabet = training_alphabet(tokenizer)
        words = text.split()
        unknown = [w for w in words if any(c not in alphabet for c in w)]
        known = sum(1 for w in words if _is_word(w) and w not in unknown)
        return unknown, len(unknown) / max(len(words), 1), known
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None or not getattr(tokenizer, "is_fast", False):
        return [], 0.0, 1
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans: dict = {}
    for k, (token, word) in enumerate(zip(enc["input_ids"], enc.word_ids())):
        if word is None:
            continue
        start, end = enc["offset_mapping"][k]
        lo, hi, bad = spans.get(word, (start, end, False))
        spans[word] = (min(lo, start), max(hi, end), bad or token == unk)
    pieces: List[Tuple[str, bool]] = [(text[lo:hi], bad) for lo, hi, bad in spans.values()]
    unknown = [p for p, bad in pieces if bad]
    known = sum(1 for p, bad in pieces if not bad and _is_word(p))
    return unknown, len(unknown) / max(len(pieces), 1), known


def describe_unknown(unknown: List[str], limit: int = 8) -> str:
    """`'a', 'b', ...` for a message (at most `limit` words shown)."""
    shown = ", ".join(repr(w) for w in unknown[:limit])
    return shown + (f" and {len(unknown) - limit} more" if len(unknown) > limit else "")


def first_unknown_message(name: str, unknown: List[str], what: Optional[str] = None) -> str:
    """The error for a prompt without a known word."""
    what = what or "word"
    found = f" (unknown: {describe_unknown(unknown)})" if unknown else ""
    return (
        f"`{name}` has no {what} the tokenizer knows{found}: every {what} would be read as unknown and the output "
        f"would not depend on it. Use the language (and script) the model was trained on."
    )

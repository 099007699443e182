"""SynthSign grammar: the English side of the procedural sign language, and its mapping to glosses.

Sentences are sampled as a small structure (clause kind, subject/object noun phrases, verb, tense,
negation, question type, time word) and realised twice: as natural lower-case English, and as the
gloss sequence (`synthsign_sentences.SynthSignGrammar`). This module holds the mapping back:
`text_to_gloss` maps English text to glosses with token rules only (no access to the structure); the
generator checks that both agree for every sentence it emits.

Gloss rules (what makes the text differ from the gloss order):

* function words have no sign: `the a an is am are was were be will do does did to at on it`;
  tense lives in the time word only, verbs are glossed in their base form;
* time fronting: time expressions (`yesterday`, `last week`, ...) move to the start of the clause;
* SOV: the verb follows its subject and object (`i like coffee` -> `ME COFFEE LIKE`);
* noun phrases are `POSS NOUN ADJ NUM` (`my two red cars` -> `MY CAR RED TWO`); a plural without a
  number is the repeated sign `NOUN+` (`the children` -> `CHILD+`);
* negation: `NOT` after the verb or predicate (a head shake on the signing side);
* wh-questions: the wh-sign at the end (`what did you buy` -> `YOU BUY WHAT`), `how many` + noun keeps
  the noun in place and ends with `HOW-MANY`; yes/no questions end with `QUESTION`;
* two clauses: `and` has no sign, `but` -> `BUT`, `because` -> rhetorical `WHY`;
* multi-word expressions are one sign (`ice cream` -> `ICE-CREAM`, `last week` -> `LAST-WEEK`);
* context glosses: `right` -> `RIGHT-DIRECTION` after `the` (`on the right`) else `CORRECT`; `bank` ->
  `RIVER-BANK` after `river` else `BANK-MONEY`; `light` -> `LIGHT-WEIGHT` before a noun or as a
  predicate, `LAMP` after a determiner; `watch` -> `WRISTWATCH` after a determiner/number/adjective,
  else the verb `WATCH`.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from .synthsign_words import (  # noqa: F401  (re-exported: the grammar's public vocabulary)
    ADJECTIVES,
    CONTEXT_GLOSSES,
    CONTRACTIONS,
    FUNCTION_WORDS,
    GRAMMATICAL_GLOSSES,
    NOUNS,
    NOUNS_BY_KIND,
    NUMBERS,
    POSSESSIVES,
    PRONOUNS,
    TIMES,
    VERBS,
    WH_GLOSSES,
    WH_WORDS,
    Adjective,
    Noun,
    Verb,
    lexicon_glosses,
)

# -------------------------------------------------------------------------------------- text -> gloss
_MULTIWORD = sorted(
    {w for w in [n.word for n in NOUNS] + [n.plural or "" for n in NOUNS] + [t[0] for t in TIMES] + list(WH_WORDS)
     if " " in w},
    key=len, reverse=True,
)
_NOUN_FORMS: Dict[str, Tuple[Noun, bool]] = {}
for _n in NOUNS:
    _NOUN_FORMS[_n.word.replace(" ", "_")] = (_n, False)
    if _n.plural:
        _NOUN_FORMS[_n.plural.replace(" ", "_")] = (_n, True)
_VERB_FORMS: Dict[str, Verb] = {f: v for v in VERBS for f in (v.base, v.s3, v.past, v.ing)}
_ADJ_FORMS: Dict[str, Adjective] = {a.word: a for a in ADJECTIVES}
_TIME_FORMS = {t[0].replace(" ", "_"): t[1] for t in TIMES}
NUM_FORMS = dict(NUMBERS)
_WH_FORMS = {k.replace(" ", "_"): v for k, v in WH_WORDS.items()}
_DETERMINERS = {"the", "a", "an"}


def tokenize(text: str) -> List[str]:
    """Lower-case word tokens; contractions expanded, multi-word expressions joined with `_`."""
    return [tok for tok, _ in tokenize_with_spans(text)]


def tokenize_with_spans(text: str) -> List[Tuple[str, Tuple[int, int]]]:
    """`tokenize(text)` with the character span `[start, end)` of `text` that each token comes from.

    Both halves of a contraction (`doesn't` -> `does`, `not`) get the contraction's span; a multi-word
    expression (`last week` -> `last_week`) spans its words.
    """
    words: List[Tuple[str, Tuple[int, int]]] = []
    for m in re.finditer(r"[^\s?,.]+", text):
        word = m.group().lower()
        words.extend((part, m.span()) for part in CONTRACTIONS.get(word, word).split())
    out: List[Tuple[str, Tuple[int, int]]] = []
    i = 0
    while i < len(words):  # longest multi-word expression first, left to right
        for mw in _MULTIWORD:
            parts = mw.split()
            if [w for w, _ in words[i : i + len(parts)]] == parts:
                out.append((mw.replace(" ", "_"), (words[i][1][0], words[i + len(parts) - 1][1][1])))
                i += len(parts)
                break
        else:
            out.append(words[i])
            i += 1
    return out


def _coarse(tok: str, prev: Optional[str], nxt: Optional[str]) -> str:
    """Coarse category of a token given its neighbours (resolves the context homonyms)."""
    if tok in ("light", "lights"):
        if tok == "light" and nxt is not None and _is_plain_noun(nxt):
            return "adj"
        return "noun" if tok == "lights" or (prev is not None and _is_modifier(prev)) else "adj"
    if tok in ("watch", "watches"):
        # a noun after a determiner/number/adjective or right after another verb (bare plural object)
        noun = prev is not None and (_is_modifier(prev) or (prev in _VERB_FORMS and prev not in ("watch", "watches")))
        return "noun" if noun else "verb"
    if tok in ("right", "left") and prev == "the":
        return "dir"
    if tok == "weather":
        return "weather"
    if tok in _NOUN_FORMS:
        return "noun"
    if tok in _ADJ_FORMS:
        return "adj"
    if tok in _VERB_FORMS:
        return "verb"
    tables = (("time", _TIME_FORMS), ("num", NUM_FORMS), ("wh", _WH_FORMS), ("poss", POSSESSIVES), ("pron", PRONOUNS))
    for name, table in tables:
        if tok in table:
            return name
    if tok == "not":
        return "neg"
    if tok in ("and", "but", "because"):
        return "conj"
    if tok in FUNCTION_WORDS:
        return "func"
    raise ValueError(f"`text` contains the word {tok!r}, which is not in the SynthSign grammar.")


def _is_plain_noun(tok: str) -> bool:
    return tok in _NOUN_FORMS and tok not in ("light", "lights", "watch", "watches")


def _is_modifier(tok: str) -> bool:
    return (
        tok in _DETERMINERS or tok in POSSESSIVES or tok in NUM_FORMS or tok == "how_many"
        or (tok in _ADJ_FORMS and tok != "light")
    )


def _clause_gloss(tokens: Sequence[str], question: bool, first: int = 0) -> List[Tuple[str, Optional[int]]]:
    """(gloss, index of the token it signs) in signing order; `first` offsets the indices (later clauses)."""
    Glosses = List[Tuple[str, Optional[int]]]
    times: Glosses = []
    content: Glosses = []
    verbs: Glosses = []
    neg: Glosses = []
    wh: Glosses = []
    np_mods: Dict[str, Glosses] = {"poss": [], "adj": [], "num": []}
    how_many = False
    for i, tok in enumerate(tokens):
        prev = tokens[i - 1] if i else None
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        cat = _coarse(tok, prev, nxt)
        if cat == "func":
            continue
        if cat == "time":
            times.append((_TIME_FORMS[tok], first + i))
        elif cat == "neg":
            neg.append(("NOT", first + i))
        elif cat == "wh":
            wh.append((_WH_FORMS[tok], first + i))
            how_many = tok == "how_many"
        elif cat == "pron":
            content.append((PRONOUNS[tok][0], first + i))
        elif cat == "verb":
            verbs.append((_VERB_FORMS[tok].gloss, first + i))
        elif cat == "weather":
            content.append(("WEATHER", first + i))
        elif cat == "dir":
            content.append(("RIGHT-DIRECTION" if tok == "right" else "LEFT", first + i))
        elif cat == "poss":
            np_mods["poss"].append((POSSESSIVES[tok], first + i))
        elif cat == "num":
            np_mods["num"].append((NUM_FORMS[tok], first + i))
        elif cat == "adj":
            gloss = "LIGHT-WEIGHT" if tok == "light" else _ADJ_FORMS[tok].gloss
            attributive = nxt is not None and _coarse(nxt, tok, None) == "noun"
            (np_mods["adj"] if attributive else content).append((gloss, first + i))
        elif cat == "noun":
            noun, plural = _NOUN_FORMS[tok]
            head = noun.gloss + ("+" if plural and not np_mods["num"] and not how_many else "")
            content.extend(np_mods["poss"] + [(head, first + i)] + np_mods["adj"] + np_mods["num"])
            np_mods = {"poss": [], "adj": [], "num": []}
            how_many = False
    out = times + content + verbs + neg + wh
    if question and not wh:
        out.append(("QUESTION", None))  # the question itself, not one word
    return out


def text_to_gloss(text: str) -> List[str]:
    """Gloss sequence of an English sentence of the SynthSign grammar.

    Args:
        text (`str`): lower- or mixed-case English sentence, e.g. `"the weather tomorrow will be rainy"`.

    Returns:
        `List[str]`: the glosses in signing order, e.g. `["TOMORROW", "WEATHER", "RAIN"]`.

    Raises:
        `ValueError`: if `text` has a word outside the grammar's vocabulary.
    """
    return [gloss for gloss, _ in align_text_to_gloss(text)]


def align_text_to_gloss(text: str) -> List[Tuple[str, Tuple[int, int]]]:
    """`text_to_gloss(text)` with, for every gloss, the character span `[start, end)` of the words of `text` it signs.

    Every gloss signs one token of `tokenize_with_spans` (`because` -> `WHY`, `but` -> `BUT`, `last week` ->
    `LAST-WEEK`), except the yes/no `QUESTION`, which gets the `?` (or, without one, the whole sentence).

    Example:
        >>> align_text_to_gloss("i like coffee")
        [('ME', (0, 1)), ('COFFEE', (7, 13)), ('LIKE', (2, 6))]
    """
    question = text.strip().endswith("?")
    tokens = tokenize_with_spans(text)
    if not tokens:
        raise ValueError("`text` is empty; expected an English sentence of the SynthSign grammar.")
    clauses: List[List[str]] = [[]]
    starts = [0]
    joins: List[Tuple[str, int]] = []
    for i, (tok, _) in enumerate(tokens):
        if tok in ("and", "but", "because"):
            joins.append((tok, i))
            clauses.append([])
            starts.append(i + 1)
        else:
            clauses[-1].append(tok)
    out = _clause_gloss(clauses[0], question and not joins)
    for (conj, i), clause, first in zip(joins, clauses[1:], starts[1:]):
        sign = {"and": [], "but": [("BUT", i)], "because": [("WHY", i)]}[conj]
        out += sign + _clause_gloss(clause, False, first)
    mark = text.rfind("?")
    whole = (mark, mark + 1) if mark >= 0 else (tokens[0][1][0], tokens[-1][1][1])
    return [(gloss, whole if i is None else tokens[i][1]) for gloss, i in out]

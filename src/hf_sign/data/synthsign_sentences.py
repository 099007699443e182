"""SynthSign sentences: samples English sentences of the grammar together with their gloss sequences.

A sentence is sampled as a small structure (clause kind, subject/object noun phrases, verb, tense, negation,
question type, time word) and realised twice: as natural lower-case English and as the gloss sequence, by the
gloss rules of `synthsign_grammar`, whose `text_to_gloss` must recover the glosses from the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from .synthsign_grammar import NUM_FORMS, text_to_gloss
from .synthsign_words import (
    ADJECTIVES,
    CONTRACTIONS,
    NOUNS_BY_KIND,
    NUMBERS,
    POSSESSIVES,
    PRONOUNS,
    TIMES,
    VERBS,
    WH_WORDS,
    Adjective,
    Noun,
    Verb,
    lexicon_glosses,
)


class _Reject(Exception):
    """A sampled structure cannot be completed (e.g. no allowed word for a slot); the sampler retries."""


_VOWELS = set("aeiou")
_CONSONANT_SOUND = ("university", "uniform", "one", "european")


@dataclass
class NounPhrase:
    noun: Optional[Noun] = None
    pronoun: Optional[str] = None
    det: str = ""  # "", "the", "a" or a possessive word
    number: Optional[str] = None
    adj: Optional[Adjective] = None
    plural: bool = False
    how_many: bool = False

    @property
    def agreement(self) -> int:
        if self.pronoun is not None:
            return PRONOUNS[self.pronoun][1]
        return 2 if self.plural else 3

    def english(self) -> List[str]:
        if self.pronoun is not None:
            return [self.pronoun]
        assert self.noun is not None
        words = ([self.number] if self.number else []) + ([self.adj.word] if self.adj else [])
        words.append(self.noun.plural if self.plural else self.noun.word)
        det = self.det
        if det == "a":
            det = "an" if words[0][0] in _VOWELS and not words[0].startswith(_CONSONANT_SOUND) else "a"
        return ([det] if det else []) + words

    def gloss(self) -> List[str]:
        if self.pronoun is not None:
            return [PRONOUNS[self.pronoun][0]]
        assert self.noun is not None
        head = self.noun.gloss + ("+" if self.plural and not self.number and not self.how_many else "")
        return (
            ([POSSESSIVES[self.det]] if self.det in POSSESSIVES else []) + [head]
            + ([self.adj.gloss] if self.adj else []) + ([NUM_FORMS[self.number]] if self.number else [])
        )


@dataclass
class GrammarSentence:
    """One sampled sentence: English `text`, its `gloss` sequence and the sentence `kind`."""

    text: str
    gloss: List[str]
    kind: str
    tags: Dict[str, str] = field(default_factory=dict)


def _pick(rng: np.random.Generator, items: Sequence, allowed: Optional[Set[str]] = None, gloss_of=lambda x: x.gloss):
    if allowed is not None:
        items = [x for x in items if gloss_of(x) in allowed]
    if not items:
        raise _Reject()
    return items[int(rng.integers(len(items)))]


def _be(tense: str, agreement: int) -> List[str]:
    if tense == "future":
        return ["will", "be"]
    if tense == "past":
        return ["were" if agreement == 2 else "was"]
    return [{1: "am", 2: "are", 3: "is"}[agreement]]


class SynthSignGrammar:
    """Samples English sentences with their SynthSign gloss sequences.

    Args:
        min_glosses (`int`, defaults to 3): shortest gloss sequence accepted.
        max_glosses (`int`, defaults to 8): longest gloss sequence accepted.
    """

    sentence_types = (("statement", 0.52), ("yes_no", 0.12), ("wh", 0.22), ("two_clause", 0.14))
    clause_kinds = (("trans", 0.44), ("loc", 0.26), ("adj", 0.18), ("dir", 0.05), ("weather", 0.07))
    wh_kinds = (("obj", 0.28), ("who_subj", 0.14), ("where", 0.16), ("when", 0.1), ("why", 0.16), ("how_many", 0.16))

    def __init__(self, min_glosses: int = 3, max_glosses: int = 8):
        self.min_glosses = min_glosses
        self.max_glosses = max_glosses

    @staticmethod
    def text_to_gloss(text: str) -> List[str]:
        return text_to_gloss(text)

    @staticmethod
    def glosses() -> List[str]:
        return lexicon_glosses()

    # ----------------------------------------------------------------------------------- public
    def sample(
        self, rng: np.random.Generator, allowed: Optional[Set[str]] = None, max_tries: int = 200
    ) -> GrammarSentence:
        """Sample one sentence whose glosses are all in `allowed` (any gloss when `None`)."""
        for _ in range(max_tries):
            try:
                sent = self._sample_once(rng, allowed)
            except _Reject:
                continue
            if not (self.min_glosses <= len(sent.gloss) <= self.max_glosses):
                continue
            if allowed is not None and not set(sent.gloss) <= allowed:
                continue
            return sent
        raise RuntimeError(
            f"SynthSignGrammar.sample found no sentence within the allowed glosses in {max_tries} tries."
        )

    # ---------------------------------------------------------------------------------- helpers
    @staticmethod
    def _choice(rng: np.random.Generator, table) -> str:
        names, probs = zip(*table)
        return names[int(rng.choice(len(names), p=np.asarray(probs) / sum(probs)))]

    def _np(self, rng, allowed, kinds: Sequence[str], subject: bool = False, pronoun_p: float = 0.0,
            how_many: bool = False) -> NounPhrase:
        if pronoun_p and rng.random() < pronoun_p:
            pron = _pick(rng, sorted(PRONOUNS), allowed, gloss_of=lambda p: PRONOUNS[p][0])
            return NounPhrase(pronoun=pron)
        kind = kinds[int(rng.integers(len(kinds)))]
        noun = _pick(rng, NOUNS_BY_KIND[kind], allowed)
        np_ = NounPhrase(noun=noun, how_many=how_many)
        if kind == "place":
            np_.det = "" if noun.word == "home" else "the"
        elif how_many:
            np_.plural = True
        elif noun.mass:
            np_.det = ["", "the", "my", "your", "his", "her", "our"][
                int(rng.choice(7, p=[0.4, 0.3, 0.1, 0.05, 0.05, 0.05, 0.05]))
            ]
            if subject and np_.det == "":
                np_.det = "the"
        else:
            r = rng.random()
            if r < 0.12 and not subject:
                np_.number = _pick(rng, NUMBERS, allowed, gloss_of=lambda n: n[1])[0]
                np_.plural = np_.number != "one"
            else:
                np_.plural = rng.random() < 0.22
                dets = ["the", "my", "your", "his", "her", "our"] + ([] if subject or np_.plural else ["a"])
                dets += [""] if np_.plural and not subject else []
                np_.det = dets[int(rng.integers(len(dets)))]
        attr_p = 0.1 if subject else 0.2
        if not how_many and rng.random() < attr_p and not (noun.word == "home"):
            cands = [a for a in ADJECTIVES if a.attributive and kind in a.kinds
                     and not (a.word == "light" and noun.word in ("light", "watch"))]  # no "a light light"
            if cands:
                np_.adj = _pick(rng, cands, allowed)
        return np_

    def _complement(self, verb: Verb, obj: NounPhrase) -> List[str]:
        if verb.prep is None:
            return obj.english()
        if obj.noun is not None and obj.noun.word == "home":
            return ["at", "home"] if verb.prep == "at" else ["home"]
        return ([verb.prep] if verb.prep else []) + obj.english()

    @staticmethod
    def _verb_words(verb: Verb, tense: str, agr: int, neg: bool) -> List[str]:
        if tense == "future":
            return ["will"] + (["not"] if neg else []) + [verb.base]
        if tense == "progressive":
            return _be("present", agr) + (["not"] if neg else []) + [verb.ing]
        if tense == "past":
            return ["did", "not", verb.base] if neg else [verb.past]
        if neg:
            return ["does" if agr == 3 else "do", "not", verb.base]
        return [verb.s3 if agr == 3 else verb.base]

    @staticmethod
    def _aux(tense: str, agr: int) -> List[str]:
        return {"future": ["will"], "past": ["did"], "progressive": _be("present", agr)}.get(
            tense, ["does" if agr == 3 else "do"]
        )

    @staticmethod
    def _question_verb(verb: Verb, tense: str) -> str:
        return verb.ing if tense == "progressive" else verb.base

    def _time(self, rng, allowed, want: bool):
        if not want:
            return None, ("past" if rng.random() < 0.2 else "present")
        t = _pick(rng, TIMES, allowed, gloss_of=lambda t: t[1])
        return t, t[2]

    def _verb(self, rng, allowed, place: bool) -> Verb:
        return _pick(rng, [v for v in VERBS if (v.prep is not None) == place], allowed)

    def _object_for(self, rng, allowed, verb: Verb, how_many: bool = False) -> NounPhrase:
        kinds = [k for k in verb.objects if not (how_many and k in ("place", "drink"))]
        if how_many:
            kinds = [k for k in kinds if any(not n.mass for n in NOUNS_BY_KIND[k])]
            if not kinds:
                raise _Reject()
        np_ = self._np(rng, allowed, kinds, how_many=how_many)
        if how_many and np_.noun is not None and np_.noun.mass:
            raise _Reject()
        return np_

    # ------------------------------------------------------------------------------- clauses
    def _clause(self, rng, allowed, kind: str, tense: str, neg: bool, q: str, time) -> Tuple[List[str], List[str]]:
        """English words (without the time expression) and glosses (without the time gloss) of a clause."""
        if kind in ("trans", "loc"):
            verb = self._verb(rng, allowed, place=kind == "loc")
            subj = self._np(rng, allowed, ["person"], subject=True, pronoun_p=0.45)
            obj = self._object_for(rng, allowed, verb)
            agr = subj.agreement
            if q == "yn":
                words = (self._aux(tense, agr) + subj.english() + [self._question_verb(verb, tense)]
                         + self._complement(verb, obj))
                return words, subj.gloss() + obj.gloss() + [verb.gloss, "QUESTION"]
            words = subj.english() + self._verb_words(verb, tense, agr, neg) + self._complement(verb, obj)
            return words, subj.gloss() + obj.gloss() + [verb.gloss] + (["NOT"] if neg else [])
        # copula clauses
        if kind == "weather":
            subj = NounPhrase(pronoun=None, noun=None)
            subj_words, subj_gloss = (["the", "weather"], ["WEATHER"]) if rng.random() < 0.5 else (["it"], [])
            agr = 3
            adj = _pick(rng, [a for a in ADJECTIVES if "weather" in a.kinds], allowed)
            pred_words, pred_gloss = [adj.word], [adj.gloss]
        else:
            if kind == "adj":
                adj = None
                kinds = ["person", "item", "place", "food", "drink", "read", "animal"]
                for _ in range(8):
                    k = kinds[int(rng.integers(len(kinds)))]
                    cands = [a for a in ADJECTIVES if k in a.kinds]
                    if cands:
                        adj = _pick(rng, cands, allowed)
                        break
                if adj is None:
                    raise _Reject()
                subj = self._np(rng, allowed, [k], subject=True, pronoun_p=0.45 if k == "person" else 0.0)
                if subj.adj is not None and subj.adj.gloss == adj.gloss:
                    subj.adj = None
                pred_words, pred_gloss = [adj.word], [adj.gloss]
            else:  # dir
                subj = self._np(rng, allowed, ["place", "item"], subject=True)
                side = "right" if rng.random() < 0.7 else "left"
                pred_words, pred_gloss = ["on", "the", side], ["RIGHT-DIRECTION" if side == "right" else "LEFT"]
                if subj.noun is not None and subj.noun.word == "home":
                    raise _Reject()
            subj_words, subj_gloss, agr = subj.english(), subj.gloss(), subj.agreement
        be_tense = "present" if tense == "progressive" else tense
        if q == "yn":
            be = _be(be_tense, agr)
            words = (["will"] + subj_words + ["be"]) if be_tense == "future" else (be + subj_words)
            return words + pred_words, subj_gloss + pred_gloss + ["QUESTION"]
        words = subj_words + _be(be_tense, agr) + (["not"] if neg else []) + pred_words
        if neg and be_tense == "future":
            words = subj_words + ["will", "not", "be"] + pred_words
        return words, subj_gloss + pred_gloss + (["NOT"] if neg else [])

    def _wh(self, rng, allowed, time, tense) -> Tuple[List[str], List[str], str]:
        wk = self._choice(rng, self.wh_kinds)
        if wk == "when" and time is not None:
            raise _Reject()
        if wk == "where" and rng.random() < 0.3 or wk == "why" and rng.random() < 0.35:
            # copula questions: "where is my phone", "why is the baby sad"
            be_tense = "present" if tense == "progressive" else tense
            if wk == "where":
                subj = self._np(rng, allowed, ["item", "animal", "person"], subject=True, pronoun_p=0.3)
                pred_words, pred_gloss = [], []
            else:
                adj = _pick(rng, [a for a in ADJECTIVES if "person" in a.kinds], allowed)
                subj = self._np(rng, allowed, ["person"], subject=True, pronoun_p=0.45)
                pred_words, pred_gloss = [adj.word], [adj.gloss]
            be = _be(be_tense, subj.agreement)
            words = [wk] + ((["will"] + subj.english() + ["be"]) if be_tense == "future" else (be + subj.english()))
            return words + pred_words, subj.gloss() + pred_gloss + [WH_WORDS[wk]], wk
        place = wk == "where" or (wk in ("when", "why") and rng.random() < 0.4)
        verb = self._verb(rng, allowed, place=place)
        if wk == "who_subj":
            obj = self._object_for(rng, allowed, verb)
            vw = {"future": ["will", verb.base], "progressive": ["is", verb.ing], "past": [verb.past]}.get(
                tense, [verb.s3]
            )
            return ["who"] + vw + self._complement(verb, obj), obj.gloss() + [verb.gloss, "WHO"], wk
        subj = self._np(rng, allowed, ["person"], subject=True, pronoun_p=0.5)
        aux = self._aux(tense, subj.agreement)
        qverb = [self._question_verb(verb, tense)]
        if wk == "obj":
            if verb.prep is not None:
                raise _Reject()
            wh = "who" if "person" in verb.objects and (rng.random() < 0.35 or verb.objects == ("person",)) else "what"
            if wh == "what" and verb.objects == ("person",):
                raise _Reject()
            return [wh] + aux + subj.english() + qverb, subj.gloss() + [verb.gloss, WH_WORDS[wh]], wk
        if wk == "how_many":
            if verb.prep is not None:
                raise _Reject()
            obj = self._object_for(rng, allowed, verb, how_many=True)
            words = ["how", "many"] + obj.english() + aux + subj.english() + qverb
            return words, obj.gloss() + subj.gloss() + [verb.gloss, "HOW-MANY"], wk
        if wk == "where":
            return ["where"] + aux + subj.english() + qverb, subj.gloss() + [verb.gloss, "WHERE"], wk
        obj = self._object_for(rng, allowed, verb)
        words = [wk] + aux + subj.english() + qverb + self._complement(verb, obj)
        return words, subj.gloss() + obj.gloss() + [verb.gloss, WH_WORDS[wk]], wk

    def _sample_once(self, rng: np.random.Generator, allowed: Optional[Set[str]]) -> GrammarSentence:
        stype = self._choice(rng, self.sentence_types)
        time, tense = self._time(rng, allowed, want=rng.random() < (0.55 if stype != "wh" else 0.35))
        time_words = time[0].split() if time else []
        time_gloss = [time[1]] if time else []
        tags = {"type": stype}
        if stype == "wh":
            words, gloss, wk = self._wh(rng, allowed, time, tense)
            tags["wh"] = wk
            words = words + time_words
            return GrammarSentence(" ".join(words) + "?", time_gloss + gloss, "wh", tags)
        kind = self._choice(rng, self.clause_kinds)
        tags["clause"] = kind
        if stype == "yes_no":
            words, gloss = self._clause(rng, allowed, kind, tense, False, "yn", time)
            return GrammarSentence(" ".join(words + time_words) + "?", time_gloss + gloss, "yes_no", tags)
        neg = rng.random() < 0.28
        words, gloss = self._clause(rng, allowed, kind, tense, neg, "", time)
        if stype == "two_clause":
            conj = ["and", "but", "because"][int(rng.integers(3))]
            kind2 = self._choice(rng, self.clause_kinds[:3])
            words2, gloss2 = self._clause(rng, allowed, kind2, tense, rng.random() < 0.2, "", None)
            if words2 == words:
                raise _Reject()
            sent_words = (time_words + words if time and rng.random() < 0.5 else words + time_words) + [conj] + words2
            gloss = time_gloss + gloss + {"and": [], "but": ["BUT"], "because": ["WHY"]}[conj] + gloss2
            tags["conj"] = conj
        else:
            pos = rng.random()
            if time and pos < 0.25:
                sent_words = time_words + words
            elif time and kind == "weather" and words[:2] == ["the", "weather"] and pos < 0.55:
                sent_words = words[:2] + time_words + words[2:]
            else:
                sent_words = words + time_words
            gloss = time_gloss + gloss
        if neg or stype == "two_clause":
            sent_words = self._contract(rng, sent_words)
        tags["negated"] = str(neg)
        return GrammarSentence(" ".join(sent_words), gloss, stype, tags)

    @staticmethod
    def _contract(rng, words: List[str]) -> List[str]:
        out: List[str] = []
        for w in words:
            if w == "not" and out and f"{out[-1]}n't" in CONTRACTIONS and rng.random() < 0.4:
                out[-1] = "won't" if out[-1] == "will" else f"{out[-1]}n't"
            else:
                out.append(w)
        return out

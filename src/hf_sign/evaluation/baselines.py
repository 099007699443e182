"""Reference baselines of every benchmark table (DESIGN.md, "Evaluation contract").

Three non-learned systems, fitted on a corpus' training split, with the generation interface of the
pipelines (`__call__(prompt, num_frames=None, generator=None, output_type="np", return_dict=True,
gloss=None)` -> an output whose `.poses` are `(num_frames, feature_dim)` arrays in the dataset's units):

* [`MeanPoseBaseline`]: the mean training frame, held still for the mean training length. A system that
  ignores its input entirely; back-translation and retrieval should score near chance.
* [`NearestSentenceBaseline`]: retrieval. The training sentence whose text is most similar to the prompt
  (TF-IDF cosine over lowercased word unigrams and bigrams, an exact text match first) and its
  ground-truth poses, unchanged. Scores well on seen sentences and on overlapping wording, but cannot
  compose new gloss orders.
* [`GlossConcatenationBaseline`]: the spoken-to-signed approach (a gloss -> pose-clip lexicon, the clips
  joined with smooth transitions), driven by *oracle* glosses: the harness passes the reference gloss
  sequence as `gloss=`. Clips are cut from training sentences with their `gloss_spans`.

All three are deterministic: `generator` is accepted for interface compatibility and ignored. They save
to a folder as `baseline_config.json` (class name and every setting) plus `baseline.safetensors`
(arrays), nothing pickled, and [`load_baseline`] (or the class's `from_pretrained`) restores them
exactly, so a fitted baseline can be passed to `hf-sign benchmark --model NAME=DIR`. Their base class
[`PoseBaseline`] (the call interface and the (de)serialisation) and [`load_split`] are in
`hf_sign.evaluation.baseline_utils`.

```python
>>> from hf_sign.evaluation.baselines import GlossConcatenationBaseline
>>> concat = GlossConcatenationBaseline.from_dataset("outputs/synthsign", split="train")
>>> out = concat("you did not open your toy", gloss=["YOU", "YOUR", "TOY", "OPEN", "NOT"])
>>> out.poses[0].shape, out.info[0]["unknown_glosses"]
((118, 133), [])
>>> concat.save_pretrained("outputs/baselines/concat")
```
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np
from tqdm.auto import tqdm

from ..data.pose_bank import collect_gloss_instances, join_clips, most_typical
from .baseline_utils import CONFIG_NAME, PoseBaseline

__all__ = [
    "GlossConcatenationBaseline",
    "MeanPoseBaseline",
    "NearestSentenceBaseline",
    "load_baseline",
]

UNKNOWN_GLOSS_POLICIES = ("hold", "error")
_WORD_RE = re.compile(r"[\w']+")


# ------------------------------------------------------------------------------------------- mean pose
class MeanPoseBaseline(PoseBaseline):
    """The mean training frame (every frame of every training sample weighs the same), held for the mean
    training length (rounded), or for `num_frames`.

    No settings. Arrays: `mean_pose` `(feature_dim,)`. Config: `num_frames` (mean length).
    """

    @classmethod
    def _fit(cls, rows, split, show_progress):
        total = np.zeros(rows[0]["poses"].shape[1], dtype=np.float64)
        count = 0
        for r in tqdm(rows, desc="mean pose", disable=not show_progress):
            total += r["poses"].sum(axis=0, dtype=np.float64)
            count += r["poses"].shape[0]
        length = max(1, int(round(np.mean([r["poses"].shape[0] for r in rows]))))
        return {"num_frames": length}, {"mean_pose": (total / count).astype(np.float32)}

    def _generate(self, text, gloss):
        return np.repeat(self.arrays["mean_pose"][None], int(self.config["num_frames"]), axis=0), {}


# ------------------------------------------------------------------------------------ nearest sentence
def _normalise_text(text: str) -> str:
    return " ".join(_WORD_RE.findall(text.lower()))


def _ngrams(text: str, max_n: int) -> List[str]:
    words = _WORD_RE.findall(text.lower())
    return [" ".join(words[i : i + n]) for n in range(1, max_n + 1) for i in range(len(words) - n + 1)]


class NearestSentenceBaseline(PoseBaseline):
    """Retrieval: the ground-truth poses of the most similar training sentence.

    Similarity: a training text identical to the prompt (lowercased, punctuation dropped) wins outright;
    otherwise the cosine between TF-IDF vectors of lowercased word n-grams (1..`max_ngram`, default 2:
    bigrams make word order count). TF is the raw count, IDF `ln((1 + N) / (1 + df)) + 1` (smoothed, as
    scikit-learn's default), vectors L2-normalised. Ties, and prompts sharing no n-gram with any training
    text (all similarities 0), go to the lowest training index. `info` reports the retrieved `id`, its
    `text` and the `similarity`.

    Settings (`from_dataset(..., max_ngram=2)`): `max_ngram` (`int`, defaults to 2).
    Arrays: `poses` (all training frames concatenated), `offsets` (`N + 1` frame offsets).
    Config: `ids`, `texts`.
    """

    @classmethod
    def _fit(cls, rows, split, show_progress, max_ngram: int = 2):
        if not isinstance(max_ngram, int) or max_ngram < 1:
            raise ValueError(f"`max_ngram` must be a positive int; got {max_ngram!r}.")
        offsets = np.cumsum([0] + [r["poses"].shape[0] for r in rows]).astype(np.int64)
        config = {"max_ngram": max_ngram, "ids": [str(r["id"]) for r in rows], "texts": [str(r["text"]) for r in rows]}
        return config, {"poses": np.concatenate([r["poses"] for r in rows]), "offsets": offsets}

    def _setup(self) -> None:
        texts = self.config["texts"]
        n = len(texts)
        if len(self.arrays["offsets"]) != n + 1:
            raise ValueError(
                f"NearestSentenceBaseline: {n} texts but {len(self.arrays['offsets']) - 1} pose sequences."
            )
        self._exact: Dict[str, int] = {}
        for i, t in enumerate(texts):
            self._exact.setdefault(_normalise_text(t), i)
        counts = [Counter(_ngrams(t, self.config["max_ngram"])) for t in texts]
        df = Counter(g for c in counts for g in c)
        self._idf = {g: math.log((1 + n) / (1 + d)) + 1.0 for g, d in df.items()}
        # inverted index: n-gram -> (doc indices, normalised weights); one query costs its postings only
        postings: Dict[str, Tuple[List[int], List[float]]] = {}
        for i, c in enumerate(counts):
            w = {g: tf * self._idf[g] for g, tf in c.items()}
            norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
            for g, v in w.items():
                docs, vals = postings.setdefault(g, ([], []))
                docs.append(i)
                vals.append(v / norm)
        self._postings = {g: (np.asarray(d, np.int64), np.asarray(v, np.float64)) for g, (d, v) in postings.items()}

    def similarities(self, text: str) -> np.ndarray:
        """TF-IDF cosine similarity of `text` to every training text, `(N,)`."""
        q = {
            g: tf * self._idf[g]
            for g, tf in Counter(_ngrams(text, self.config["max_ngram"])).items()
            if g in self._idf
        }
        scores = np.zeros(len(self.config["texts"]))
        norm = math.sqrt(sum(v * v for v in q.values()))
        for g, v in q.items():
            docs, vals = self._postings[g]
            scores[docs] += vals * (v / norm)
        return scores

    def retrieve(self, text: str) -> Tuple[int, float]:
        """Index of the retrieved training sample and its similarity (1.0 for an exact text match)."""
        exact = self._exact.get(_normalise_text(text))
        if exact is not None:
            return exact, 1.0
        scores = self.similarities(text)
        best = int(np.argmax(scores))  # first maximum: ties go to the lowest index
        return best, float(scores[best])

    def _generate(self, text, gloss):
        i, sim = self.retrieve(text)
        a, b = self.arrays["offsets"][i], self.arrays["offsets"][i + 1]
        info = {
            "retrieved_id": self.config["ids"][i],
            "retrieved_text": self.config["texts"][i],
            "similarity": round(sim, 6),
        }
        return self.arrays["poses"][a:b].copy(), info


# -------------------------------------------------------------------------------- gloss concatenation
class GlossConcatenationBaseline(PoseBaseline):
    """Gloss-lexicon concatenation (the spoken-to-signed approach) with oracle glosses.

    Lexicon: every training sample with `gloss_spans` contributes one clip per gloss, `poses[start:end]`.
    Per gloss the *most typical* instance is kept: all instances are resampled to their median length,
    averaged into a template, and the instance nearest to the template (mean squared feature distance) is
    stored with its original frames. A real instance is kept rather than the template itself, because
    averaging clips of different signers and speeds blurs the motion.

    Sentence: `rest_start` (the mean first frame of the training samples), blended over `lead_in` frames
    into the first clip; consecutive clips joined by `transition_frames` in-between frames; the last clip
    blended over `lead_out` frames into `rest_end` (the mean last frame). Every blend follows the
    minimum-jerk profile `10t^3 - 15t^4 + 6t^5` (zero velocity and acceleration at its ends) between the
    boundary frames, linearly in feature space (an approximation for axis-angles, fine for the small
    rotations between the end of one sign and the start of the next). The length is therefore
    `lead_in + sum(clip lengths) + (num_glosses - 1) * transition_frames + lead_out`.

    Unknown glosses (no training instance): `unknown_gloss="hold"` (default) holds the previous frame
    (the rest pose at the start) for `hold_frames` frames and reports the gloss in `info["unknown_glosses"]`
    (the harness counts them); `unknown_gloss="error"` raises a `ValueError` naming the gloss.
    A prompt without glosses raises a `ValueError` (this baseline needs the oracle gloss sequence).

    Settings (`from_dataset(..., transition_frames=None, lead_in=None, lead_out=None, unknown_gloss="hold")`):
        transition_frames (`int`, *optional*): frames between clips; default: the median gap between
            consecutive gloss spans in the training split.
        lead_in, lead_out (`int`, *optional*): frames from / to the rest pose; default: the median number of
            frames before the first span / after the last span in the training split.
        unknown_gloss (`str`, *optional*, defaults to `"hold"`): `"hold"` or `"error"` (above).
    Arrays: `clip_<k>` per gloss (`glosses[k]`), `rest_start`, `rest_end`.
    Config: `glosses`, `clip_sources` (id, start, end of each chosen instance), `num_instances`,
    `transition_frames`, `lead_in`, `lead_out`, `hold_frames`, `unknown_gloss`.
    """

    conditioning = ("gloss",)

    @classmethod
    def _fit(
        cls, rows, split, show_progress, transition_frames=None, lead_in=None, lead_out=None, unknown_gloss="hold"
    ):
        if unknown_gloss not in UNKNOWN_GLOSS_POLICIES:
            raise ValueError(f"`unknown_gloss` must be one of {UNKNOWN_GLOSS_POLICIES}; got {unknown_gloss!r}.")
        for name, v in (("transition_frames", transition_frames), ("lead_in", lead_in), ("lead_out", lead_out)):
            if v is not None and (not isinstance(v, (int, np.integer)) or v < 0):
                raise ValueError(f"`{name}` must be a non-negative int or None; got {v!r}.")
        stats = collect_gloss_instances(rows, split)
        instances = stats["instances"]
        glosses = sorted(instances)
        arrays: Dict[str, np.ndarray] = {}
        sources, counts, lengths = [], [], []
        for k, g in enumerate(tqdm(glosses, desc="gloss lexicon", disable=not show_progress)):
            inst = instances[g]
            best = most_typical([x[3] for x in inst])
            sid, a, b, clip = inst[best]
            arrays[f"clip_{k}"] = np.ascontiguousarray(clip, dtype=np.float32)
            sources.append([sid, a, b])
            counts.append(len(inst))
            lengths.append(clip.shape[0])
        arrays["rest_start"], arrays["rest_end"] = stats["rest_start"], stats["rest_end"]
        config = {
            "glosses": glosses,
            "clip_sources": sources,
            "num_instances": counts,
            "transition_frames": stats["transition_frames"] if transition_frames is None else int(transition_frames),
            "lead_in": int(lead_in) if lead_in is not None else stats["lead_in"],
            "lead_out": int(lead_out) if lead_out is not None else stats["lead_out"],
            "hold_frames": max(1, int(round(float(np.median(lengths))))),
            "unknown_gloss": unknown_gloss,
        }
        return config, arrays

    def _setup(self) -> None:
        self._index = {g: k for k, g in enumerate(self.config["glosses"])}
        if self.config.get("unknown_gloss", "hold") not in UNKNOWN_GLOSS_POLICIES:
            raise ValueError(
                f"`unknown_gloss` must be one of {UNKNOWN_GLOSS_POLICIES}; got {self.config['unknown_gloss']!r}."
            )

    @property
    def vocabulary(self) -> List[str]:
        """The glosses of the lexicon."""
        return list(self.config["glosses"])

    def clip(self, gloss: str) -> np.ndarray:
        """The lexicon clip of `gloss` `(frames, feature_dim)`; `ValueError` if unknown."""
        if gloss not in self._index:
            raise ValueError(
                f"`gloss` {gloss!r} is not in the lexicon ({len(self._index)} glosses from the training split)."
            )
        return self.arrays[f"clip_{self._index[gloss]}"]

    def _generate(self, text, gloss):
        if not gloss:
            raise ValueError(
                "GlossConcatenationBaseline needs `gloss` (the oracle gloss sequence) "
                f"for prompt {text!r}; got {gloss!r}."
            )
        cfg = self.config
        unknown: List[str] = []
        clips: List[np.ndarray] = []
        last = self.arrays["rest_start"]
        for i, g in enumerate(gloss):
            if g in self._index:
                clip = self.arrays[f"clip_{self._index[g]}"]
            elif cfg["unknown_gloss"] == "error":
                raise ValueError(f"`gloss[{i}]` = {g!r} is not in the lexicon (unknown_gloss='error').")
            else:
                unknown.append(g)
                clip = np.repeat(last[None], int(cfg["hold_frames"]), axis=0)
            clips.append(clip)
            last = clip[-1]
        poses = join_clips(clips, self.arrays["rest_start"], self.arrays["rest_end"], int(cfg["lead_in"]),
                           int(cfg["transition_frames"]), int(cfg["lead_out"]))
        return poses, {"unknown_glosses": unknown}


BASELINES = {c.__name__: c for c in (MeanPoseBaseline, NearestSentenceBaseline, GlossConcatenationBaseline)}


def load_baseline(path: Union[str, os.PathLike]) -> PoseBaseline:
    """Load any baseline folder written by `save_pretrained` (its class is named in `baseline_config.json`)."""
    return PoseBaseline.from_pretrained(path)


def is_baseline_dir(path: Union[str, os.PathLike]) -> bool:
    """Whether `path` is a folder holding a saved baseline."""
    return (Path(path) / CONFIG_NAME).is_file()

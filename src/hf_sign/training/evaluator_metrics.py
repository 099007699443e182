"""The evaluators' final metrics, on a split's ground-truth poses (the ceiling row of the benchmark's tables).

* `recognizer_metrics`: WER (`word_error_rate`), BLEU-4 and exact-match accuracy of the recogniser's decoded tokens.
* `contrastive_metrics`: sign-to-text retrieval R@1 / R@5 among the split's distinct texts.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from ..evaluation.evaluators import PoseRecognizerModel, SignTextContrastiveModel
from .trainer_utils import PoseRows

__all__ = ["word_error_rate", "recognizer_metrics", "contrastive_metrics"]


def word_error_rate(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> float:
    """Corpus WER in percent: total token edit distance / total reference tokens."""
    errors = total = 0
    for ref, hyp in zip(references, hypotheses):
        prev = list(range(len(hyp) + 1))
        for i, r in enumerate(ref, 1):
            cur = [i] + [0] * len(hyp)
            for j, h in enumerate(hyp, 1):
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
            prev = cur
        errors += prev[-1]
        total += len(ref)
    return 100.0 * errors / max(total, 1)


def recognizer_metrics(model: PoseRecognizerModel, split: PoseRows, batch_size: int = 64) -> Dict[str, float]:
    """WER, BLEU-4 (sacrebleu over space-joined tokens, no extra tokenisation) and exact-match accuracy."""
    import sacrebleu

    refs = [PoseRecognizerModel.sample_tokens(r, model.config.target) for r in split.rows]
    order = np.argsort([len(r["poses"]) for r in split.rows])  # similar lengths per chunk: less padding
    hyps: List[List[str]] = [[] for _ in refs]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        poses = [split.rows[i]["poses"] for i in idx]
        for i, toks in zip(idx, model.generate(poses, batch_size=batch_size, return_tokens=True)):
            hyps[i] = toks
    bleu = sacrebleu.corpus_bleu([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]], tokenize="none")
    return {
        "wer": word_error_rate(refs, hyps),
        "bleu4": float(bleu.score),
        "exact_match": 100.0 * float(np.mean([h == r for h, r in zip(hyps, refs)])),
    }


def contrastive_metrics(model: SignTextContrastiveModel, split: PoseRows, batch_size: int = 64) -> Dict[str, float]:
    """Sign-to-text retrieval R@1/R@5 (percent) among the split's distinct texts."""
    texts = [r["text"] for r in split.rows]
    pose_emb = model.get_pose_embeddings([r["poses"] for r in split.rows], batch_size=batch_size)
    text_emb = model.get_text_embeddings(texts)
    m = SignTextContrastiveModel.retrieval_metrics(pose_emb, text_emb, texts)
    return {"r1": m["R@1"], "r5": m["R@5"], "num_candidates": m["num_candidates"]}

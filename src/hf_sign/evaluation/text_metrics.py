"""Semantic metrics of the evaluation harness: back-translation BLEU/ROUGE-L, SiBLEU and SiCLIP retrieval.

All scores are on a 0-100 scale, as the papers print them.

* Back-translation (Progressive Transformers and every SLP paper since): a recogniser trained on
  ground-truth poses turns generated poses into text or glosses, which are scored against the references.
  BLEU-n is *cumulative* n-gram BLEU (geometric mean of the 1..n-gram precisions times the brevity
  penalty, uniform weights 1/n), computed at corpus level by sacrebleu with `max_ngram_order=n`; no
  smoothing by default, like the NSLT/`compute_bleu` script those papers use. ROUGE-L is rouge-score's
  sentence-level LCS F1 (beta = 1), averaged over sentences, on the same tokens as BLEU.
* SiBLEU (MaDiS 3.4): BLEU-4 over generated vs ground-truth sign-token ids, one corpus BLEU per body
  part tokenizer (upper body, left hand, right hand), reported per part; "hands" averages the two hands
  and "sibleu" all parts.
* SiCLIP (MaDiS 3.4): sign-to-text retrieval with a CLIP-style evaluator trained on ground-truth pairs:
  R@k is the percentage of generated signs whose own text ranks in the top k by similarity.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

__all__ = ["back_translation", "corpus_bleu", "rouge_l", "sibleu", "siclip_retrieval"]

DEFAULT_PARTS = ("body", "left_hand", "right_hand")


def _check_strings(values, field: str, allow_empty: bool) -> List[str]:
    if isinstance(values, str) or not hasattr(values, "__len__"):
        raise ValueError(f"`{field}` must be a list of strings; got {type(values).__name__}.")
    out = []
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise ValueError(f"`{field}[{i}]` must be a string; got {type(v).__name__}.")
        if not allow_empty and not v.strip():
            raise ValueError(f"`{field}[{i}]` is empty; every reference needs at least one token.")
        out.append(v)
    return out


def _check_text_pairs(predictions, references) -> Tuple[List[str], List[str]]:
    preds = _check_strings(predictions, "predictions", allow_empty=True)  # a recogniser may output nothing
    refs = _check_strings(references, "references", allow_empty=False)
    if len(preds) != len(refs):
        raise ValueError(
            f"`predictions` has {len(preds)} entries but `references` has {len(refs)}; they must pair up."
        )
    if not preds:
        raise ValueError("`predictions` and `references` are empty; expected at least one pair.")
    return preds, refs


def corpus_bleu(
    predictions: Sequence[str],
    references: Sequence[str],
    max_order: int = 4,
    *,
    tokenize: str = "13a",
    lowercase: bool = False,
    smooth_method: str = "none",
) -> float:
    """Cumulative corpus BLEU-`max_order` (0-100) with sacrebleu; inputs are assumed validated."""
    bleu = BLEU(
        max_ngram_order=max_order, tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method, force=True
    )
    return float(bleu.corpus_score(list(predictions), [list(references)]).score)


class _Tokenizer:
    """rouge-score tokenizer that reuses sacrebleu's, so ROUGE-L and BLEU see the same tokens.

    rouge-score's own tokenizer keeps only `[a-z0-9]`, which silently drops umlauts and all CJK text.
    """

    def __init__(self, tokenize: str, lowercase: bool):
        self._bleu = BLEU(tokenize=tokenize, force=True)
        self._lowercase = lowercase

    def tokenize(self, text: str) -> List[str]:
        return self._bleu.tokenizer(text.lower() if self._lowercase else text).split()


def rouge_l(
    predictions: Sequence[str], references: Sequence[str], *, tokenize: str = "13a", lowercase: bool = False
) -> float:
    """Mean sentence-level ROUGE-L F1 (0-100) with rouge-score; inputs are assumed validated."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer(tokenize, lowercase))
    scores = [scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)]
    return 100.0 * float(np.mean(scores))


def back_translation(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    max_order: int = 4,
    tokenize: str = "13a",
    lowercase: bool = False,
    smooth_method: str = "none",
) -> Dict[str, float]:
    """BLEU-1..n and ROUGE-L of recogniser outputs against reference text or glosses.

    Args:
        predictions (`List[str]`): recogniser outputs on generated poses, one string per sample (may be
            empty).
        references (`List[str]`): reference text or gloss strings (non-empty), one per sample.
        max_order (`int`, *optional*, defaults to `4`): report `bleu1` ... `bleu<max_order>`.
        tokenize (`str`, *optional*, defaults to `"13a"`): sacrebleu tokenizer, used for ROUGE-L too;
            `"none"` splits on whitespace only (NSLT style), `"zh"` for Chinese.
        lowercase (`bool`, *optional*, defaults to `False`): lowercase before scoring.
        smooth_method (`str`, *optional*, defaults to `"none"`): sacrebleu smoothing (`"none"`, `"exp"`,
            `"floor"`, `"add-k"`); `"none"` makes BLEU-n 0 when no n-gram matches, as in the papers.

    Returns:
        `dict`: `bleu1` ... `bleu<max_order>` (cumulative corpus BLEU-n, 0-100) and `rouge_l` (0-100).
    """
    preds, refs = _check_text_pairs(predictions, references)
    if not isinstance(max_order, int) or max_order < 1:
        raise ValueError(f"`max_order` must be a positive integer; got {max_order!r}.")
    out = {
        f"bleu{n}": corpus_bleu(preds, refs, n, tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method)
        for n in range(1, max_order + 1)
    }
    out["rouge_l"] = rouge_l(preds, refs, tokenize=tokenize, lowercase=lowercase)
    return out


# --------------------------------------------------------------------------------------------- SiBLEU
def _token_parts(samples, field: str, part_names: Optional[Sequence[str]]) -> Tuple[List[str], List[List[List[int]]]]:
    """Normalise `samples` (dicts part -> ids, or sequences of per-part id lists) to names + [sample][part]."""
    if isinstance(samples, (str, bytes, Mapping)) or not hasattr(samples, "__len__"):
        raise ValueError(f"`{field}` must be a list with one entry of part-wise token ids per sample.")
    names: Optional[List[str]] = None
    rows: List[List[List[int]]] = []
    for i, sample in enumerate(samples):
        if isinstance(sample, Mapping):
            keys = [str(k) for k in sample.keys()]
            if part_names is not None:
                missing = [p for p in part_names if p not in sample]
                if missing:
                    raise ValueError(f"`{field}[{i}]` lacks parts {missing}; expected {list(part_names)}.")
                keys = list(part_names)
            parts = [sample[k] for k in keys]
        elif isinstance(sample, (list, tuple, np.ndarray, torch.Tensor)):
            parts = list(sample)
            keys = list(part_names) if part_names is not None else (
                list(DEFAULT_PARTS) if len(parts) == len(DEFAULT_PARTS) else [f"part{k}" for k in range(len(parts))]
            )
            if len(keys) != len(parts):
                raise ValueError(f"`{field}[{i}]` has {len(parts)} parts but `part_names` names {len(keys)}.")
        else:
            raise ValueError(
                f"`{field}[{i}]` must be a dict part -> token ids or a list of per-part token-id lists; "
                f"got {type(sample).__name__}."
            )
        if not keys:
            raise ValueError(f"`{field}[{i}]` has no parts.")
        if names is None:
            names = keys
        elif keys != names:
            raise ValueError(f"`{field}[{i}]` has parts {keys} but `{field}[0]` has {names}.")
        ids = []
        for name, seq in zip(keys, parts):
            arr = seq.detach().cpu().numpy() if isinstance(seq, torch.Tensor) else np.asarray(seq)
            if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
                raise ValueError(f"`{field}[{i}][{name!r}]` must be a 1-D sequence of integer token ids.")
            ids.append([int(t) for t in arr])
        rows.append(ids)
    if names is None:
        raise ValueError(f"`{field}` is empty; expected at least one sample.")
    return names, rows


def sibleu(
    predictions,
    references,
    *,
    part_names: Optional[Sequence[str]] = None,
    max_order: int = 4,
    smooth_method: str = "none",
) -> Dict[str, float]:
    """SiBLEU (MaDiS): corpus BLEU over part-wise sign-token ids, per part and averaged.

    Each part's token ids become space-separated "words" (`[17, 3] -> "17 3"`, no further tokenisation)
    and one cumulative corpus BLEU-`max_order` is computed per part over all samples.

    Args:
        predictions (`List[dict]` or `List[List[List[int]]]`): generated tokens per sample, either a dict
            part name -> token ids or a list with one token-id list per part (tokens after the end of
            sentence already removed; may be empty).
        references: ground-truth tokens in the same form (non-empty per part).
        part_names (`Sequence[str]`, *optional*): names of the parts for list inputs (defaults to
            `("body", "left_hand", "right_hand")` for 3 parts, `part0`, `part1`, ... otherwise), or the
            parts to score (and their order) for dict inputs.
        max_order (`int`, *optional*, defaults to `4`): BLEU order (MaDiS reports SiBLEU-4).
        smooth_method (`str`, *optional*, defaults to `"none"`): sacrebleu smoothing.

    Returns:
        `dict`: `sibleu_<part>` per part, `sibleu_hands` (mean of `left_hand` and `right_hand` when both
        exist) and `sibleu` (mean over all parts), all 0-100.
    """
    pred_names, preds = _token_parts(predictions, "predictions", part_names)
    ref_names, refs = _token_parts(references, "references", part_names)
    if len(preds) != len(refs):
        raise ValueError(
            f"`predictions` has {len(preds)} samples but `references` has {len(refs)}; they must pair up."
        )
    if pred_names != ref_names:
        raise ValueError(f"`predictions` have parts {pred_names} but `references` have {ref_names}.")
    for i, row in enumerate(refs):
        for name, ids in zip(ref_names, row):
            if not ids:
                raise ValueError(f"`references[{i}][{name!r}]` is empty; every reference part needs tokens.")
    out: Dict[str, float] = {}
    for k, name in enumerate(pred_names):
        hyp = [" ".join(map(str, row[k])) for row in preds]
        ref = [" ".join(map(str, row[k])) for row in refs]
        out[f"sibleu_{name}"] = corpus_bleu(hyp, ref, max_order, tokenize="none", smooth_method=smooth_method)
    if "left_hand" in pred_names and "right_hand" in pred_names:
        out["sibleu_hands"] = (out["sibleu_left_hand"] + out["sibleu_right_hand"]) / 2
    out["sibleu"] = float(np.mean([out[f"sibleu_{n}"] for n in pred_names]))
    return out


# --------------------------------------------------------------------------------------------- SiCLIP
def _as_matrix(x, field: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        x = np.asarray(x, dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(f"`{field}` must be a 2-D array ({err}).") from None
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"`{field}` must be a non-empty 2-D array; got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"`{field}` contains NaN or inf.")
    return x


def siclip_retrieval(
    sign_embeddings=None,
    text_embeddings=None,
    *,
    similarity=None,
    targets: Optional[Sequence[int]] = None,
    ks: Sequence[int] = (1, 5),
) -> Dict[str, float]:
    """SiCLIP sign-to-text retrieval R@k (MaDiS) from paired embeddings or a similarity matrix.

    Sign `i` is a hit at k when its own text `targets[i]` is among the k most similar texts. Its rank is
    1 + the number of *other* texts scoring at least as high (ties count against the sign, so constant
    embeddings score chance level rather than 100).

    Args:
        sign_embeddings (`array` of shape `(N, D)`, *optional*): evaluator embeddings of the generated signs.
        text_embeddings (`array` of shape `(N, D)`, *optional*): evaluator embeddings of their texts, row
            `i` paired with sign `i`; similarity is the cosine.
        similarity (`array` of shape `(N, M)`, *optional*): precomputed sign-by-text similarities, instead
            of embeddings.
        targets (`Sequence[int]`, *optional*, defaults to `range(N)`): index of each sign's text (columns of
            `similarity`).
        ks (`Sequence[int]`, *optional*, defaults to `(1, 5)`): cut-offs to report.

    Returns:
        `dict`: `siclip_r<k>` for each k (0-100), `siclip_median_rank` and `siclip_mean_rank`.
    """
    if similarity is not None:
        if sign_embeddings is not None or text_embeddings is not None:
            raise ValueError("Pass either `similarity` or `sign_embeddings` + `text_embeddings`, not both.")
        sim = _as_matrix(similarity, "similarity")
    else:
        if sign_embeddings is None or text_embeddings is None:
            raise ValueError("Pass `sign_embeddings` and `text_embeddings` (paired rows) or a `similarity` matrix.")
        signs = _as_matrix(sign_embeddings, "sign_embeddings")
        texts = _as_matrix(text_embeddings, "text_embeddings")
        if signs.shape[1] != texts.shape[1]:
            raise ValueError(
                f"`sign_embeddings` have dimension {signs.shape[1]} but `text_embeddings` have {texts.shape[1]}."
            )
        if targets is None and signs.shape[0] != texts.shape[0]:
            raise ValueError(
                f"`sign_embeddings` has {signs.shape[0]} rows but `text_embeddings` has {texts.shape[0]}; "
                "paired rows are expected (or pass `targets`)."
            )
        for field, x in (("sign_embeddings", signs), ("text_embeddings", texts)):
            norms = np.linalg.norm(x, axis=1)
            if (norms == 0).any():
                raise ValueError(
                    f"`{field}` row {int(np.argmin(norms))} is all zeros; cosine similarity is undefined."
                )
        sim = (signs / np.linalg.norm(signs, axis=1, keepdims=True)) @ (
            texts / np.linalg.norm(texts, axis=1, keepdims=True)
        ).T
    num_signs, num_texts = sim.shape
    if targets is None:
        if num_texts < num_signs:
            raise ValueError(f"`similarity` has {num_signs} signs but only {num_texts} texts; pass `targets`.")
        tgt = np.arange(num_signs)
    else:
        tgt = np.asarray(targets)
        if tgt.shape != (num_signs,) or not np.issubdtype(tgt.dtype, np.integer):
            raise ValueError(f"`targets` must hold {num_signs} integer text indices; got shape {tgt.shape}.")
        if tgt.min() < 0 or tgt.max() >= num_texts:
            raise ValueError(f"`targets` must index the {num_texts} texts; got values in [{tgt.min()}, {tgt.max()}].")
    ks = [int(k) for k in ks]
    if not ks or min(ks) < 1:
        raise ValueError(f"`ks` must be positive integers; got {ks}.")
    own = sim[np.arange(num_signs), tgt][:, None]
    ranks = (sim >= own).sum(axis=1)  # counts the own text once, so rank 1 = strictly best
    out = {f"siclip_r{k}": 100.0 * float(np.mean(ranks <= k)) for k in ks}
    out["siclip_median_rank"] = float(np.median(ranks))
    out["siclip_mean_rank"] = float(np.mean(ranks))
    return out

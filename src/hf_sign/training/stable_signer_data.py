"""Stable Signer's training data: linker examples and their collator, MoE gloss instances and theirs.

* Linker: every training sentence gives one example per configured input field (`text`, `prompt`), the field's
  string prefixed by the language tag, with the sentence's gloss sequence as target. Examples of one sentence share
  a `group` (their gloss sequence), so the contrastive term never treats them as negatives of each other.
* MoE: every gloss span of a training sentence is one instance: the linker's query for that gloss (computed once,
  the linker being frozen in this stage), the `K` bank candidates in joint positions resampled to the span's length,
  and the ground-truth frames of the span with one context frame on each side (the frame before and after the
  span; the stabilisation terms see the joins), and the index of the candidate nearest the ground truth.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.pose_bank import PoseBank
from ..data.resample import resample_to_length
from ..models.stable_signer.linker import SignLinkerForConditionalGeneration
from ..skeletons.spec import SkeletonSpec
from .stable_signer_losses import IGNORE_INDEX
from .trainer_utils import PoseRows

logger = logging.getLogger(__name__)

__all__ = [
    "linker_examples",
    "LinkerCollator",
    "linker_queries",
    "moe_instances",
    "MoECollator",
]


# ------------------------------------------------------------------------------------------------ linker
def linker_examples(rows: Sequence[Mapping[str, Any]], inputs: Sequence[str], default_language: str) -> PoseRows:
    """One example per (row, input field): `{"input", "language", "glosses", "group"}`; rows without glosses teach
    no text -> gloss mapping and are left out (counted in a warning), and a row missing a configured input field
    raises."""
    groups: Dict[tuple, int] = {}
    out: List[Dict[str, Any]] = []
    without = 0
    for r in rows:
        glosses = list(r.get("gloss") or [])
        if not glosses:
            without += 1
            continue
        group = groups.setdefault(tuple(glosses), len(groups))
        for field in inputs:
            value = r.get(field)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"Sample {r.get('id')!r} has no `{field}` string; `linker_training.inputs` lists {list(inputs)}."
                )
            out.append(
                {
                    "input": value,
                    "language": r.get("language") or default_language,
                    "glosses": glosses,
                    "group": group,
                    "length": len(value.split()) + len(glosses),
                }
            )
    if not out:
        raise ValueError("No training sample has a gloss sequence; the linker learns text -> gloss from them.")
    if without:
        logger.warning("%d training sample(s) without glosses are left out of the linker's training.", without)
    return PoseRows(out, length_key="length")


class LinkerCollator:
    """Tokenises a batch of linker examples: encoder `input_ids`/`attention_mask`, `labels` (gloss ids + eos, -100
    padding), `decoder_attention_mask` and `same_gloss` `(B, B)`."""

    def __init__(self, tokenizer, linker: SignLinkerForConditionalGeneration):
        self.tokenizer = tokenizer
        self.linker = linker

    def __call__(self, batch: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        texts = [self.linker.format_input(b["input"], b["language"]) for b in batch]
        enc = self.tokenizer(texts, padding=True, return_tensors="pt")
        if enc["input_ids"].shape[1] > self.tokenizer.model_max_length:
            raise ValueError(
                f"A linker input has {enc['input_ids'].shape[1]} tokens, over `linker.max_length` = "
                f"{self.tokenizer.model_max_length}; raise it."
            )
        targets = [self.linker.encode_glosses(self.tokenizer, b["glosses"])[0] for b in batch]
        width = max(len(t) for t in targets)
        labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
        for i, t in enumerate(targets):
            labels[i, : len(t)] = torch.tensor(t)
        group = torch.tensor([b["group"] for b in batch])
        return {
            "input_ids": enc["input_ids"],
            "attention_mask": enc["attention_mask"],
            "labels": labels,
            "decoder_attention_mask": (labels != IGNORE_INDEX).long(),
            "same_gloss": group[:, None] == group[None, :],
        }


# ------------------------------------------------------------------------------------------------ MoE
@torch.no_grad()
def linker_queries(
    linker: SignLinkerForConditionalGeneration,
    tokenizer,
    texts: Sequence[str],
    gloss_sequences: Sequence[Sequence[str]],
    languages: Sequence[str],
    batch_size: int = 64,
    show_progress: bool = False,
) -> List[torch.Tensor]:
    """The gate query of every gloss (`SignLinkerForConditionalGeneration.gloss_queries`), batched over texts."""
    linker.eval()
    out: List[torch.Tensor] = []
    for s in tqdm(range(0, len(texts), batch_size), desc="linker queries", disable=not show_progress):
        chunk = range(s, min(len(texts), s + batch_size))
        enc = tokenizer(
            [linker.format_input(texts[i], languages[i]) for i in chunk], padding=True, return_tensors="pt"
        )
        queries = linker.gloss_queries(
            tokenizer, enc["input_ids"], enc["attention_mask"], [gloss_sequences[i] for i in chunk]
        )
        out += [q.float() for q in queries]
    return out


def _resample_positions(positions: np.ndarray, length: int) -> np.ndarray:
    """`(T, J, 3)` positions linearly resampled to `length` frames."""
    flat = resample_to_length(positions.reshape(positions.shape[0], -1), length)
    return flat.reshape(length, *positions.shape[1:]).astype(np.float32)


def moe_instances(
    rows: Sequence[Mapping[str, Any]],
    queries: Sequence[torch.Tensor],
    bank: PoseBank,
    spec: SkeletonSpec,
    show_progress: bool = False,
) -> PoseRows:
    """The MoE's training instances (module docstring); glosses missing from the bank and glosses whose every
    candidate was cut from the same sentence are left out (nothing to choose between)."""
    positions_of: Dict[str, List[np.ndarray]] = {}
    out: List[Dict[str, Any]] = []
    skipped = 0
    for r, q in tqdm(list(zip(rows, queries)), desc="moe instances", disable=not show_progress):
        gt = spec.to_positions(r["poses"]).astype(np.float32)
        for i, (g, (a, b)) in enumerate(zip(r["gloss"], r["gloss_spans"])):
            if g not in bank:
                skipped += 1
                continue
            if g not in positions_of:
                positions_of[g] = [spec.to_positions(c).astype(np.float32) for c in bank.candidates(g)]
            allowed = np.array([src != str(r["id"]) for src in bank.candidate_sources(g)])
            if not allowed.any():
                skipped += 1
                continue
            lo, hi = max(0, a - 1), min(gt.shape[0], b + 1)
            target = gt[lo:hi]
            cands = np.stack([_resample_positions(c, b - a) for c in positions_of[g]])  # (K, L, J, 3)
            dist = ((cands - gt[a:b][None]) ** 2).sum(-1).mean(axis=(1, 2))
            dist[~allowed] = np.inf
            context = np.broadcast_to(target[None], (len(cands),) + target.shape).copy()
            context[:, a - lo : a - lo + (b - a)] = cands
            out.append(
                {
                    "query": q[i],
                    "candidates": context,
                    "target": target,
                    "expert": int(np.argmin(dist)),
                    "expert_mask": allowed,
                    "length": hi - lo,
                }
            )
    if not out:
        raise ValueError("No gloss instance to train the gate on (no `gloss_spans`, or no gloss in the pose bank).")
    if skipped:
        logger.warning("%d gloss instance(s) with no bank candidate to choose between are left out of the gate's "
                       "data.", skipped)
    return PoseRows(out, length_key="length")


class MoECollator:
    """Pads MoE instances to the batch's longest: `query` `(B, Q)`, `candidates` `(B, K, T, J, 3)`, `target`
    `(B, T, J, 3)`, `frame_mask` `(B, T)`, `expert` `(B,)`, `expert_mask` `(B, K)`."""

    def __call__(self, batch: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        t = max(b["length"] for b in batch)
        k, _, j, _ = batch[0]["candidates"].shape
        cands = torch.zeros(len(batch), k, t, j, 3)
        target = torch.zeros(len(batch), t, j, 3)
        mask = torch.zeros(len(batch), t)
        for i, b in enumerate(batch):
            n = b["length"]
            cands[i, :, :n] = torch.from_numpy(b["candidates"])
            target[i, :n] = torch.from_numpy(b["target"])
            mask[i, :n] = 1
        return {
            "query": torch.stack([b["query"] for b in batch]),
            "candidates": cands,
            "target": target,
            "frame_mask": mask,
            "expert": torch.tensor([b["expert"] for b in batch]),
            "expert_mask": torch.from_numpy(np.stack([b["expert_mask"] for b in batch])),
        }

"""Which text tokens each gloss of a corpus sample signs, and when: the supervision behind Sign-SALD's guided
cross-attention (`attention_guidance`) and duration conditioning (`gloss_token_timing`). Neither is in the paper.

When comes from the corpus's `gloss_spans` (full-rate frame spans, one per gloss). Which words comes from a
`gloss_text_spans` column (character spans `[start, end)` in `text`, one per gloss) when the corpus has one, else
from the SynthSign grammar (`align_text_to_gloss`); tokens are matched to words by the fast tokenizer's character
offsets.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import torch

from ..data.synthsign_grammar import align_text_to_gloss

__all__ = ["gloss_token_spans", "gloss_token_timing"]


def _text_spans(row: Dict[str, Any], what: str) -> Sequence[Tuple[int, int]]:
    if row.get("gloss_text_spans") is not None:
        return [tuple(s) for s in row["gloss_text_spans"]]
    try:
        return [span for _, span in align_text_to_gloss(row["text"])]
    except ValueError as err:
        raise ValueError(
            f"{what} needs the words each gloss signs: sample {row.get('id')!r} has no `gloss_text_spans` "
            f"column and its `text` is not SynthSign grammar ({err})."
        ) from None


def gloss_token_spans(row: Dict[str, Any], tokenizer, what: str) -> Tuple[list, List[torch.Tensor], torch.Tensor]:
    """`(gloss_spans, token masks, real-token mask)` of a sample: per gloss, which of the text's tokens it signs.

    Args:
        row (`dict`): a corpus sample with `text`, `gloss_spans` (full-rate frame spans `[start, end)`, one per gloss)
            and optionally `gloss_text_spans`.
        tokenizer: the pipeline's fast tokenizer (character offsets are needed); tokens as `encode_prompts` makes them.
        what (`str`): the feature that needs it, for the error messages.

    Returns:
        the frame spans, one boolean mask (num_tokens,) per gloss, and the mask of non-special tokens.
    """
    frame_spans = row.get("gloss_spans")
    if not frame_spans:
        raise ValueError(f"{what} needs `gloss_spans`; sample {row.get('id')!r} has none.")
    text_spans = _text_spans(row, what)
    if len(text_spans) != len(frame_spans):
        raise ValueError(
            f"Sample {row.get('id')!r}: {len(frame_spans)} `gloss_spans` but {len(text_spans)} glosses aligned to the "
            "text; expected one text span per gloss."
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{what} needs a fast tokenizer (character offsets); got a slow one.")
    offsets = torch.tensor(tokenizer(row["text"], return_offsets_mapping=True)["offset_mapping"]).reshape(-1, 2)
    real = offsets[:, 1] > offsets[:, 0]  # special tokens have empty offsets
    tokens = [real & (offsets[:, 0] < b) & (offsets[:, 1] > a) for a, b in text_spans]
    return frame_spans, tokens, real


def gloss_token_timing(row: Dict[str, Any], tokenizer) -> Tuple[torch.Tensor, torch.Tensor]:
    """`(durations, order)` of every text token (num_tokens,): full-rate frames it is signed for, and its place.

    The frames (summing to the sample's `num_frames`) are partitioned at the midpoints of the transitions between
    consecutive glosses, and each gloss's part is shared evenly by the tokens of its words. The rest before the
    first gloss goes to the leading special token and the rest after the last gloss to the trailing one (to the
    first / last gloss's tokens when the tokenizer adds none). Words that no gloss signs get 0.

    `order` is the token's place in the signing, `(k + 0.5) / K` for the k-th of K glosses (averaged when a token
    belongs to several), 0 for the leading and 1 for the trailing special token (0.5 for unsigned tokens, which
    `duration_loss` ignores): signing order differs from the text's (SynthSign puts time words first and
    wh-words last). `SkeletonLatentDenoiser(duration_conditioning=True)` learns and uses both.
    """
    frame_spans, gloss_tokens, real = gloss_token_spans(row, tokenizer, "Duration conditioning")
    if any(not t.any() for t in gloss_tokens):
        raise ValueError(f"Sample {row.get('id')!r}: a gloss's words map to no token of {row['text']!r}.")
    total, k = float(row["num_frames"]), len(frame_spans)
    mids = [(end + nxt) / 2.0 for (_, end), (nxt, _) in zip(frame_spans[:-1], frame_spans[1:])]
    starts, ends = [frame_spans[0][0], *mids], [*mids, frame_spans[-1][1]]
    durations, order_sum, order_count = torch.zeros(len(real)), torch.zeros(len(real)), torch.zeros(len(real))
    for i, (tokens, a, b) in enumerate(zip(gloss_tokens, starts, ends)):
        durations[tokens] += (b - a) / int(tokens.sum())
        order_sum[tokens] += (i + 0.5) / k
        order_count[tokens] += 1
    order = torch.where(order_count > 0, order_sum / order_count.clamp_min(1), torch.full_like(order_sum, 0.5))
    lead = 0 if not real[0] else int(gloss_tokens[0].nonzero()[0])
    trail = len(real) - 1 if not real[-1] else int(gloss_tokens[-1].nonzero()[-1])
    durations[lead] += frame_spans[0][0]
    durations[trail] += total - frame_spans[-1][1]
    if not real[0]:
        order[0] = 0.0
    if not real[-1]:
        order[-1] = 1.0
    return durations, order

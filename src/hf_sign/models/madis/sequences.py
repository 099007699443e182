"""How text and part-wise sign tokens become MaDiS' sequences `[text tokens, <eos>, sign tokens, <eos>]`.

Training (`hf_sign.training.madis_data`) and the pipeline build their sequences here, so both lay them out the same:

* text is tokenised without special tokens, `<eos>` appended, and **left**-padded with `<pad>`: the model counts
  positions from the first real token, so a sign position has the same rotary position whatever the padding;
* a sign position holds one vocabulary id per part (`config.part_token_offset(p) + code`), `(B, L, num_parts)`;
  a text position repeats its id across the parts (`as_part_wise`).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch

from .configuration_madis import MaDiSConfig

__all__ = ["encode_text", "as_part_wise", "codes_to_ids", "ids_to_codes"]


def encode_text(
    tokenizer, texts: Sequence[str], config: MaDiSConfig, device=None
) -> Tuple[torch.LongTensor, torch.LongTensor]:
    """Texts -> `(input_ids (B, L), attention_mask (B, L))`, `<eos>` appended, left-padded.

    Raises a `ValueError` naming the text when it is empty or longer than `config.max_text_tokens` tokens (`<eos>`
    included), instead of truncating it silently.
    """
    rows = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"`prompt` {i} must be a non-empty string; got {text!r}.")
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) + 1 > config.max_text_tokens:
            raise ValueError(
                f"`prompt` {i} has {len(ids) + 1} tokens with <eos>; the model reads at most "
                f"{config.max_text_tokens} (`max_text_tokens`). Shorten it or split it into sentences."
            )
        rows.append(list(ids) + [config.eos_token_id])
    length = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), length), config.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, length - len(row) :] = torch.tensor(row)
        attention_mask[i, length - len(row) :] = 1
    return input_ids.to(device), attention_mask.to(device)


def as_part_wise(ids: torch.LongTensor, config: MaDiSConfig) -> torch.LongTensor:
    """Text ids `(B, L)` -> `(B, L, num_parts)` (the id repeated on every part)."""
    return ids.unsqueeze(-1).expand(*ids.shape, config.num_parts).contiguous()


def codes_to_ids(codes: Sequence[torch.LongTensor], config: MaDiSConfig) -> torch.LongTensor:
    """VQ code indices, one `(B, T)` tensor per part -> vocabulary ids `(B, T, num_parts)`."""
    if len(codes) != config.num_parts:
        raise ValueError(f"`codes` needs {config.num_parts} tensors (one per part); got {len(codes)}.")
    for p, c in enumerate(codes):
        if c.numel() and (int(c.min()) < 0 or int(c.max()) >= config.part_codebook_sizes[p]):
            raise ValueError(f"`codes[{p}]` must be code indices in [0, {config.part_codebook_sizes[p]}).")
    return torch.stack([c.long() + config.part_token_offset(p) for p, c in enumerate(codes)], dim=-1)


def ids_to_codes(ids: torch.LongTensor, config: MaDiSConfig) -> List[List[torch.LongTensor]]:
    """Generated sign ids `(B, M, num_parts)` -> per sequence, one code tensor per part, cut at the first `<eos>`.

    A position that is not a code of its part before the first `<eos>` (which the part heads rule out) raises.
    """
    out = []
    for b, row in enumerate(ids):
        is_eos = (row == config.eos_token_id).any(dim=-1)
        end = int(is_eos.nonzero()[0, 0]) if bool(is_eos.any()) else row.shape[0]
        codes = [row[:end, p] - config.part_token_offset(p) for p in range(config.num_parts)]
        for p, c in enumerate(codes):
            if c.numel() and (int(c.min()) < 0 or int(c.max()) >= config.part_codebook_sizes[p]):
                raise ValueError(f"Sequence {b}, part {p}: a generated id is not a code of that part.")
        out.append(codes)
    return out

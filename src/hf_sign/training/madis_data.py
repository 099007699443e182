"""MaDiS's language-model data: the token corpus and the collator of `[text tokens, <eos>, sign canvas]` sequences.

* `build_token_corpus`: every clip of a split is encoded once by the trained, frozen `PartVQVAE` (on poses
  standardised by the train split's `PoseNormalizer`). A clip longer than `4 (M - 1)` frames (`M` =
  `max_sign_tokens`, 4 = the VQ-VAE's `downsample_rate`) is uniformly resampled to that many frames first, as the
  paper does for its 400-frame limit, so its tokens and `<eos>` fit the canvas. The item keeps the text, the code
  indices per part and the (resampled) standardised poses that `L_phy` compares with.
* `MaDiSCollator`: the text through `sequences.encode_text` (left-padded, `<eos>` appended), then the sign canvas:
  the part-wise sign ids (`sequences.codes_to_ids`), `<eos>`, and more `<eos>`:
  - `sign_canvas="full"` (masked diffusion): up to `M` positions, the canvas the sampler fills and cuts after its
    first `<eos>`. The model never learns the length from the number of positions it sees (at inference there are
    always `M`), and the checkpoint sets are those of the sampler's `M` positions;
  - `sign_canvas="fit"`: up to the next multiple of 4 (at most `M`), canvases of a batch right-padded with `<pad>`
    (attention mask 0). Cheaper, and exact for the causal baseline, which never sees the positions after the one it
    predicts; a bidirectional model would read each clip's length off its canvas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.normalization import PoseNormalizer
from ..models.madis import MaDiSConfig, PartVQVAE
from ..models.madis.sequences import as_part_wise, codes_to_ids, encode_text

__all__ = ["SIGN_CANVASES", "resample_frames", "build_token_corpus", "MaDiSCollator"]

SIGN_CANVASES = ("full", "fit")


def resample_frames(poses: np.ndarray, num_frames: int) -> np.ndarray:
    """`poses` (T, F) uniformly resampled to `num_frames` frames (nearest frame of an evenly spaced grid) when it is
    longer; shorter sequences are returned as they are."""
    if len(poses) <= num_frames:
        return poses
    index = np.round(np.linspace(0, len(poses) - 1, num_frames)).astype(np.int64)
    return poses[index]


@torch.no_grad()
def build_token_corpus(
    rows: Sequence[Mapping[str, Any]],
    part_vqvae: PartVQVAE,
    normalizer: PoseNormalizer,
    config: MaDiSConfig,
    show_progress: bool = True,
) -> List[Dict[str, Any]]:
    """Encode `rows` (dicts with `text` and `poses`) once with the frozen `part_vqvae`.

    Args:
        rows (`Sequence[Mapping]`): a split's rows (`load_pose_splits`).
        part_vqvae (`PartVQVAE`): the trained sign tokenizer (used in eval mode, codebooks untouched).
        normalizer (`PoseNormalizer`): the train split's normalizer (the VQ-VAE's input space).
        config (`MaDiSConfig`): the LM's config (`max_sign_tokens` bounds the canvas).
        show_progress (`bool`, *optional*, defaults to `True`): a tqdm bar over the clips.

    Returns:
        `List[dict]`: per clip `id`, `text`, `codes` (`LongTensor (n, num_parts)`, `n <= max_sign_tokens - 1`),
        `poses` (`FloatTensor (T', feature_dim)`, standardised, resampled when longer than `4 n_max` frames) and
        `num_tokens` (`n`, also the length the batch sampler groups by).
    """
    rate = part_vqvae.config.downsample_rate
    max_frames = rate * (config.max_sign_tokens - 1)
    part_vqvae = part_vqvae.eval()
    device = next(part_vqvae.parameters()).device
    items = []
    for row in tqdm(rows, desc="encoding sign tokens", disable=not show_progress):
        poses = resample_frames(np.asarray(row["poses"], dtype=np.float32), max_frames)
        x = normalizer.normalize(torch.from_numpy(np.ascontiguousarray(poses)))
        ids = part_vqvae.encode(x.unsqueeze(0).to(device))
        codes = torch.stack([i[0] for i in ids], dim=-1).cpu()
        items.append({"id": row.get("id"), "text": row["text"], "codes": codes, "poses": x, "num_tokens": len(codes)})
    return items


@dataclass
class MaDiSCollator:
    """Batches of token-corpus items as MaDiS sequences `[text tokens, <eos>, sign canvas]`.

    Returns a dict with
    - `input_ids` (`LongTensor (B, L_text + L_sign, num_parts)`): the clean sequences (text left-padded with
      `<pad>`, canvases right-padded with `<pad>`);
    - `attention_mask` (`LongTensor (B, L)`): 1 on text, `<eos>` and canvas positions;
    - `text_length` (`int`): `L_text`, where the canvases start;
    - `sign_lengths` (`LongTensor (B,)`): sign tokens per row (the canvas holds them, then `<eos>`s);
    - `canvas_lengths` (`LongTensor (B,)`): canvas positions per row (`M`, or a multiple of 4 up to `M`);
    - `poses` (`FloatTensor (B, downsample_rate * L_sign, feature_dim)`) and `frame_mask` (`BoolTensor`, True on
      real frames): the standardised poses behind the canvas, zero-padded.

    Args:
        tokenizer: the text tokenizer (`PreTrainedTokenizerFast`).
        config (`MaDiSConfig`): the LM's config (vocabulary layout, `max_text_tokens`, `max_sign_tokens`).
        downsample_rate (`int`, *optional*, defaults to 4): frames per sign token.
        sign_canvas (`str`, *optional*, defaults to `"full"`): `"full"` (`M` positions) or `"fit"` (the next
            multiple of `canvas_multiple`), see the module docstring.
        canvas_multiple (`int`, *optional*, defaults to 4): with `"fit"`, canvases are padded with `<eos>` to a
            multiple of it.
    """

    tokenizer: Any
    config: MaDiSConfig
    downsample_rate: int = 4
    sign_canvas: str = "full"
    canvas_multiple: int = 4

    def __post_init__(self):
        if self.sign_canvas not in SIGN_CANVASES:
            raise ValueError(f"`sign_canvas` must be one of {SIGN_CANVASES}; got {self.sign_canvas!r}.")

    def __call__(self, items: List[Mapping[str, Any]]) -> Dict[str, Any]:
        if not items:
            raise ValueError("`items` is empty; the collator needs at least one token-corpus item.")
        cfg = self.config
        # 1. text: left-padded, <eos> appended (one layout for training and the pipeline)
        text_ids, text_mask = encode_text(self.tokenizer, [item["text"] for item in items], cfg)
        # 2. sign canvases: tokens, <eos>, then <eos> up to M ("full") or to a multiple of 4 ("fit")
        sign_lengths = torch.tensor([len(item["codes"]) for item in items])
        if int(sign_lengths.max()) > cfg.max_sign_tokens - 1:
            raise ValueError(
                f"An item has {int(sign_lengths.max())} sign tokens; the canvas holds at most "
                f"`max_sign_tokens - 1` = {cfg.max_sign_tokens - 1} and its <eos>."
            )
        if self.sign_canvas == "full":
            canvas_lengths = torch.full_like(sign_lengths, cfg.max_sign_tokens)
        else:
            multiple = self.canvas_multiple
            canvas_lengths = ((sign_lengths + multiple) // multiple * multiple).clamp(max=cfg.max_sign_tokens)
        width = int(canvas_lengths.max())
        canvas = torch.full((len(items), width, cfg.num_parts), cfg.pad_token_id, dtype=torch.long)
        canvas_mask = torch.zeros(len(items), width, dtype=torch.long)
        frames = self.downsample_rate * width
        feature_dim = items[0]["poses"].shape[-1]
        poses = torch.zeros(len(items), frames, feature_dim)
        frame_mask = torch.zeros(len(items), frames, dtype=torch.bool)
        for b, item in enumerate(items):
            n, c = int(sign_lengths[b]), int(canvas_lengths[b])
            canvas[b, :n] = codes_to_ids([item["codes"][None, :, p] for p in range(cfg.num_parts)], cfg)[0]
            canvas[b, n:c] = cfg.eos_token_id
            canvas_mask[b, :c] = 1
            t = min(len(item["poses"]), frames)
            poses[b, :t] = item["poses"][:t]
            frame_mask[b, :t] = True
        return {
            "input_ids": torch.cat([as_part_wise(text_ids, cfg), canvas], dim=1),
            "attention_mask": torch.cat([text_mask, canvas_mask], dim=1),
            "text_length": text_ids.shape[1],
            "sign_lengths": sign_lengths,
            "canvas_lengths": canvas_lengths,
            "poses": poses,
            "frame_mask": frame_mask,
        }

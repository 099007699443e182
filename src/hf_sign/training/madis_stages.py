"""MaDiS's training stages (MaDiS Sec. 3.1-3.3): `tokenizer` is here, `pretrain` and `sft` (the language model) in
`madis_lm_stages`; `MADIS_STAGES` lists the three in training order.

Stage `tokenizer` (`PartVQVAETrainingArguments`, config section `tokenizer_training`) trains the two tokenizers the
language model reads and writes:

* the sign tokenizer, a `PartVQVAE` (section `part_vqvae`): smooth-L1 reconstruction + commitment on random windows
  of `window_frames` frames of the train split's poses (a multiple of the VQ-VAE's `downsample_rate`; shorter
  sequences are padded and masked), standardised by the train split's `PoseNormalizer` (saved in `normalizer/`, so
  the pose decoder's output goes back to the dataset's units). The codebooks follow their EMA updates in training
  mode; the gradients train the encoders and decoders. The logs hold `recon_loss`, `commit_loss` and
  `perplexity_<part>`. At the end the VQ-VAE is saved in `part_vqvae/` (safetensors), and the metrics get the
  validation reconstruction MPJPE (mm, through the skeleton's forward kinematics, real frames only), the
  validation feature L1 and the codebook usage and perplexity per part.
* the text tokenizer (section `text_tokenizer`): a byte-level BPE trained with `tokenizers` on the train split's
  `text`, saved as a `PreTrainedTokenizerFast` in `text_tokenizer/` (`build_text_tokenizer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping

import torch
from transformers import PreTrainedTokenizerFast

from ..data.collator import PoseCollator
from ..data.normalization import PoseNormalizer
from ..models.madis import PartVQVAE
from ..models.madis.part_vqvae import PART_NAMES
from ..skeletons.spec import get_skeleton
from .arguments import StageTrainingArguments
from .madis_lm_stages import PRETRAIN_STAGE, SFT_STAGE
from .sign_sald_data import RandomCropCollator
from .stages import Stage, StageContext
from .trainer_utils import HfSignTrainer, PoseRows, fit_or_load_normalizer

__all__ = [
    "PartVQVAETrainingArguments",
    "TextTokenizerArguments",
    "TEXT_SPECIAL_TOKENS",
    "build_text_tokenizer",
    "build_part_vqvae",
    "PartVQVAETrainer",
    "TOKENIZER_STAGE",
    "MADIS_STAGES",
]

# `<eos>` ends the text and the sign tokens (the LM's sequence is [text tokens, <eos>, sign tokens, <eos>], so it
# also separates them); `<mask>` is the masked-diffusion state; `<pad>` fills batches; `<unk>` is never produced by
# the byte-level BPE and kept for tokenizer APIs that expect one.
TEXT_SPECIAL_TOKENS = ("<pad>", "<unk>", "<mask>", "<eos>")


# ================================================================================================ 1. arguments
@dataclass
class PartVQVAETrainingArguments(StageTrainingArguments):
    """The `tokenizer_training` section: `StageTrainingArguments` (defaults: the T2M-GPT VQ-VAE recipe that SOKE's
    tokenizer follows, Adam 2e-4 at batch 256 on 64-frame windows) plus

    Args:
        window_frames (`int`, *optional*, defaults to 64): length of the random training windows (SOKE: 64 frames);
            a multiple of `part_vqvae.downsample_rate`. Shorter sequences are used whole, padded and masked.
    """

    num_train_epochs: float = 50.0
    per_device_train_batch_size: int = 256
    learning_rate: float = 2e-4
    window_frames: int = 64

    def __post_init__(self):
        if self.window_frames < 1:
            raise ValueError(f"`tokenizer_training.window_frames` must be >= 1; got {self.window_frames}.")


@dataclass
class TextTokenizerArguments:
    """The `text_tokenizer` section: the byte-level BPE text tokenizer trained on the train split's text.

    Args:
        vocab_size (`int`, *optional*, defaults to 2000): the largest vocabulary (256 byte tokens, the special tokens
            and the BPE merges); a small corpus may give fewer merges. At least 256 + 4.
        model_max_length (`int`, *optional*, defaults to 128): `model_max_length` of the saved tokenizer (text tokens
            with `<eos>`).
    """

    vocab_size: int = 2000
    model_max_length: int = 128

    def __post_init__(self):
        if self.vocab_size < 256 + len(TEXT_SPECIAL_TOKENS):
            raise ValueError(
                f"`text_tokenizer.vocab_size` must be >= {256 + len(TEXT_SPECIAL_TOKENS)} (256 bytes and the special "
                f"tokens {list(TEXT_SPECIAL_TOKENS)}); got {self.vocab_size}."
            )
        if self.model_max_length < 2:
            raise ValueError(f"`text_tokenizer.model_max_length` must be >= 2; got {self.model_max_length}.")


# ================================================================================================ 2. tokenizers
def build_text_tokenizer(texts: Iterable[str], args: TextTokenizerArguments) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts`, as a `PreTrainedTokenizerFast`.

    Byte level (as Qwen3's tokenizer): every string encodes, nothing maps to `<unk>`, and decoding without the
    special tokens gives the text back exactly (case and punctuation kept). Every encoding ends with `<eos>`, the
    token that closes the text part of MaDiS's sequence. Special tokens: `pad_token` `<pad>` (id 0), `unk_token`
    `<unk>`, `mask_token` `<mask>` and `eos_token` `<eos>`.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    texts = list(texts)
    if not texts:
        raise ValueError("`texts` is empty; the text tokenizer is trained on the train split's `text`.")
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"`texts[{bad}]` must be a string; got {type(texts[bad]).__name__}.")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab_size,
        special_tokens=list(TEXT_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    eos = tok.token_to_id("<eos>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A <eos>", pair="$A <eos> $B <eos>", special_tokens=[("<eos>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        eos_token="<eos>",
        model_max_length=args.model_max_length,
        padding_side="right",
    )


def build_part_vqvae(cfg: Mapping[str, Any], skeleton: str) -> PartVQVAE:
    """The `part_vqvae` section's `PartVQVAE` on the dataset's skeleton."""
    return PartVQVAE(skeleton=skeleton, **cfg["part_vqvae"])


# ================================================================================================ 3. stage `tokenizer`
class PartVQVAETrainer(HfSignTrainer):
    """Stage `tokenizer`: the `PartVQVAE`'s own loss (smooth-L1 + weighted commitment) on masked pose windows."""

    def __init__(self, *args, loss_args: PartVQVAETrainingArguments, normalizer: PoseNormalizer, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_args = loss_args
        self.normalizer = normalizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = model(inputs["poses"], mask=inputs["attention_mask"])
        terms = {"loss": out.loss, "recon_loss": out.recon_loss, "commit_loss": out.commit_loss}
        terms.update({f"perplexity_{name}": p for name, p in zip(PART_NAMES, out.perplexity)})
        self.log_loss_terms(terms)
        return (out.loss, terms) if return_outputs else out.loss


@torch.no_grad()
def part_vqvae_validation(
    vqvae: PartVQVAE, normalizer: PoseNormalizer, rows: List[Mapping[str, Any]], batch_size: int
) -> Dict[str, Any]:
    """Reconstruction of whole `rows` through the codebooks (eval mode, no codebook update).

    Returns `tokenizer_val_mpjpe_mm` (mean joint position error in mm through the skeleton's forward kinematics,
    real frames only), `tokenizer_val_feature_l1` (standardised features) and, per part in `PART_NAMES` order,
    `tokenizer_codebook_usage` (fraction of the codes chosen at least once) and `tokenizer_val_perplexity`.
    """
    if not rows:
        return {}
    vqvae = vqvae.eval()
    device = next(vqvae.parameters()).device
    collate = PoseCollator(normalizer=normalizer, pad_to_multiple_of=vqvae.config.downsample_rate)
    to_positions = get_skeleton(vqvae.config.skeleton).to_positions
    err = l1 = frames = 0.0
    counts = [torch.zeros(q.codebook_size, device=device) for q in vqvae.quantizers]
    for i in range(0, len(rows), batch_size):
        batch = collate(list(rows[i : i + batch_size]))
        x, mask = batch["poses"].to(device), batch["attention_mask"].to(device)
        out = vqvae(x, mask=mask)
        a, b = normalizer.denormalize(out.sample), normalizer.denormalize(x)
        pos_err = (to_positions(a) - to_positions(b)).norm(dim=-1).mean(-1)  # (B, T)
        err += float((pos_err * mask).sum())
        l1 += float(((out.sample - x).abs().mean(-1) * mask).sum())
        frames += float(mask.sum())
        latent_mask = mask.view(mask.shape[0], -1, vqvae.config.downsample_rate).any(-1)
        for count, ids in zip(counts, out.ids):
            count += torch.bincount(ids[latent_mask], minlength=count.numel()).float()
    probs = [c / c.sum().clamp_min(1) for c in counts]
    return {
        "tokenizer_val_mpjpe_mm": round(1000 * err / frames, 2),
        "tokenizer_val_feature_l1": round(l1 / frames, 4),
        "tokenizer_codebook_usage": [round(float((c > 0).float().mean()), 4) for c in counts],
        "tokenizer_val_perplexity": [round(float(torch.exp(-(p * torch.log(p + 1e-10)).sum())), 2) for p in probs],
    }


def build_tokenizer_trainer(ctx: StageContext) -> PartVQVAETrainer:
    cfg, data = ctx.config, ctx.data
    normalizer = fit_or_load_normalizer(data, ctx.output_dir / "normalizer")
    vqvae = build_part_vqvae(cfg, data["representation"])
    args = PartVQVAETrainingArguments(**cfg["tokenizer_training"])
    return PartVQVAETrainer(
        model=vqvae,
        args=ctx.training_arguments("tokenizer", args),
        data_collator=RandomCropCollator(
            PoseCollator(normalizer=normalizer, pad_to_multiple_of=vqvae.config.downsample_rate), args.window_frames
        ),
        train_dataset=PoseRows(data["train"], "num_frames"),
        loss_args=args,
        normalizer=normalizer,
        group_by_length=args.group_by_length,
    )


def finish_tokenizer_stage(ctx: StageContext, trainer: PartVQVAETrainer) -> Dict[str, Any]:
    """Measure the validation reconstruction, save `part_vqvae/`, train and save the text tokenizer."""
    vqvae = trainer.accelerator.unwrap_model(trainer.model).eval()
    device = next(vqvae.parameters()).device
    bs = trainer.loss_args.per_device_train_batch_size
    metrics = part_vqvae_validation(vqvae, trainer.normalizer.to(device), ctx.data["validation"], bs)
    vqvae.save_pretrained(str(ctx.output_dir / "part_vqvae"), safe_serialization=True)
    tokenizer = build_text_tokenizer(
        (r["text"] for r in ctx.data["train"]), TextTokenizerArguments(**ctx.config["text_tokenizer"])
    )
    tokenizer.save_pretrained(str(ctx.output_dir / "text_tokenizer"))
    metrics["text_tokenizer_vocab_size"] = len(tokenizer)
    return metrics


TOKENIZER_STAGE = Stage("tokenizer", build_tokenizer_trainer, finish_tokenizer_stage)
MADIS_STAGES = (TOKENIZER_STAGE, PRETRAIN_STAGE, SFT_STAGE)

"""MaDiS's language-model stages (Sec. 3.2 and 3.3): `pretrain` and `sft`, after the `tokenizer` stage
(`madis_stages`). Both train a `MaDiSForMaskedDiffusion` on the token corpus of the frozen tokenizers
(`madis_data`) with the objectives of `madis_losses`:

* `pretrain` (`PretrainingArguments`, config section `pretraining`): tri-level pretraining. `t ~ U(0, 1)`, text and
  sign positions masked alike (`mask_text: false` masks the signs only, the token level of Table 2), the averaged
  sign embedding, loss `L_tok + latent_loss_weight L_lat + physical_loss_weight L_phy` (paper: 1, 1). The LM is
  saved in `pretrained_lm/`.
* `sft` (`SFTArguments`, section `sft`): the text unmasked, the sign canvas masked into the states the sampler of
  `scheduler.pivot_mode` reaches (`uniform`: UTC; `none`: vanilla), `lm.sign_embedding` (paper: `mop`), loss
  `L_tok + alpha (L_lat + L_phy)` (`alpha = 0.5`). It starts from `pretrained_lm/` when the config trains the
  `pretrain` stage, else from scratch (the MDLM baseline). With `lm.bidirectional: false` it trains the causal
  autoregressive baseline by next-token prediction. Its finish writes the `MaDiSPipeline` folder.

The LM's vocabulary and code sizes come from the tokenizer stage's outputs (`text_tokenizer/`, `part_vqvae/`), the
rest from the `lm` section (`MaDiSConfig`'s arguments). Each stage ends with the validation split's loss terms and
masked token accuracy, from fixed draws (seed 0), so runs compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping

import torch
from transformers import AutoTokenizer

from ..data.normalization import PoseNormalizer
from ..models.madis import MaDiSConfig, MaDiSForMaskedDiffusion, PartVQVAE
from ..schedulers.scheduling_masked_diffusion import MaskedDiffusionScheduler
from .arguments import StageTrainingArguments
from .madis_data import SIGN_CANVASES, MaDiSCollator, build_token_corpus
from .madis_losses import madis_lm_loss
from .stages import Stage, StageContext
from .trainer_utils import HfSignTrainer, PoseRows

__all__ = [
    "PretrainingArguments",
    "SFTArguments",
    "build_lm_config",
    "build_scheduler",
    "MaDiSLMTrainer",
    "PRETRAIN_STAGE",
    "SFT_STAGE",
]

PRETRAINED_LM = "pretrained_lm"


# ================================================================================================ 1. arguments
@dataclass
class _LMTrainingArguments(StageTrainingArguments):
    """What both LM stages share: the paper's optimisation (AdamW at 2e-4, cosine decay, batch 64) plus

    Args:
        min_mask_ratio (`float`, *optional*, defaults to 1e-3): the smallest noise level, `t = min + (1 - min) u`.
        sign_canvas (`str`, *optional*, defaults to `"full"`): `"full"` (every sequence holds the sampler's `M` sign
            positions, `<eos>` after the signs) or `"fit"` (`<eos>` up to the next multiple of 4; for the causal
            baseline). See `hf_sign.training.madis_data`.
    """

    per_device_train_batch_size: int = 64
    learning_rate: float = 2e-4
    lr_scheduler_type: str = "cosine"
    min_mask_ratio: float = 1e-3
    sign_canvas: str = "full"

    def _check(self, section: str) -> None:
        if not 0 < self.min_mask_ratio < 1:
            raise ValueError(f"`{section}.min_mask_ratio` must be in (0, 1); got {self.min_mask_ratio}.")
        if self.sign_canvas not in SIGN_CANVASES:
            raise ValueError(f"`{section}.sign_canvas` must be one of {SIGN_CANVASES}; got {self.sign_canvas!r}.")


@dataclass
class PretrainingArguments(_LMTrainingArguments):
    """The `pretraining` section (stage `pretrain`): `_LMTrainingArguments` (200 epochs, as the paper) plus

    Args:
        mask_text (`bool`, *optional*, defaults to `True`): mask the text positions too (the paper's cross-modal
            pretraining); `False` masks the sign positions only (Table 2's token-level row).
        latent_loss_weight (`float`, *optional*, defaults to 1.0): weight of `L_lat` (0 leaves it out).
        physical_loss_weight (`float`, *optional*, defaults to 1.0): weight of `L_phy` (0 leaves it out).
    """

    num_train_epochs: float = 200.0
    mask_text: bool = True
    latent_loss_weight: float = 1.0
    physical_loss_weight: float = 1.0

    def __post_init__(self):
        self._check("pretraining")
        for name in ("latent_loss_weight", "physical_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"`pretraining.{name}` must be >= 0; got {getattr(self, name)}.")


@dataclass
class SFTArguments(_LMTrainingArguments):
    """The `sft` section (stage `sft`): `_LMTrainingArguments` (150 epochs, as the paper) plus

    Args:
        alpha (`float`, *optional*, defaults to 0.5): weight of `L_lat + L_phy` in `L_tok + alpha (L_lat + L_phy)`;
            0 trains `L_tok` only (and must be 0 for the causal baseline).
        checkpoint_state_probability (`float`, *optional*, defaults to 1.0): share of the training rows masked into
            states the checkpoint sampler reaches (the others are masked freely); only with `scheduler.pivot_mode`
            `uniform` or `contiguous`.
    """

    num_train_epochs: float = 150.0
    alpha: float = 0.5
    checkpoint_state_probability: float = 1.0

    def __post_init__(self):
        self._check("sft")
        if self.alpha < 0:
            raise ValueError(f"`sft.alpha` must be >= 0; got {self.alpha}.")
        if not 0 <= self.checkpoint_state_probability <= 1:
            raise ValueError(
                f"`sft.checkpoint_state_probability` must be in [0, 1]; got {self.checkpoint_state_probability}."
            )


# ================================================================================================ 2. models
def build_lm_config(cfg: Mapping[str, Any], part_vqvae: PartVQVAE, tokenizer, **overrides) -> MaDiSConfig:
    """The `lm` section as a `MaDiSConfig` whose vocabulary follows the trained tokenizers (text vocabulary and
    special ids of `tokenizer`, code counts and code width of `part_vqvae`)."""
    kwargs = dict(cfg["lm"], **overrides)
    return MaDiSConfig(
        text_vocab_size=len(tokenizer),
        part_codebook_sizes=list(part_vqvae.config.codebook_sizes),
        code_dim=part_vqvae.config.code_dim,
        mask_token_id=tokenizer.mask_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **kwargs,
    )


def build_scheduler(cfg: Mapping[str, Any], lm_config: MaDiSConfig) -> MaskedDiffusionScheduler:
    """The `scheduler` section's `MaskedDiffusionScheduler` with the LM's `<mask>` and `<eos>`."""
    return MaskedDiffusionScheduler(
        mask_token_id=lm_config.mask_token_id, eos_token_id=lm_config.eos_token_id, **cfg["scheduler"]
    )


def _load_tokenizers(out: Path):
    """The tokenizer stage's outputs, or a `ValueError` saying to run it first."""
    missing = [name for name in ("part_vqvae", "normalizer", "text_tokenizer") if not (out / name).is_dir()]
    if missing:
        raise ValueError(
            f"{out} has no {missing}: run the `tokenizer` stage into this output folder first "
            "(`hf-sign train madis --stage tokenizer`)."
        )
    vqvae = PartVQVAE.from_pretrained(str(out / "part_vqvae")).eval().requires_grad_(False)
    normalizer = PoseNormalizer.from_pretrained(str(out / "normalizer"))
    tokenizer = AutoTokenizer.from_pretrained(str(out / "text_tokenizer"))
    return vqvae, normalizer, tokenizer


def _check_text_lengths(tokenizer, rows: List[Mapping[str, Any]], config: MaDiSConfig) -> None:
    """Refuse, before training, a corpus whose longest text (with `<eos>`) exceeds `lm.max_text_tokens`."""
    if not rows:
        return
    lengths = [len(tokenizer(r["text"], add_special_tokens=False)["input_ids"]) + 1 for r in rows]
    longest = max(range(len(rows)), key=lengths.__getitem__)
    if lengths[longest] > config.max_text_tokens:
        raise ValueError(
            f"Sample {rows[longest].get('id')!r} has {lengths[longest]} text tokens with <eos>, more than "
            f"`lm.max_text_tokens` = {config.max_text_tokens}; pass --set lm.max_text_tokens={lengths[longest]}."
        )


# ================================================================================================ 3. the Trainer
class MaDiSLMTrainer(HfSignTrainer):
    """Stages `pretrain` and `sft`: `madis_lm_loss` on `MaDiSCollator` batches of a `MaDiSForMaskedDiffusion`.

    Args:
        stage (`str`): `"pretrain"` or `"sft"` (which masking and loss weights apply).
        loss_args (`PretrainingArguments` or `SFTArguments`): the stage's section.
        part_vqvae (`PartVQVAE`): the frozen tokenizer (its decoders score `L_phy`; not optimised, not saved).
        noise_scheduler (`MaskedDiffusionScheduler`): the masking (`add_noise`, `add_noise_with_checkpoints`).
        validation_items (`List[dict]`): the validation split's token corpus.
        text_tokenizer, normalizer: saved with the pipeline by the `sft` stage.
    """

    def __init__(
        self,
        *args,
        stage: str,
        loss_args,
        part_vqvae: PartVQVAE,
        noise_scheduler,
        validation_items,
        text_tokenizer,
        normalizer: PoseNormalizer,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.stage, self.loss_args, self.part_vqvae = stage, loss_args, part_vqvae
        self.noise_scheduler, self.validation_items = noise_scheduler, validation_items
        self.text_tokenizer, self.normalizer = text_tokenizer, normalizer

    def loss_options(self) -> Dict[str, Any]:
        """The stage's masking and loss weights (`madis_lm_loss` keywords)."""
        a = self.loss_args
        if self.stage == "pretrain":
            return dict(
                mask_text=a.mask_text,
                latent_loss_weight=a.latent_loss_weight,
                physical_loss_weight=a.physical_loss_weight,
                min_mask_ratio=a.min_mask_ratio,
            )
        with_checkpoints = self.noise_scheduler.config.pivot_mode != "none"
        return dict(
            mask_text=False,
            latent_loss_weight=a.alpha,
            physical_loss_weight=a.alpha,
            checkpoint_state_probability=a.checkpoint_state_probability if with_checkpoints else 0.0,
            min_mask_ratio=a.min_mask_ratio,
        )

    def batch_terms(self, model, inputs, generator=None) -> Dict[str, torch.Tensor]:
        device = inputs["input_ids"].device
        if next(self.part_vqvae.parameters()).device != device:
            self.part_vqvae.to(device)
        return madis_lm_loss(
            model, inputs, self.noise_scheduler, self.part_vqvae, generator=generator, **self.loss_options()
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        terms = self.batch_terms(self.accelerator.unwrap_model(model), inputs)
        self.log_loss_terms(terms)
        return (terms["loss"], terms) if return_outputs else terms["loss"]

    @torch.no_grad()
    def validation_metrics(self) -> Dict[str, float]:
        """The loss terms and the masked token accuracy on the validation split, fixed draws (seed 0), eval mode."""
        items = self.validation_items
        if not items:
            return {}
        model = self.accelerator.unwrap_model(self.model).eval()
        device = next(model.parameters()).device
        generator = torch.Generator().manual_seed(0)
        sums: Dict[str, float] = {}
        size = self.args.per_device_train_batch_size
        for i in range(0, len(items), size):
            batch = self.data_collator(items[i : i + size])
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
            for k, v in self.batch_terms(model, batch, generator=generator).items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(batch["sign_lengths"])
        return {f"val_{k}": round(v / len(items), 5) for k, v in sums.items()}


def _build_trainer(ctx: StageContext, stage: str) -> MaDiSLMTrainer:
    cfg, data, out = ctx.config, ctx.data, ctx.output_dir
    base = ctx.base_pipeline  # fine-tuning: continue from its trained components
    if base is not None:
        vqvae, normalizer, tokenizer = base.part_vqvae.eval(), base.normalizer, base.text_tokenizer
        vqvae.requires_grad_(False)
    else:
        vqvae, normalizer, tokenizer = _load_tokenizers(out)
    bidirectional = bool(cfg["lm"]["bidirectional"])
    # 1. the stage's arguments and LM
    if stage == "pretrain":
        args = PretrainingArguments(**cfg["pretraining"])
        if not bidirectional:
            raise ValueError(
                "`lm.bidirectional: false` (the autoregressive baseline) has no masked pretraining; train it with "
                "`train_stages: [tokenizer, sft]`."
            )
        lm_config = build_lm_config(cfg, vqvae, tokenizer, sign_embedding="average")  # the paper's pretraining input
        model = MaDiSForMaskedDiffusion(lm_config)
    else:
        args = SFTArguments(**cfg["sft"])
        lm_config = build_lm_config(cfg, vqvae, tokenizer)
        trained = list(cfg.get("train_stages") or ["pretrain"])
        if base is not None:
            model, lm_config = base.lm, base.lm.config
        elif "pretrain" in trained:
            if not (out / PRETRAINED_LM / "config.json").is_file():
                raise ValueError(
                    f"The config trains the `pretrain` stage, but {out / PRETRAINED_LM} does not exist: run "
                    "`--stage pretrain` first (or leave `pretrain` out of `train_stages` for the MDLM baseline)."
                )
            model = MaDiSForMaskedDiffusion.from_pretrained(str(out / PRETRAINED_LM), config=lm_config)
        else:
            model = MaDiSForMaskedDiffusion(lm_config)
    model.set_codebooks([vqvae.codebook(p) for p in range(vqvae.num_parts)])
    # 2. the token corpus (frozen tokenizers, once per stage) and its collator
    _check_text_lengths(tokenizer, data["train"] + data["validation"], lm_config)
    train_items = build_token_corpus(data["train"], vqvae, normalizer, lm_config)
    validation_items = build_token_corpus(data["validation"], vqvae, normalizer, lm_config)
    collator = MaDiSCollator(tokenizer, lm_config, vqvae.config.downsample_rate, args.sign_canvas)
    return MaDiSLMTrainer(
        model=model,
        args=ctx.training_arguments(stage, args),
        data_collator=collator,
        train_dataset=PoseRows(train_items, "num_tokens"),
        stage=stage,
        loss_args=args,
        part_vqvae=vqvae,
        noise_scheduler=build_scheduler(cfg, lm_config),
        validation_items=validation_items,
        text_tokenizer=tokenizer,
        normalizer=normalizer,
        group_by_length=args.group_by_length,
    )


def build_pretrain_trainer(ctx: StageContext) -> MaDiSLMTrainer:
    return _build_trainer(ctx, "pretrain")


def build_sft_trainer(ctx: StageContext) -> MaDiSLMTrainer:
    return _build_trainer(ctx, "sft")


def finish_pretrain_stage(ctx: StageContext, trainer: MaDiSLMTrainer) -> Dict[str, Any]:
    """Measure the validation terms and save the pretrained LM into `pretrained_lm/` (safetensors)."""
    metrics = trainer.validation_metrics()
    model = trainer.accelerator.unwrap_model(trainer.model)
    model.save_pretrained(str(ctx.output_dir / PRETRAINED_LM))
    return {f"pretrain_{k}": v for k, v in metrics.items()}


def finish_sft_stage(ctx: StageContext, trainer: MaDiSLMTrainer) -> Dict[str, Any]:
    """Measure the validation terms and save `OUTPUT_DIR` as a complete `MaDiSPipeline` folder."""
    from ..pipelines.pipeline_madis import MaDiSPipeline

    metrics = trainer.validation_metrics()
    lm = trainer.accelerator.unwrap_model(trainer.model).eval()
    pipe = MaDiSPipeline(
        lm=lm,
        part_vqvae=trainer.part_vqvae.eval(),
        text_tokenizer=trainer.text_tokenizer,
        scheduler=trainer.noise_scheduler,
        normalizer=trainer.normalizer,
        fps=ctx.data["fps"],
        skeleton=ctx.data["representation"],
    )
    pipe.save_pretrained(str(ctx.output_dir))
    return {f"sft_{k}": v for k, v in metrics.items()}


PRETRAIN_STAGE = Stage("pretrain", build_pretrain_trainer, finish_pretrain_stage)
SFT_STAGE = Stage("sft", build_sft_trainer, finish_sft_stage)

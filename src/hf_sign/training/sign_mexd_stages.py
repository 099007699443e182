"""Sign-MExD's training stage (Shen et al., Sec. II and III-C): one stage, `diffusion`, that trains the transformer and
the gloss encoder together; `sign_mexd_trainer` holds the config and the entry points.

The stage is its arguments (config sections `gloss_encoder` and `training`), its loss (`sign_mexd_losses`), its
collator (`sign_mexd_data`), its Trainer and a `Stage` for the runner (`hf_sign.training.stages.run_stages`):

1. the train split's glossed rows; their poses standardised by the split's `PoseNormalizer`;
2. the gloss tokenizer (word level, one token per training gloss, `[UNK]` for the rest) and the CLIP gloss encoder
   (Sec. II-B; trained with the transformer unless `gloss_encoder.trainable: false`, since no pretrained CLIP knows
   these glosses);
3. a `DDPMScheduler` with `prediction_type="sample"` noises the (5%-augmented) poses at uniform timesteps, the
   transformer predicts `x_0`, and eq. 11 scores it (`sign_mexd_diffusion_loss`), with Adam at 1e-3;
4. at the end the validation loss (fixed draws, no augmentation) goes into the metrics and `OUTPUT_DIR` becomes a
   complete `SignMExDPipeline` folder: DDIM with the training schedule, and the length model (per-gloss durations,
   `sign_mexd_data.estimate_gloss_durations`) in the pipeline config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from ..data.normalization import PoseNormalizer
from ..models.sign_mexd import SignMExDTransformer, build_gloss_encoder, build_gloss_tokenizer
from ..pipelines.pipeline_sign_mexd import SignMExDPipeline
from ..skeletons.spec import SkeletonSpec, get_skeleton
from .arguments import StageTrainingArguments
from .sign_mexd_data import GlossDurations, GlossPoseCollator, estimate_gloss_durations, glossed_rows
from .sign_mexd_losses import sign_mexd_diffusion_loss
from .stages import Stage, StageContext
from .trainer_utils import HfSignTrainer, PoseRows, fit_or_load_normalizer

__all__ = [
    "GlossEncoderSettings",
    "SignMExDTrainingArguments",
    "build_transformer",
    "build_gloss_components",
    "SignMExDModule",
    "SignMExDTrainer",
    "DIFFUSION_STAGE",
    "SIGN_MEXD_STAGES",
]


# ================================================================================================ 1. arguments
@dataclass
class GlossEncoderSettings:
    """The `gloss_encoder` section: the CLIP gloss encoder `E(g)` of Sec. II-B and its tokenizer (the paper gives no
    size; its width is the transformer's `cross_attention_dim`).

    Args:
        hidden_size (`int`, *optional*, defaults to 256): width of the gloss states.
        num_hidden_layers (`int`, *optional*, defaults to 2): transformer layers.
        num_attention_heads (`int`, *optional*, defaults to 4): attention heads.
        intermediate_size (`int`, *optional*, defaults to 1024): MLP width.
        max_position_embeddings (`int`, *optional*, defaults to 64): the longest gloss sequence in tokens, `[BOS]`
            and `[EOS]` included (also the tokenizer's `model_max_length`; longer inputs are refused).
        trainable (`bool`, *optional*, defaults to `True`): train the encoder with the transformer (`False` keeps it
            a fixed random projection of the glosses).
    """

    hidden_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    max_position_embeddings: int = 64
    trainable: bool = True

    def __post_init__(self):
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"`gloss_encoder.{name}` must be >= 1; got {getattr(self, name)}.")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"`gloss_encoder.hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if self.max_position_embeddings < 3:
            raise ValueError(
                f"`gloss_encoder.max_position_embeddings` must be >= 3 ([BOS], a gloss, [EOS]); got "
                f"{self.max_position_embeddings}."
            )


@dataclass
class SignMExDTrainingArguments(StageTrainingArguments):
    """The `training` section: `StageTrainingArguments` (Adam at the paper's 1e-3; the paper gives neither epochs nor
    batch size, so those are the platform's defaults) plus the objective of Sec. II-D and III-C:

    Args:
        joint_loss_weight (`float`, *optional*, defaults to 1.0): weight of `L_joint` (eq. 9).
        bone_loss_weight (`float`, *optional*, defaults to 0.1): `lambda` of eq. 11, the weight of `L_bone` (eq. 10).
        sample_loss_weight (`float`, *optional*, defaults to 0.0): weight of eq. 2's squared error on the
            standardised features (not in eq. 11; it trains the features no joint position depends on, such as
            smplx133's jaw and expression).
        pose_noise_rate (`float`, *optional*, defaults to 0.05): standard deviation of the Gaussian noise on the
            clean poses, in units of each feature's training standard deviation (Sec. III-C's 5%).
    """

    joint_loss_weight: float = 1.0
    bone_loss_weight: float = 0.1
    sample_loss_weight: float = 0.0
    pose_noise_rate: float = 0.05

    def __post_init__(self):
        for name in ("joint_loss_weight", "bone_loss_weight", "sample_loss_weight", "pose_noise_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"`training.{name}` must be >= 0; got {getattr(self, name)}.")
        if self.joint_loss_weight + self.bone_loss_weight + self.sample_loss_weight <= 0:
            raise ValueError("`training` gives every loss term weight 0; set `joint_loss_weight` (eq. 11: 1.0).")


# ================================================================================================ 2. models
def build_transformer(cfg: Mapping[str, Any], pose_dim: int) -> SignMExDTransformer:
    """The `transformer` section's `SignMExDTransformer` on `pose_dim` features, cross-attending to the gloss
    encoder's `hidden_size`-wide states."""
    width = int(cfg["gloss_encoder"]["hidden_size"])
    return SignMExDTransformer(pose_dim=pose_dim, cross_attention_dim=width, **cfg["transformer"])


def build_gloss_components(cfg: Mapping[str, Any], rows: List[Dict[str, Any]]):
    """`(tokenizer, text_encoder)`: the gloss tokenizer over the glosses of `rows` and the CLIP gloss encoder."""
    settings = GlossEncoderSettings(**cfg["gloss_encoder"])
    tokenizer = build_gloss_tokenizer(
        sorted({g for r in rows for g in r["gloss"]}), model_max_length=settings.max_position_embeddings
    )
    encoder = build_gloss_encoder(
        tokenizer, settings.hidden_size, settings.num_hidden_layers, settings.num_attention_heads,
        settings.intermediate_size, settings.max_position_embeddings,
    )
    return tokenizer, encoder.requires_grad_(settings.trainable)


class SignMExDModule(nn.Module):
    """What the Trainer optimises: the transformer and the gloss encoder (frozen unless trainable)."""

    def __init__(self, transformer: SignMExDTransformer, text_encoder: nn.Module):
        super().__init__()
        self.transformer = transformer
        self.text_encoder = text_encoder

    def encode_gloss(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.text_encoder(input_ids=input_ids, attention_mask=attention_mask.long()).last_hidden_state


# ================================================================================================ 3. the stage
class SignMExDTrainer(HfSignTrainer):
    """Stage `diffusion`: `sign_mexd_diffusion_loss` on `GlossPoseCollator` batches of a `SignMExDModule`."""

    def __init__(self, *args, loss_args: SignMExDTrainingArguments, noise_scheduler: DDPMScheduler,
                 skeleton: SkeletonSpec, normalizer: PoseNormalizer, tokenizer: Any, durations: GlossDurations,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.loss_args, self.noise_scheduler, self.skeleton = loss_args, noise_scheduler, skeleton
        self.normalizer, self.tokenizer, self.durations = normalizer, tokenizer, durations

    def batch_loss(self, module: SignMExDModule, inputs: Mapping[str, Any], training: bool, **draws):
        states = module.encode_gloss(inputs["input_ids"], inputs["gloss_attention_mask"])
        normalizer = self.normalizer.to(inputs["poses"].device)
        return sign_mexd_diffusion_loss(
            module.transformer, inputs["poses"], inputs["attention_mask"], states, inputs["gloss_attention_mask"],
            self.loss_args, self.noise_scheduler, self.skeleton, normalizer.denormalize, training=training, **draws,
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        terms = self.batch_loss(self.accelerator.unwrap_model(model), inputs, training=model.training)
        self.log_loss_terms(terms)
        return (terms["loss"], terms) if return_outputs else terms["loss"]


def build_trainer(ctx: StageContext) -> SignMExDTrainer:
    cfg, data = ctx.config, ctx.data
    rows, _ = glossed_rows(data["train"], warn=False)  # `prepare` counted and reported the others
    normalizer = ctx.component("normalizer", lambda: fit_or_load_normalizer(data, ctx.output_dir / "normalizer"))
    if ctx.base_pipeline is not None:  # fine-tuning: continue from its trained components
        tokenizer, text_encoder = ctx.base_pipeline.tokenizer, ctx.base_pipeline.text_encoder
    else:
        tokenizer, text_encoder = build_gloss_components(cfg, rows)
    transformer = ctx.component("transformer", lambda: build_transformer(cfg, normalizer.config.feature_dim))
    args = SignMExDTrainingArguments(**cfg["training"])
    sched = cfg["scheduler"]
    ddpm = DDPMScheduler(
        num_train_timesteps=sched["num_train_timesteps"], beta_schedule=sched["beta_schedule"],
        beta_start=sched["beta_start"], beta_end=sched["beta_end"], clip_sample=sched["clip_sample"],
        prediction_type="sample",  # the transformer predicts x_0 (eq. 2)
    )
    return SignMExDTrainer(
        model=SignMExDModule(transformer, text_encoder),
        args=ctx.training_arguments("diffusion", args),
        data_collator=GlossPoseCollator(tokenizer=tokenizer, normalizer=normalizer),
        train_dataset=PoseRows(rows, "num_frames"),
        loss_args=args,
        noise_scheduler=ddpm,
        skeleton=get_skeleton(data["representation"]),
        normalizer=normalizer,
        tokenizer=tokenizer,
        durations=estimate_gloss_durations(rows),
        group_by_length=args.group_by_length,
    )


@torch.no_grad()
def validation_loss(trainer: SignMExDTrainer, rows: List[Dict[str, Any]], batch_size: int) -> Dict[str, float]:
    """Eq. 11's terms on `rows` with fixed draws (seed 0) and no augmentation: comparable across runs."""
    rows = [r for r in rows if r.get("gloss")]
    if not rows:
        return {}
    module = trainer.accelerator.unwrap_model(trainer.model).eval()
    device = next(module.parameters()).device
    g = torch.Generator().manual_seed(0)
    sums: Dict[str, float] = {}
    for i in range(0, len(rows), batch_size):
        batch = trainer.data_collator(rows[i : i + batch_size])
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        poses = batch["poses"]
        steps = torch.randint(0, trainer.noise_scheduler.config.num_train_timesteps, (poses.shape[0],), generator=g)
        noise = torch.randn(poses.shape, generator=g).to(device)
        terms = trainer.batch_loss(module, batch, training=False, noise=noise, timesteps=steps.to(device))
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(poses)
    return {f"val_{k}": round(v / len(rows), 5) for k, v in sums.items()}


def finish_stage(ctx: StageContext, trainer: SignMExDTrainer) -> Dict[str, Any]:
    """Measure the validation loss and save `OUTPUT_DIR` as a complete `SignMExDPipeline` folder."""
    cfg = ctx.config
    module = trainer.accelerator.unwrap_model(trainer.model)
    metrics = validation_loss(trainer, ctx.data["validation"], trainer.args.per_device_train_batch_size)
    scheduler = DDIMScheduler.from_config(
        trainer.noise_scheduler.config,
        steps_offset=cfg["scheduler"]["steps_offset"],
        set_alpha_to_one=cfg["scheduler"]["set_alpha_to_one"],
    )
    pipe = SignMExDPipeline(
        transformer=module.transformer.eval(), text_encoder=module.text_encoder.eval().requires_grad_(False),
        tokenizer=trainer.tokenizer, scheduler=scheduler, normalizer=trainer.normalizer, fps=ctx.data["fps"],
        skeleton=ctx.data["representation"], **trainer.durations.to_dict(),
    )
    pipe.save_pretrained(str(ctx.output_dir))
    metrics["gloss_vocabulary_size"] = len(trainer.tokenizer)
    return {f"diffusion_{k}": v for k, v in metrics.items()}


DIFFUSION_STAGE = Stage("diffusion", build_trainer, finish_stage)
SIGN_MEXD_STAGES = (DIFFUSION_STAGE,)

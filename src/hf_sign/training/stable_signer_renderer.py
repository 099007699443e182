"""Stable Signer's renderer stage: the pose-to-video diffusion renderer, trained on avatar frames.

The paper renders its stabilised poses with a pose-conditioned video diffusion model (ControlNeXt/Wan). Here the
renderer is diffusers' `UNet2DConditionModel` + `ControlNetModel` in pixel space (`SignVideoPipeline`), trained on
pictures the project draws itself (`hf_sign.render.avatar`), so pose -> appearance is a real learning task:

* a training sample is a random (sequence, frame, style): the target is the avatar of that frame in that style, the
  control the skeleton frame (same framing), the reference the avatar in the same style at another random frame of
  the same sequence (so the appearance must come from the reference and the pose from the control);
* the DDPM loss `|| y - f_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, control, reference) ||^2` at uniform
  timesteps, with the betas of the `renderer` section, where the target `y` is the noise `eps`, the clean frame `x0`
  or the velocity, as `renderer.prediction_type` says;
* at the end `unet/`, `controlnet/`, `reference_encoder/` and `renderer_scheduler/` (DDIM with the training betas) are
  saved into the output folder, and the validation SSIM and hand-region SSIM of DDIM samples against the target
  avatar frames (with the skeleton-only baseline beside them) go into the metrics, prefixed `renderer_`.

Config sections: `renderer` ([`RendererSettings`]: image size, channels, layers, cross-attention width, styles, DDPM
betas) and `renderer_training` ([`RendererTrainingArguments`]: the optimisation, frames per sequence, validation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import ControlNetModel, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from torch import nn
from tqdm.auto import tqdm

from ..evaluation.image_metrics import hand_ssim, ssim
from ..models.stable_signer import ReferenceImageEncoder
from ..pipelines.pipeline_sign_video import SignVideoPipeline, image_to_tensor, renderer_noise_prediction
from ..render.avatar import AVATAR_STYLES, draw_avatar_frames, draw_skeleton_frames, hand_boxes
from ..skeletons.spec import get_skeleton
from .arguments import StageTrainingArguments
from .config_utils import ConfigSection
from .stages import Stage, StageContext
from .trainer_utils import HfSignTrainer

__all__ = [
    "RendererSettings",
    "RendererTrainingArguments",
    "RendererModule",
    "RendererSamples",
    "RendererCollator",
    "RendererTrainer",
    "build_renderer",
    "build_renderer_trainer",
    "finish_renderer_stage",
    "evaluate_renderer",
    "renderer_loss",
    "RENDERER_STAGE",
    "RENDERER_CONFIG_SECTIONS",
]


# ================================================================================================ 1. config
@dataclass
class RendererSettings:
    """The `renderer` section: the shape of the renderer and its noise schedule.

    Args:
        image_size (`int`, *optional*, defaults to 64): frame width and height in pixels.
        patch_size (`int`, *optional*, defaults to 2): pixels per side packed into channels before the UNet
            (pixel-unshuffle; 1 keeps plain pixels). The UNet runs at `image_size / patch_size`, which makes
            attention and convolutions about 4x cheaper at 2.
        block_out_channels (`Tuple[int]`, *optional*, defaults to `(32, 64, 96)`): UNet (and ControlNet) channels per
            resolution level.
        layers_per_block (`int`, *optional*, defaults to 1): ResNet layers per UNet level.
        attention_levels (`int`, *optional*, defaults to 2): how many of the lowest-resolution levels have
            self- and cross-attention (cross attention reads the reference tokens).
        attention_head_dim (`int`, *optional*, defaults to 16): width of an attention head.
        cross_attention_dim (`int`, *optional*, defaults to 64): width of the reference tokens.
        norm_num_groups (`int`, *optional*, defaults to 8): GroupNorm groups in the UNet and ControlNet.
        conditioning_channels (`int`, *optional*, defaults to 16): channels of the ControlNet's first
            control-image convolution (doubled per stride-2 step down to the UNet's resolution).
        reference_block_out_channels (`Tuple[int]`, *optional*, defaults to `(32, 64, 64)`): the reference
            encoder's channels per stride-2 block.
        reference_token_grid_size (`int`, *optional*, defaults to 4): the reference encoder's token grid.
        num_styles (`int`, *optional*, defaults to 7): the first this many `AVATAR_STYLES` are trained on.
        concat_conditioning (`bool`, *optional*, defaults to `True`): the UNet (and the ControlNet's copy of its
            input) also reads the control frame and the reference image concatenated to the noisy frame. Not in the
            paper (ControlNet and attention only; the `paper` config leaves it off): ControlNet's zero-initialised
            residuals are made for fine-tuning a pretrained UNet, and a small renderer trained from scratch for a few
            hundred steps barely starts to use them.
        inference_strength (`float`, *optional*, defaults to 1.0): the pipeline's `default_strength`: sampling starts
            from the reference image noised this far down the schedule (1: from pure noise, as in the paper). Below 1
            the frames start from the reference picture, which keeps the appearance of an under-trained renderer
            clean but also pulls every frame towards the reference's pose.
        prediction_type (`str`, *optional*, defaults to `"epsilon"`): what the UNet predicts, as diffusers'
            schedulers name it: `"epsilon"` (the noise), `"sample"` (the clean frame) or `"v_prediction"`. With
            `"sample"` every training step at a high noise level asks for the whole frame from the control and the
            reference, so a renderer trained from scratch learns to follow the skeleton early.
        num_train_timesteps (`int`, *optional*, defaults to 1000): DDPM steps.
        beta_schedule (`str`, *optional*, defaults to `"squaredcos_cap_v2"`): diffusers beta schedule (the cosine
            schedule of Nichol & Dhariwal, which keeps more of a 64x64 image through the middle steps than DDPM's
            linear one).
        beta_start (`float`, *optional*, defaults to 1e-4): first beta (linear schedules).
        beta_end (`float`, *optional*, defaults to 0.02): last beta (linear schedules).
    """

    image_size: int = 64
    patch_size: int = 2
    block_out_channels: Tuple[int, ...] = (32, 64, 96)
    layers_per_block: int = 1
    attention_levels: int = 2
    attention_head_dim: int = 16
    cross_attention_dim: int = 64
    norm_num_groups: int = 8
    conditioning_channels: int = 16
    reference_block_out_channels: Tuple[int, ...] = (32, 64, 64)
    reference_token_grid_size: int = 4
    num_styles: int = len(AVATAR_STYLES)
    concat_conditioning: bool = True
    inference_strength: float = 1.0
    prediction_type: str = "epsilon"
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self):
        p = self.patch_size
        if p < 1 or p & (p - 1):
            raise ValueError(f"`renderer.patch_size` must be a power of two >= 1; got {p}.")
        if self.image_size < 16 or self.image_size % (p * 2 ** (len(self.block_out_channels) - 1)):
            raise ValueError(
                f"`renderer.image_size` must be >= 16 and a multiple of patch_size * 2^(levels - 1) = "
                f"{p * 2 ** (len(self.block_out_channels) - 1)}; got {self.image_size}."
            )
        if not 0 <= self.attention_levels <= len(self.block_out_channels):
            raise ValueError(
                f"`renderer.attention_levels` must be in 0..{len(self.block_out_channels)}; got "
                f"{self.attention_levels}."
            )
        if not 0 < self.inference_strength <= 1:
            raise ValueError(f"`renderer.inference_strength` must be in (0, 1]; got {self.inference_strength}.")
        if self.prediction_type not in ("epsilon", "sample", "v_prediction"):
            raise ValueError(
                "`renderer.prediction_type` must be 'epsilon', 'sample' or 'v_prediction'; got "
                f"{self.prediction_type!r}."
            )
        if not 1 <= self.num_styles <= len(AVATAR_STYLES):
            raise ValueError(f"`renderer.num_styles` must be in 1..{len(AVATAR_STYLES)}; got {self.num_styles}.")


@dataclass
class RendererTrainingArguments(StageTrainingArguments):
    """The `renderer_training` section: `StageTrainingArguments` (defaults: one epoch at batch 16, AdamW 8e-4 with a
    short warm-up and a cosine decay) plus

    Args:
        frames_per_sequence (`int`, *optional*, defaults to 7): samples drawn from every train sequence per epoch
            (a random frame and style each time).
        max_train_sequences (`int`, *optional*, defaults to 0): train on the first this many sequences (0: all).
        validation_sequences (`int`, *optional*, defaults to 4): validation sequences scored at the end.
        validation_frames (`int`, *optional*, defaults to 4): frames scored per validation sequence (evenly spaced;
            each sequence in its own style, cycling through the trained styles).
        validation_inference_steps (`int`, *optional*, defaults to 20): DDIM steps of the validation samples.
    """

    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 16
    learning_rate: float = 8e-4
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.03
    group_by_length: bool = False
    frames_per_sequence: int = 7
    max_train_sequences: int = 0
    validation_sequences: int = 4
    validation_frames: int = 4
    validation_inference_steps: int = 20

    def __post_init__(self):
        for name in ("frames_per_sequence", "validation_inference_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"`renderer_training.{name}` must be >= 1; got {getattr(self, name)}.")
        for name in ("max_train_sequences", "validation_sequences", "validation_frames"):
            if getattr(self, name) < 0:
                raise ValueError(f"`renderer_training.{name}` must be >= 0; got {getattr(self, name)}.")


def _section(cfg: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    return cfg[name] if name in cfg else cfg


# ================================================================================================ 2. models
def build_renderer(cfg: Mapping[str, Any]) -> Dict[str, Any]:
    """The renderer's modules from the `renderer` section (`cfg` is the whole config or the section itself).

    Returns:
        `dict` with `unet` (`UNet2DConditionModel`), `controlnet` (`ControlNetModel.from_unet`: the UNet's encoder
        copied, plus a control-image embedding that downsamples by `patch_size`), `reference_encoder`
        (`ReferenceImageEncoder`) and `scheduler` (the training `DDPMScheduler`, with the section's `prediction_type`).
    """
    s = RendererSettings(**_section(cfg, "renderer"))
    levels, attn = len(s.block_out_channels), s.attention_levels
    channels = 3 * s.patch_size**2
    unet = UNet2DConditionModel(
        sample_size=s.image_size // s.patch_size,
        in_channels=3 * channels if s.concat_conditioning else channels,
        out_channels=channels,
        block_out_channels=tuple(s.block_out_channels),
        layers_per_block=s.layers_per_block,
        down_block_types=("DownBlock2D",) * (levels - attn) + ("CrossAttnDownBlock2D",) * attn,
        up_block_types=("CrossAttnUpBlock2D",) * attn + ("UpBlock2D",) * (levels - attn),
        mid_block_type="UNetMidBlock2DCrossAttn" if attn else None,
        cross_attention_dim=s.cross_attention_dim,
        attention_head_dim=s.attention_head_dim,
        norm_num_groups=s.norm_num_groups,
    )
    steps = int(np.log2(s.patch_size))  # the control embedding's stride-2 steps down to the UNet's resolution
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=tuple(s.conditioning_channels * 2**i for i in range(steps + 1))
    )
    reference_encoder = ReferenceImageEncoder(
        block_out_channels=tuple(s.reference_block_out_channels),
        token_grid_size=s.reference_token_grid_size,
        cross_attention_dim=s.cross_attention_dim,
        norm_num_groups=s.norm_num_groups,
    )
    scheduler = DDPMScheduler(
        num_train_timesteps=s.num_train_timesteps,
        beta_schedule=s.beta_schedule,
        beta_start=s.beta_start,
        beta_end=s.beta_end,
        prediction_type=s.prediction_type,
        clip_sample=True,
    )
    return {"unet": unet, "controlnet": controlnet, "reference_encoder": reference_encoder, "scheduler": scheduler}


class RendererModule(nn.Module):
    """What the renderer Trainer optimises: UNet, ControlNet and reference encoder together."""

    def __init__(
        self, unet: UNet2DConditionModel, controlnet: ControlNetModel, reference_encoder: ReferenceImageEncoder
    ):
        super().__init__()
        self.unet, self.controlnet, self.reference_encoder = unet, controlnet, reference_encoder


# ================================================================================================ 3. data
class RendererSamples(torch.utils.data.Dataset):
    """`frames_per_sequence` samples per sequence; each draws a random frame, style and reference frame.

    Positions come from the skeleton's forward kinematics once, at construction. Drawing happens per sample (a few
    milliseconds), so every epoch sees new (frame, style, reference) triples. Random draws use torch's global
    generator, which the Trainer seeds.
    """

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        representation: str,
        image_size: int,
        num_styles: int,
        frames_per_sequence: int,
        show_progress: bool = False,
    ):
        self.spec = get_skeleton(representation)
        self.size, self.num_styles, self.per_sequence = int(image_size), int(num_styles), int(frames_per_sequence)
        self.positions = [
            np.asarray(self.spec.to_positions(np.asarray(r["poses"], dtype=np.float32)), dtype=np.float32)
            for r in tqdm(rows, desc="forward kinematics", unit="seq", disable=not show_progress)
        ]

    def __len__(self) -> int:
        return len(self.positions) * self.per_sequence

    def draw(self, seq: int, frame: int, style: int, reference_frame: int) -> Dict[str, np.ndarray]:
        """One sample's pictures: `sample` (target avatar), `control` (skeleton), `reference` (avatar), uint8."""
        pos, style_ = self.positions[seq], AVATAR_STYLES[style]
        avatar = draw_avatar_frames(pos, self.spec, style_, self.size, frames=[frame, reference_frame])
        control = draw_skeleton_frames(pos, self.spec, self.size, frames=[frame])[0]
        return {"sample": avatar[0], "control": control, "reference": avatar[1]}

    def __getitem__(self, i: int) -> Dict[str, np.ndarray]:
        seq = i // self.per_sequence
        n = len(self.positions[seq])
        frame, style = int(torch.randint(n, ())), int(torch.randint(self.num_styles, ()))
        reference = int(torch.randint(n - 1, ())) if n > 1 else 0
        reference += int(n > 1 and reference >= frame)  # another frame than the target, where there is one
        return self.draw(seq, frame, style, reference)


class RendererCollator:
    """Stacks samples: `sample` and `reference` in [-1, 1], `control` in [0, 1], each `(B, 3, H, W)`."""

    def __call__(self, samples: List[Dict[str, np.ndarray]]) -> Dict[str, torch.Tensor]:
        stack = {k: image_to_tensor(np.stack([s[k] for s in samples])) for k in ("sample", "control", "reference")}
        stack["control"] = (stack["control"] + 1.0) / 2.0
        return stack


# ================================================================================================ 4. loss, trainer
def renderer_loss(
    module: RendererModule,
    batch: Mapping[str, torch.Tensor],
    noise_scheduler: DDPMScheduler,
    noise: Optional[torch.Tensor] = None,
    timesteps: Optional[torch.Tensor] = None,
) -> Dict[str, torch.Tensor]:
    """DDPM loss of a batch: the squared error of the UNet's output against the noise, the clean frame or the
    velocity, as the scheduler's `prediction_type` says (`noise` and `timesteps` may be fixed, e.g. to compare two
    models)."""
    x0 = batch["sample"]
    if noise is None:
        noise = torch.randn_like(x0)
    if timesteps is None:
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
    noisy = noise_scheduler.add_noise(x0, noise, timesteps)
    states = module.reference_encoder(batch["reference"]).last_hidden_state
    prediction = renderer_noise_prediction(
        module.unet, module.controlnet, noisy, timesteps, batch["control"], states, batch["reference"]
    )
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "sample":
        target = x0
    else:
        target = noise_scheduler.get_velocity(x0, noise, timesteps)
    loss = F.mse_loss(prediction.float(), target.float())
    return {"loss": loss, f"loss_{kind}": loss.detach()}


class RendererTrainer(HfSignTrainer):
    """The renderer stage: `renderer_loss` on `RendererCollator` batches of a `RendererModule`."""

    def __init__(
        self,
        *args,
        loss_args: RendererTrainingArguments,
        noise_scheduler: DDPMScheduler,
        settings: RendererSettings,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.loss_args, self.noise_scheduler, self.settings = loss_args, noise_scheduler, settings

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        terms = renderer_loss(self.accelerator.unwrap_model(model), inputs, self.noise_scheduler)
        self.log_loss_terms(terms)
        return (terms["loss"], terms) if return_outputs else terms["loss"]


def build_renderer_trainer(ctx: StageContext) -> RendererTrainer:
    """The renderer stage's Trainer from `ctx.config` (`renderer`, `renderer_training`, `seed`) and `ctx.data`."""
    settings = RendererSettings(**ctx.config["renderer"])
    args = RendererTrainingArguments(**ctx.config["renderer_training"])
    parts = build_renderer(ctx.config)
    rows = ctx.data["train"]
    if args.max_train_sequences:
        rows = rows[: args.max_train_sequences]
    dataset = RendererSamples(
        rows,
        ctx.data["representation"],
        settings.image_size,
        settings.num_styles,
        args.frames_per_sequence,
        show_progress=len(rows) > 200,
    )
    return RendererTrainer(
        model=RendererModule(parts["unet"], parts["controlnet"], parts["reference_encoder"]),
        args=ctx.training_arguments("renderer", args),
        data_collator=RendererCollator(),
        train_dataset=dataset,
        loss_args=args,
        noise_scheduler=parts["scheduler"],
        settings=settings,
        group_by_length=False,
    )


# =============================================================================================== 5. evaluation, finish
def evaluate_renderer(
    pipe: SignVideoPipeline,
    sequences: Sequence[np.ndarray],
    styles: Sequence[str],
    frames_per_sequence: int = 4,
    num_inference_steps: int = 20,
    seed: int = 0,
    show_progress: bool = False,
    strength: Optional[float] = None,
) -> Tuple[Dict[str, float], List[Dict[str, np.ndarray]]]:
    """SSIM and hand-region SSIM of rendered frames against the target avatar frames, beside two baselines scored
    against the same targets: the skeleton only (the control frame itself) and the reference image (the avatar of the
    first frame, a still picture in the right appearance that ignores the motion).

    Sequence `i` (pose features of `pipe.skeleton`) is rendered in `styles[i % len(styles)]` (the reference: its
    first frame in that style) at `frames_per_sequence` evenly spaced frames (0: every frame), with `strength`
    (default: the pipeline's `default_strength`).

    Returns:
        `(metrics, renders)`: metrics `ssim`, `hand_ssim`, `skeleton_ssim`, `skeleton_hand_ssim`, `reference_ssim`,
        `reference_hand_ssim`, `num_frames` (means over every scored frame), and per sequence a dict of uint8
        `generated`, `target`, `control` frames.
    """
    spec, size = pipe.skeleton, int(pipe.config.image_size)
    gen, tgt, ctl, ref, boxes, renders = [], [], [], [], [], []
    for i, poses in enumerate(tqdm(sequences, desc="rendering", unit="seq", disable=not show_progress)):
        positions = np.asarray(spec.to_positions(np.asarray(poses, dtype=np.float32)))
        n = len(positions)
        k = n if frames_per_sequence <= 0 else min(frames_per_sequence, n)
        frames = sorted(set(np.linspace(0, n - 1, k).round().astype(int).tolist()))
        style = styles[i % len(styles)]
        out = pipe(
            positions=positions,
            style=style,
            frames=frames,
            num_inference_steps=num_inference_steps,
            strength=strength,
            generator=torch.Generator().manual_seed(seed + i),
        )
        target = draw_avatar_frames(positions, spec, style, size, frames=frames)
        gen.append(out.frames)
        tgt.append(target)
        ctl.append(out.control_frames)
        ref.append(np.repeat(out.reference_image[None], len(frames), axis=0))
        boxes.append(hand_boxes(positions, spec, size)[frames])
        renders.append({"generated": out.frames, "target": target, "control": out.control_frames})
    gen, tgt, ctl, ref, boxes = (np.concatenate(a) for a in (gen, tgt, ctl, ref, boxes))
    metrics = {
        "ssim": float(ssim(gen, tgt).mean()),
        "hand_ssim": float(hand_ssim(gen, tgt, boxes).mean()),
        "skeleton_ssim": float(ssim(ctl, tgt).mean()),
        "skeleton_hand_ssim": float(hand_ssim(ctl, tgt, boxes).mean()),
        "reference_ssim": float(ssim(ref, tgt).mean()),
        "reference_hand_ssim": float(hand_ssim(ref, tgt, boxes).mean()),
        "num_frames": int(len(gen)),
    }
    return metrics, renders


def renderer_pipeline(
    module: RendererModule, noise_scheduler: DDPMScheduler, settings: RendererSettings, skeleton: str, fps: float
) -> SignVideoPipeline:
    """A `SignVideoPipeline` on trained modules, with DDIM at the training betas."""
    ddim = DDIMScheduler.from_config(noise_scheduler.config, clip_sample=True, set_alpha_to_one=True)
    pipe = SignVideoPipeline(
        unet=module.unet,
        controlnet=module.controlnet,
        reference_encoder=module.reference_encoder,
        scheduler=ddim,
        image_size=settings.image_size,
        skeleton=skeleton,
        fps=fps,
        default_strength=settings.inference_strength,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def finish_renderer_stage(ctx: StageContext, trainer: RendererTrainer) -> Dict[str, Any]:
    """Save `unet/`, `controlnet/`, `reference_encoder/`, `renderer_scheduler/` into the output folder and score the
    validation split (metrics prefixed `renderer_val_`)."""
    module = trainer.accelerator.unwrap_model(trainer.model).eval()
    args, settings = trainer.loss_args, trainer.settings
    pipe = renderer_pipeline(module, trainer.noise_scheduler, settings, ctx.data["representation"], ctx.data["fps"])
    out = ctx.output_dir
    module.unet.save_pretrained(str(out / "unet"))
    module.controlnet.save_pretrained(str(out / "controlnet"))
    module.reference_encoder.save_pretrained(str(out / "reference_encoder"))
    pipe.scheduler.save_pretrained(str(out / "renderer_scheduler"))
    rows = ctx.data.get("validation") or []
    if not rows or not args.validation_sequences or not args.validation_frames:
        return {}
    styles = [s.name for s in AVATAR_STYLES[: settings.num_styles]]
    metrics, _ = evaluate_renderer(
        pipe,
        [r["poses"] for r in rows[: args.validation_sequences]],
        styles,
        args.validation_frames,
        args.validation_inference_steps,
        seed=ctx.config["seed"],
    )
    return {f"renderer_val_{k}": round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


RENDERER_STAGE = Stage("renderer", build_renderer_trainer, finish_renderer_stage)

# the renderer's config sections, for a system's `ConfigSchema`
RENDERER_CONFIG_SECTIONS = {
    "renderer": ConfigSection(RendererSettings),
    "renderer_training": ConfigSection(RendererTrainingArguments),
}

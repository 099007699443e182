"""Training Sign-SALD (Shen et al.): stage `vae` (skeleton-aware VAE), then stage `ldm` (latent denoiser).

```
OUTPUT_DIR/model_index.json, vae/, denoiser/, text_encoder/, tokenizer/, scheduler/, normalizer/,
           pipeline_sign_sald.py          a complete `SignSALDPipeline` folder (written by the ldm stage)
OUTPUT_DIR/sign_sald_config.json          the resolved config (YAML + overrides)
OUTPUT_DIR/sign_sald_metrics.json         per-stage times, final losses, VAE validation error, scaling factor
OUTPUT_DIR/checkpoints/{vae,ldm}/checkpoint-N   Trainer checkpoints (safetensors weights; resume)
```

* Stage `vae`: `SkeletonVAE.compute_loss` (eq. 4: L1 features + positions + velocities + KL) on poses standardised
  by a `PoseNormalizer` fitted on the train split; the position term runs forward kinematics on
  `normalizer.denormalize`d features. At the end the latent scaling factor (1 / std of the posterior means over the
  train split) is written into the VAE's config, as the latent-diffusion recipe prescribes; with
  `vae_training.latent_normalization: per_channel` also a mean and std per atomic joint and channel.
* Stage `ldm`: the frozen VAE encodes every train sequence once (posterior mean and std are cached; a fresh
  posterior sample is drawn at every step when `ldm_training.sample_posterior`); latents are scaled by
  `SkeletonVAE.scale_latents` (the scaling factor, or the per-channel statistics); `DDPMScheduler` (linear betas,
  1000 steps) adds noise at uniform timesteps; the loss is the epsilon MSE over real latent frames (eq. 8;
  `denoiser.prediction_type` may also be `sample` or `v_prediction`, the `small` config uses `v_prediction`) plus
  `length_loss_weight` times the length predictor's log-length MSE.
  The VAE stage can train on random windows (`vae_training.crop_frames`), the VAE being convolutional in time.
  The text is dropped to the denoiser's null condition with probability `denoiser.cond_drop_prob`
  (classifier-free guidance). Frozen text-encoder states are computed once per distinct sentence.
  Optional, not in the paper and on in `small` only: `ldm_training.attention_guidance_weight` adds the guided
  cross-attention loss of `attention_guidance` (each latent frame's attention pulled onto the words of the gloss
  signed there, from `gloss_spans`); `denoiser.duration_conditioning` feeds the denoiser the true word timing
  (`gloss_token_timing`, from `gloss_spans`) and adds the duration predictor's loss (weighted like the length
  loss); `ldm_training.latent_joint_loss_weights` weighs the atomic joints in the diffusion MSE.

Entry points: `train_sign_sald(dataset_dir, output_dir, config="tiny", stage=None, seed=0, overrides=None)` (what
`hf-sign train sign-sald` calls) and `python -m hf_sign.training.sign_sald_trainer --dataset_dir D --output_dir O
--config small [--stage vae] [--set vae.num_atomic_joints=5 ...]`. Configs are YAML files in
`hf_sign/configs/sign-sald/` (`tiny`, `small`, `paper`) with the sections of `default_config()`; dotted overrides
are type-checked (`config_utils.apply_overrides`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn
from transformers import HfArgumentParser, Trainer, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from ..data.collator import PoseCollator
from ..data.normalization import PoseNormalizer
from ..models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from ..models.text_encoders import TextEncoderSettings, build_text_encoder, count_text_encoder_parameters, encode_prompts
from ..pipelines.pipeline_sign_sald import SignSALDPipeline
from ..skeletons.spec import get_skeleton
from ..data.io import load_corpus, split_rows
from .attention_guidance import attention_guidance_loss, gloss_token_targets
from .gloss_alignment import gloss_token_timing
from .common import PoseRows, PoseTrainer
from .config_utils import apply_overrides, deep_update, load_config, parse_overrides

logger = logging.getLogger(__name__)

SYSTEM = "sign-sald"
STAGES = ("vae", "ldm")
PAPER_VAE_PARAMS = 2.81e6  # Table 2
# Model arguments that the trainer derives (from the data, the VAE or the text encoder) instead of reading.
_VAE_DERIVED = ("feature_mean", "feature_std", "scaling_factor", "latents_mean", "latents_std")
_DENOISER_DERIVED = ("num_joints", "latent_channels", "text_dim")


@dataclass
class StageTrainingSettings:
    """Optimisation of one stage (keys of the `vae_training` / `ldm_training` config sections).

    Args:
        num_train_epochs (`float`, defaults to 10): epochs over the train split.
        per_device_train_batch_size (`int`, defaults to 32): batch size.
        learning_rate (`float`, defaults to 1e-3): peak learning rate (paper: Adam 1e-3).
        adam_beta1, adam_beta2, adam_epsilon (`float`, defaults to 0.9, 0.999, 1e-8): Adam settings.
        weight_decay (`float`, defaults to 0.0): decoupled weight decay (0 = the paper's plain Adam).
        lr_scheduler_type (`str`, defaults to `"constant"`): transformers scheduler name (`constant`, `cosine`, ...).
        warmup_steps (`float`, defaults to 0.0): warm-up steps (a value < 1 is a fraction of all steps).
        max_grad_norm (`float`, defaults to 1.0): gradient clipping (0 disables it).
        logging_steps (`int`, defaults to 50): log every N steps.
        save_total_limit (`int`, defaults to 1): checkpoints kept (one per epoch is written, for resuming).
        group_by_length (`bool`, defaults to `True`): batch sequences of similar length (less padding).
    """

    num_train_epochs: float = 10.0
    per_device_train_batch_size: int = 32
    learning_rate: float = 1e-3
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    weight_decay: float = 0.0
    lr_scheduler_type: str = "constant"
    warmup_steps: float = 0.0
    max_grad_norm: float = 1.0
    logging_steps: int = 50
    save_total_limit: int = 1
    group_by_length: bool = True


@dataclass
class VAETrainingSettings(StageTrainingSettings):
    """`vae_training` section: `StageTrainingSettings` plus

    Args:
        crop_frames (`int`, defaults to 0): train on random windows of at most this many frames (0: whole
            sequences). The VAE is convolutional in time, so windows teach it the same local motion at a fraction of
            the cost (and with less padding); rounded down to the VAE's temporal multiple.
        latent_normalization (`str`, defaults to `"scalar"`): how latents are scaled for diffusion, estimated at the
            end of the stage: `"scalar"` (the latent-diffusion recipe: one `scaling_factor`, 1 / std) or
            `"per_channel"` (`latents_mean` / `latents_std` per atomic joint and channel, see
            `SkeletonVAE.estimate_latent_statistics`).
    """

    crop_frames: int = 0
    latent_normalization: str = "scalar"

    def __post_init__(self):
        if self.latent_normalization not in ("scalar", "per_channel"):
            raise ValueError(
                f"`vae_training.latent_normalization` must be 'scalar' or 'per_channel'; got {self.latent_normalization!r}."
            )


@dataclass
class LatentTrainingSettings(StageTrainingSettings):
    """`ldm_training` section: `StageTrainingSettings` plus

    Args:
        length_loss_weight (`float`, defaults to 1.0): weight of the length predictor's log-length MSE (and of the
            duration predictor's loss, with `denoiser.duration_conditioning`).
        sample_posterior (`bool`, defaults to `True`): draw a fresh VAE posterior sample at every step instead of
            using the posterior mean.
        attention_guidance_weight (`float`, defaults to 0.0): weight of the guided cross-attention loss
            (`hf_sign.training.attention_guidance`; not in the paper). Needs `gloss_spans` in the train split and the
            words each gloss signs (a `gloss_text_spans` column, or SynthSign text). 0 disables it.
        attention_guidance_heads (`int`, defaults to 0): how many heads of every cross-attention layer it guides,
            the first ones; 0 guides all of them.
        latent_joint_loss_weights (`Dict[str, float]`, *optional*): weights of the diffusion MSE by atomic joint name
            (`SkeletonSpec.atomic_joint_names`, e.g. `{left_hand: 3, right_hand: 3}`; unnamed joints weigh 1),
            normalised to mean 1; `None` weighs them equally (the paper). Not in the paper. Ignored, with a warning,
            for the flat "w/o ST-Latent" VAE, whose latent has no atomic joints.
        snr_gamma (`float`, *optional*): Min-SNR-gamma loss weighting (Hang et al., 2023; `--snr_gamma` of the diffusers
            training scripts): each sample's diffusion MSE is weighted by min(SNR(t), gamma) / SNR(t) for epsilon,
            / (SNR(t) + 1) for v-prediction, and min(SNR(t), gamma) for the clean latent (normalised to mean 1 over the
            timesteps), so the near-noiseless steps stop dominating. `None` weighs all steps equally (the paper). 5 is
            the published default.
    """

    length_loss_weight: float = 1.0
    sample_posterior: bool = True
    attention_guidance_weight: float = 0.0
    attention_guidance_heads: int = 0
    latent_joint_loss_weights: Optional[Dict[str, float]] = None
    snr_gamma: Optional[float] = None

    def __post_init__(self):
        if self.snr_gamma is not None and not (isinstance(self.snr_gamma, (int, float)) and self.snr_gamma > 0):
            raise ValueError(f"`ldm_training.snr_gamma` must be null or a number > 0; got {self.snr_gamma!r}.")
        if self.attention_guidance_weight < 0:
            raise ValueError(f"`ldm_training.attention_guidance_weight` must be >= 0; got {self.attention_guidance_weight}.")
        if self.attention_guidance_heads < 0:
            raise ValueError(f"`ldm_training.attention_guidance_heads` must be >= 0; got {self.attention_guidance_heads}.")
        weights = self.latent_joint_loss_weights
        if weights is not None and (
            not isinstance(weights, dict)
            or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weights.values())
        ):
            raise ValueError(
                "`ldm_training.latent_joint_loss_weights` must be null or a mapping from atomic joint name to a weight "
                f">= 0 (e.g. {{left_hand: 3, right_hand: 3}}); got {weights!r}."
            )


def latent_joint_weights(weights: Optional[Dict[str, float]], vae_config: Dict[str, Any]) -> Optional[List[float]]:
    """`ldm_training.latent_joint_loss_weights` as one weight per latent atomic joint of a VAE with `vae_config`.

    Unknown names raise (listing the valid ones); the flat VAE (`skeleton_aware: false`) gets `None` and a warning.
    """
    if not weights:
        return None
    if not vae_config["skeleton_aware"]:
        logger.warning("`ldm_training.latent_joint_loss_weights` is ignored: the flat VAE's latent has no atomic joints.")
        return None
    names = list(get_skeleton(vae_config["skeleton"]).atomic_joint_names[vae_config["num_atomic_joints"]])
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(
            f"`ldm_training.latent_joint_loss_weights` names {unknown}, not atomic joints of the VAE's latent "
            f"(J' = {len(names)}: {names})."
        )
    out = [float(weights.get(n, 1.0)) for n in names]
    if sum(out) <= 0:
        raise ValueError("`ldm_training.latent_joint_loss_weights` gives every atomic joint weight 0.")
    return out


@dataclass
class SignSALDTrainingArguments:
    """Command-line arguments of `python -m hf_sign.training.sign_sald_trainer` (parsed by `HfArgumentParser`).

    Args:
        dataset_dir (`str`): hf-sign dataset folder (or Hub id) with a `train` split (and `validation`).
        output_dir (`str`): output folder (ends up as a complete pipeline folder).
        config (`str`, defaults to `"tiny"`): config name in `hf_sign/configs/sign-sald/` or a YAML path.
        stage (`str`, *optional*): `"vae"` or `"ldm"`; default: both, in order.
        seed (`int`, *optional*): overrides the config's seed.
        set (`List[str]`, *optional*): dotted `key=value` overrides, e.g. `vae.num_atomic_joints=5`.
        resume_from_checkpoint (`bool`, defaults to `False`): continue each stage from its latest checkpoint.
        num_threads (`int`, defaults to 0): torch CPU threads during training (0 keeps torch's setting).
        use_cpu (`bool`, defaults to `False`): train on CPU even when an accelerator is present.
    """

    dataset_dir: str = field(metadata={"help": "hf-sign dataset folder (or Hub id)"})
    output_dir: str = field(metadata={"help": "output folder (a pipeline folder at the end)"})
    config: str = field(default="tiny", metadata={"help": "config name (tiny, small, paper) or YAML path"})
    stage: Optional[str] = field(default=None, metadata={"help": "vae or ldm (default: both)"})
    seed: Optional[int] = None
    set: List[str] = field(default_factory=list, metadata={"help": "overrides key=value (dotted keys)", "nargs": "*"})
    resume_from_checkpoint: bool = False
    num_threads: int = 0
    use_cpu: bool = False


# ------------------------------------------------------------------------------------------------- config
def _init_defaults(cls, skip) -> Dict[str, Any]:
    out = {}
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or name in skip or p.default is inspect.Parameter.empty:
            continue
        out[name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out


def default_config() -> Dict[str, Any]:
    """Every config key with its default (the paper-scale model and schedule); YAML files override these."""
    return {
        "seed": 0,
        "data": {"max_frames": 400},
        "text_encoder": TextEncoderSettings().to_dict(),
        "vae": _init_defaults(SkeletonVAE, _VAE_DERIVED),
        "denoiser": _init_defaults(SkeletonLatentDenoiser, _DENOISER_DERIVED),
        "scheduler": {
            "num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
            "clip_sample": False, "steps_offset": 1, "set_alpha_to_one": False,
        },
        "vae_training": dataclasses.asdict(VAETrainingSettings(num_train_epochs=50, per_device_train_batch_size=128)),
        "ldm_training": dataclasses.asdict(LatentTrainingSettings(num_train_epochs=500, per_device_train_batch_size=64)),
        "inference": {"num_inference_steps": 50, "guidance_scale": 2.5, "eta": 0.0},
        "num_threads": 0,
    }


def full_config(config: Union[str, Path, Dict[str, Any], None] = "tiny", overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Defaults <- YAML config (name, path or dict) <- dotted overrides; unknown keys and wrong types raise."""
    cfg = default_config()
    if isinstance(config, dict):
        deep_update(cfg, config, where=f"{SYSTEM} config")
    elif config:
        deep_update(cfg, load_config(SYSTEM, config), where=f"{SYSTEM} config {config}")
    cfg = apply_overrides(cfg, overrides, where=f"{SYSTEM} config")
    TextEncoderSettings(**cfg["text_encoder"])  # validate early
    if cfg["denoiser"]["prediction_type"] not in ("epsilon", "sample", "v_prediction"):
        raise ValueError(
            f"`denoiser.prediction_type` must be 'epsilon', 'sample' or 'v_prediction'; got {cfg['denoiser']['prediction_type']!r}."
        )
    VAETrainingSettings(**cfg["vae_training"])
    LatentTrainingSettings(**cfg["ldm_training"])
    return cfg


def build_vae(cfg: Dict[str, Any]) -> SkeletonVAE:
    return SkeletonVAE(**cfg["vae"])


def build_denoiser(cfg: Dict[str, Any], vae: SkeletonVAE, text_dim: int) -> SkeletonLatentDenoiser:
    return SkeletonLatentDenoiser(
        num_joints=vae.latent_num_joints, latent_channels=vae.latent_channels, text_dim=text_dim, **cfg["denoiser"]
    )


def text_dim_of(settings: TextEncoderSettings) -> int:
    if settings.type == "minilm":
        from ..models.text_encoders import minilm_config

        return int(minilm_config().hidden_size)
    return settings.hidden_size


def sign_sald_param_counts(config: Union[str, Path, Dict[str, Any]] = "paper", overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Instantiate the config's models (no data needed) and count their parameters.

    Returns a dict with `vae`, `denoiser` (with its length predictor), `length_predictor`, `text_encoder` (frozen
    unless `text_encoder.trainable`; CLIP counted with a 1000-word vocabulary unless pretrained), `trainable`
    (VAE + denoiser [+ text encoder if trainable]) and `paper_vae` (2.81M, Table 2) for comparison.
    """
    cfg = full_config(config, overrides)
    settings = TextEncoderSettings(**cfg["text_encoder"])
    vae = build_vae(cfg)
    denoiser = build_denoiser(cfg, vae, text_dim_of(settings))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    text = count_text_encoder_parameters(settings, vocab_size=1000)
    out = {
        "vae": count(vae),
        "denoiser": count(denoiser),
        "length_predictor": count(denoiser.length_predictor),
        "text_encoder": text,
        "text_encoder_type": settings.type,
        "paper_vae": int(PAPER_VAE_PARAMS),
    }
    out["trainable"] = out["vae"] + out["denoiser"] + (text if settings.trainable else 0)
    return out


# ------------------------------------------------------------------------------------------------- data
def load_pose_splits(dataset_dir: str, max_frames: int) -> Dict[str, Any]:
    """Load train (and validation) rows: `{"train": [...], "validation": [...], "representation", "fps", "skipped"}`.

    Train sequences longer than `max_frames` are left out (counted, with a warning), never cut.
    """
    dd = load_corpus(dataset_dir)
    if "train" not in dd or len(dd["train"]) == 0:
        raise ValueError(f"Dataset {dataset_dir!s} has no non-empty `train` split; Sign-SALD trains on it.")
    out: Dict[str, Any] = {"skipped": 0}
    for split in ("train", "validation"):
        if split not in dd:
            out[split] = []
            continue
        rows = []
        for item in split_rows(dd[split], split) if len(dd[split]) else []:
            poses = item["poses"]
            if len(poses) > max_frames:
                out["skipped"] += split == "train"
                continue
            row = {"id": item["id"], "text": item["text"], "poses": poses, "num_frames": len(poses)}
            row.update({k: item[k] for k in ("gloss_spans", "gloss_text_spans") if item.get(k) is not None})
            rows.append(row)
        out[split] = rows
        if split == "train":
            out["representation"] = str(dd[split][0]["representation"])
            out["fps"] = float(dd[split][0]["fps"])
    if out["skipped"]:
        logger.warning("%d train sequence(s) longer than data.max_frames=%d are left out.", out["skipped"], max_frames)
    if not out["train"]:
        raise ValueError(f"No train sequence has <= data.max_frames={max_frames} frames.")
    return out


@dataclass
class RandomCropCollator:
    """Cuts every sequence longer than `crop_frames` to a random window (torch's RNG, seeded by the Trainer)."""

    collator: PoseCollator
    crop_frames: int = 0

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        if self.crop_frames > 0:
            cropped = []
            for s in samples:
                n = len(s["poses"])
                if n > self.crop_frames:
                    start = int(torch.randint(0, n - self.crop_frames + 1, ()))
                    s = {**s, "poses": s["poses"][start : start + self.crop_frames], "num_frames": self.crop_frames}
                cropped.append(s)
            samples = cropped
        return self.collator(samples)


@dataclass
class LatentCollator:
    """Pads cached latents (and text states or token ids) into an `ldm` batch.

    Returns `latent_mean`, `latent_std` (B, N'_max, J', C), `latent_mask` (B, N'_max), `num_frames` (B,), and either
    `text_states` (B, L, D) + `text_mask` (frozen encoder) or `input_ids` + `text_mask` (trainable encoder).
    """

    tokenizer: Any = None

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        n = max(s["latent_mean"].shape[0] for s in samples)
        b = len(samples)
        shape = (b, n) + tuple(samples[0]["latent_mean"].shape[1:])
        mean, std = torch.zeros(shape), torch.zeros(shape)
        mask = torch.zeros(b, n, dtype=torch.bool)
        for i, s in enumerate(samples):
            k = s["latent_mean"].shape[0]
            mean[i, :k], std[i, :k], mask[i, :k] = s["latent_mean"], s["latent_std"], True
        batch = {"latent_mean": mean, "latent_std": std, "latent_mask": mask,
                 "num_frames": torch.tensor([s["num_frames"] for s in samples], dtype=torch.float32)}
        if "attention_target" in samples[0]:  # (N'_i, L_i) bool -> (B, N'_max, L_max), padding targets nothing
            length = max(s["attention_target"].shape[1] for s in samples)
            batch["attention_target"] = torch.zeros(b, n, length, dtype=torch.bool)
            for i, s in enumerate(samples):
                rows, cols = s["attention_target"].shape
                batch["attention_target"][i, :rows, :cols] = s["attention_target"]
        for key in ("token_durations", "token_order"):  # (L_i,) -> (B, L_max), padding tokens get 0
            if key in samples[0]:
                batch[key] = torch.zeros(b, max(len(s[key]) for s in samples))
                for i, s in enumerate(samples):
                    batch[key][i, : len(s[key])] = s[key]
        if "text_states" in samples[0]:
            length = max(s["text_states"].shape[0] for s in samples)
            states = torch.zeros(b, length, samples[0]["text_states"].shape[1])
            tmask = torch.zeros(b, length, dtype=torch.bool)
            for i, s in enumerate(samples):
                states[i, : len(s["text_states"])], tmask[i, : len(s["text_states"])] = s["text_states"], True
            batch.update(text_states=states, text_mask=tmask)
        else:
            enc = self.tokenizer([s["text"] for s in samples], padding="longest", return_tensors="pt")
            batch.update(input_ids=enc["input_ids"], text_mask=enc["attention_mask"].bool())
        return batch


# ------------------------------------------------------------------------------------------------- trainers
class _SignSALDTrainer(PoseTrainer):
    """`PoseTrainer` (length-grouped batches, pickle-free checkpoints) + running means of the loss terms in the logs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._terms: Dict[str, List[float]] = {}

    def _record(self, **terms: torch.Tensor) -> None:
        for k, v in terms.items():
            self._terms.setdefault(k, []).append(float(v.detach()))

    def log(self, logs: Dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._terms:
            logs.update({k: round(sum(v) / len(v), 5) for k, v in self._terms.items()})
            self._terms = {}
        super().log(logs, *args, **kwargs)


class SkeletonVAETrainer(_SignSALDTrainer):
    """Stage `vae`: `SkeletonVAE.compute_loss` on normalised poses, positions through `normalizer.denormalize`."""

    def __init__(self, *args, normalizer: PoseNormalizer, **kwargs):
        super().__init__(*args, **kwargs)
        self.normalizer = normalizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        normalizer = self.normalizer.to(inputs["poses"].device)
        terms = model.compute_loss(inputs["poses"], attention_mask=inputs["attention_mask"], denormalize=normalizer.denormalize)
        self._record(**{k: v for k, v in terms.items() if k != "loss"})
        return (terms["loss"], terms) if return_outputs else terms["loss"]


class LatentDiffusionModule(nn.Module):
    """What the `ldm` Trainer optimises: the denoiser, plus the text encoder when it is trainable."""

    def __init__(self, denoiser: SkeletonLatentDenoiser, text_encoder: Optional[nn.Module] = None):
        super().__init__()
        self.denoiser = denoiser
        self.text_encoder = text_encoder


def masked_latent_mse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, joint_weights: Optional[torch.Tensor] = None,
    sample_weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Mean squared error over the real latent frames of (B, N', J', C) tensors; `mask` (B, N') marks real frames.

    `joint_weights` (J',) weighs the atomic joints, normalised to mean 1 so the loss keeps its scale (None: equal).
    `sample_weights` (B,) weighs whole samples as given (e.g. `min_snr_weights`).
    """
    w = mask[:, :, None, None].to(pred.dtype)
    if joint_weights is not None:
        joint_weights = joint_weights.to(pred)  # integer weights too
        w = w * (joint_weights / joint_weights.mean())[None, None, :, None]
    if sample_weights is not None:
        w = w * sample_weights.to(pred)[:, None, None, None]
    return ((pred - target) ** 2 * w).sum() / (mask.sum() * pred.shape[2] * pred.shape[3]).clamp_min(1.0)


def min_snr_weights(scheduler: DDPMScheduler, timesteps: torch.Tensor, gamma: float, prediction_type: str) -> torch.Tensor:
    """Min-SNR-gamma weights (B,) of the diffusion MSE at `timesteps` for the given regression target.

    SNR(t) = alpha_bar_t / (1 - alpha_bar_t). Weighting the epsilon loss by min(SNR, gamma) / SNR makes it the clean-latent
    loss clipped at gamma; v = sqrt(alpha_bar) * eps - sqrt(1 - alpha_bar) * z0 carries a further 1 / (SNR + 1). The
    weights are divided by their mean over all training timesteps, so the diffusion loss keeps its scale against the
    other loss terms.
    """
    alpha_bar = scheduler.alphas_cumprod.float()
    snr = alpha_bar / (1.0 - alpha_bar)
    clipped = snr.clamp(max=gamma)
    if prediction_type == "epsilon":
        weights = clipped / snr
    elif prediction_type == "v_prediction":
        weights = clipped / (snr + 1.0)
    else:  # "sample"
        weights = clipped
    return (weights / weights.mean()).to(timesteps.device)[timesteps]


class LatentDenoiserTrainer(_SignSALDTrainer):
    """Stage `ldm`: MSE on noised VAE latents (masked by the latent mask) + the length predictor's loss.

    The regression target follows `denoiser.config.prediction_type`: `"epsilon"` (the paper), `"sample"` (z0) or
    `"v_prediction"`; the saved scheduler gets the same `prediction_type`.
    """

    def __init__(self, *args, noise_scheduler: DDPMScheduler, scale_latents, length_loss_weight: float,
                 sample_posterior: bool, attention_guidance_weight: float = 0.0, attention_guidance_heads: int = 0,
                 latent_joint_loss_weights: Optional[List[float]] = None, snr_gamma: Optional[float] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.noise_scheduler = noise_scheduler
        self.scale_latents = scale_latents  # SkeletonVAE.scale_latents: VAE latents -> diffusion space
        self.length_loss_weight = length_loss_weight
        self.sample_posterior = sample_posterior
        self.attention_guidance_weight = attention_guidance_weight
        self.attention_guidance_heads = attention_guidance_heads
        self.joint_weights = None if latent_joint_loss_weights is None else torch.tensor(latent_joint_loss_weights)
        self.snr_gamma = snr_gamma

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        module = self.accelerator.unwrap_model(model)
        denoiser = module.denoiser
        mean, std, mask = inputs["latent_mean"], inputs["latent_std"], inputs["latent_mask"]
        z0 = mean + std * torch.randn_like(std) if (self.sample_posterior and model.training) else mean
        z0 = self.scale_latents(z0)
        if "text_states" in inputs:
            states, tmask = inputs["text_states"], inputs["text_mask"]
        else:
            states = module.text_encoder(input_ids=inputs["input_ids"], attention_mask=inputs["text_mask"].long()).last_hidden_state
            tmask = inputs["text_mask"]
        noise = torch.randn_like(z0)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (z0.shape[0],), device=z0.device)
        zt = self.noise_scheduler.add_noise(z0, noise, t)
        cond, cond_mask = denoiser.drop_condition(states, tmask) if model.training else (states, tmask)
        # samples whose text was not replaced by the null condition (no text token equals the null embedding)
        kept = (cond[:, 0] != denoiser.null_text_embedding.to(cond)).any(-1)
        guide = self.attention_guidance_weight > 0
        timing = {}
        if denoiser.config.duration_conditioning:
            if "token_durations" not in inputs:
                raise ValueError("`denoiser.duration_conditioning` needs `token_durations` in the batch (gloss_token_timing).")
            # ground-truth timing in training (teacher forcing); none for the null condition, as at inference
            timing = {"token_durations": inputs["token_durations"] * kept[:, None], "token_order": inputs["token_order"]}
        out = denoiser(zt, t, encoder_hidden_states=cond, encoder_attention_mask=cond_mask, attention_mask=mask,
                       output_cross_attentions=guide, **timing)
        pred = out.sample
        kind = denoiser.config.prediction_type
        if kind == "epsilon":  # the paper's objective (eq. 8)
            target = noise
        elif kind == "sample":
            target = z0
        else:  # "v_prediction"
            target = self.noise_scheduler.get_velocity(z0, noise, t)
        snr_w = None if self.snr_gamma is None else min_snr_weights(self.noise_scheduler, t, self.snr_gamma, kind)
        loss_denoise = masked_latent_mse(pred, target, mask, self.joint_weights, snr_w)
        loss_length = denoiser.length_loss(states, tmask, inputs["num_frames"])
        loss = loss_denoise + self.length_loss_weight * loss_length
        terms = {"loss_denoise": loss_denoise, "loss_length": loss_length}
        if timing:
            terms["loss_duration"] = denoiser.duration_loss(states, tmask, inputs["token_durations"], inputs["token_order"])
            loss = loss + self.length_loss_weight * terms["loss_duration"]
        if guide:
            if "attention_target" not in inputs:
                raise ValueError("`attention_guidance_weight` > 0 needs `attention_target` in the batch (gloss_token_targets).")
            terms["loss_attention"] = attention_guidance_loss(
                out.cross_attentions, inputs["attention_target"], kept, self.attention_guidance_heads
            )
            loss = loss + self.attention_guidance_weight * terms["loss_attention"]
        self._record(**terms)
        return (loss, terms) if return_outputs else loss


# ------------------------------------------------------------------------------------------------- running
def _training_arguments(settings: StageTrainingSettings, out_dir: Path, seed: int, use_cpu: bool) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(out_dir),
        num_train_epochs=settings.num_train_epochs,
        per_device_train_batch_size=settings.per_device_train_batch_size,
        learning_rate=settings.learning_rate,
        adam_beta1=settings.adam_beta1,
        adam_beta2=settings.adam_beta2,
        adam_epsilon=settings.adam_epsilon,
        weight_decay=settings.weight_decay,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_steps,
        max_grad_norm=settings.max_grad_norm,
        logging_steps=settings.logging_steps,
        save_strategy="epoch",
        save_total_limit=settings.save_total_limit,
        eval_strategy="no",
        seed=seed,
        data_seed=seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        report_to="none",
        use_cpu=use_cpu,
        disable_tqdm=None,
    )


def _fit(trainer: Trainer, resume: bool) -> Dict[str, float]:
    checkpoint = None
    if resume and Path(trainer.args.output_dir).is_dir():
        checkpoint = get_last_checkpoint(trainer.args.output_dir)
        if checkpoint is None:
            logger.warning("resume_from_checkpoint: no checkpoint in %s; training from scratch.", trainer.args.output_dir)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"seconds": round(time.perf_counter() - start, 1), "train_loss": float(result.training_loss),
            "first_logged_loss": losses[0] if losses else None, "last_logged_loss": losses[-1] if losses else None,
            "global_step": int(trainer.state.global_step), "resumed_from": checkpoint}


def _normalizer(data: Dict[str, Any], out: Path) -> PoseNormalizer:
    path = out / "normalizer"
    if (path / "config.json").is_file():
        return PoseNormalizer.from_pretrained(str(path))
    norm = PoseNormalizer.fit((r["poses"] for r in data["train"]), representation=data["representation"])
    norm.save_pretrained(str(path))
    return norm


@torch.no_grad()
def _vae_validation(vae: SkeletonVAE, normalizer: PoseNormalizer, rows, batch_size: int) -> Dict[str, float]:
    """Reconstruction error of the posterior mean on `rows`: mean joint position error (mm) and feature L1."""
    if not rows:
        return {}
    collate = PoseCollator(normalizer=normalizer, pad_to_multiple_of=vae.temporal_downsample_factor)
    device = next(vae.parameters()).device
    err = l1 = frames = 0.0
    for i in range(0, len(rows), batch_size):
        batch = collate(rows[i : i + batch_size])
        x, mask = batch["poses"].to(device), batch["attention_mask"].to(device)
        recon = vae(x, attention_mask=mask).sample
        a, b = normalizer.denormalize(recon), normalizer.denormalize(x)
        pos_err = (vae.spec.to_positions(a) - vae.spec.to_positions(b)).norm(dim=-1).mean(-1)  # (B, N)
        err += float((pos_err * mask).sum())
        l1 += float(((recon - x).abs().mean(-1) * mask).sum())
        frames += float(mask.sum())
    return {"vae_val_mpjpe_mm": round(1000 * err / frames, 2), "vae_val_feature_l1": round(l1 / frames, 4)}


def run_vae_stage(cfg, data, out: Path, resume: bool, use_cpu: bool) -> Dict[str, Any]:
    set_seed(cfg["seed"])
    normalizer = _normalizer(data, out)
    vae = build_vae(cfg)
    if vae.config.skeleton != data["representation"]:
        raise ValueError(f"vae.skeleton={vae.config.skeleton!r} but the dataset's representation is {data['representation']!r}.")
    settings = VAETrainingSettings(**cfg["vae_training"])
    factor = vae.temporal_downsample_factor
    trainer = SkeletonVAETrainer(
        model=vae,
        args=_training_arguments(settings, out / "checkpoints" / "vae", cfg["seed"], use_cpu),
        data_collator=RandomCropCollator(
            PoseCollator(normalizer=normalizer, pad_to_multiple_of=factor), (settings.crop_frames // factor) * factor
        ),
        train_dataset=PoseRows(data["train"], "num_frames"),
        normalizer=normalizer,
        group_by_length=settings.group_by_length,
    )
    metrics = {f"vae_{k}": v for k, v in _fit(trainer, resume).items()}
    vae = trainer.accelerator.unwrap_model(trainer.model).eval()
    collate = PoseCollator(normalizer=normalizer, pad_to_multiple_of=vae.temporal_downsample_factor)
    device = next(vae.parameters()).device
    bs = settings.per_device_train_batch_size
    # 1 / std of the latents: a (length-sorted, so little padding) subset of the train split estimates it well.
    subset = sorted(data["train"][:: max(1, len(data["train"]) // 512)], key=lambda r: r["num_frames"])
    batches = (collate(subset[i : i + bs]) for i in range(0, len(subset), bs))
    batches = ((b["poses"].to(device), b["attention_mask"].to(device)) for b in batches)
    if settings.latent_normalization == "per_channel":  # one encoding pass also sets the scalar factor
        _, std = vae.estimate_latent_statistics(batches)
        metrics["vae_latents_std_range"] = [round(min(std), 4), round(max(std), 4)]
    else:
        vae.estimate_scaling_factor(batches)
    metrics["vae_scaling_factor"] = vae.config.scaling_factor
    metrics.update(_vae_validation(vae, normalizer.to(device), data["validation"], bs))
    vae.save_pretrained(str(out / "vae"))
    return metrics


@torch.no_grad()
def _encode_latents(vae: SkeletonVAE, normalizer: PoseNormalizer, rows, batch_size: int) -> None:
    """Cache each row's VAE posterior mean/std (N'_i, J', C) in the row (sorted batches: little padding)."""
    collate = PoseCollator(normalizer=normalizer, pad_to_multiple_of=vae.temporal_downsample_factor)
    device = next(vae.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: rows[i]["num_frames"])
    for k in range(0, len(order), batch_size):
        idx = order[k : k + batch_size]
        batch = collate([rows[i] for i in idx])
        dist = vae.encode(batch["poses"].to(device), attention_mask=batch["attention_mask"].to(device)).latent_dist
        for j, i in enumerate(idx):
            n = -(-rows[i]["num_frames"] // vae.temporal_downsample_factor)
            rows[i]["latent_mean"] = dist.mean[j, :n].float().cpu()
            rows[i]["latent_std"] = dist.std[j, :n].float().cpu()


@torch.no_grad()
def _encode_texts(text_encoder, tokenizer, rows, batch_size: int = 64) -> None:
    """Cache frozen text-encoder states (L_i, D) per distinct sentence in the rows."""
    texts = sorted({r["text"] for r in rows})
    cache = {}
    for k in range(0, len(texts), batch_size):
        chunk = texts[k : k + batch_size]
        states, mask = encode_prompts(text_encoder, tokenizer, chunk)
        for j, t in enumerate(chunk):
            cache[t] = states[j, mask[j]].float().cpu()
    for r in rows:
        r["text_states"] = cache[r["text"]]


def run_ldm_stage(cfg, data, out: Path, resume: bool, use_cpu: bool) -> Dict[str, Any]:
    if not (out / "vae" / "config.json").is_file():
        raise ValueError(f"Stage `ldm` needs a trained VAE in {out / 'vae'}; run stage `vae` first (or both stages).")
    set_seed(cfg["seed"])
    normalizer = _normalizer(data, out)
    vae = SkeletonVAE.from_pretrained(str(out / "vae")).eval().requires_grad_(False)
    if vae.config.scaling_factor == 1.0:
        logger.warning("The VAE's scaling_factor is 1.0 (not estimated?); latents are diffused unscaled.")
    settings = TextEncoderSettings(**cfg["text_encoder"])
    text_encoder, tokenizer = build_text_encoder(settings, texts=[r["text"] for r in data["train"]])
    denoiser = build_denoiser(cfg, vae, int(text_encoder.config.hidden_size))
    train_cfg = LatentTrainingSettings(**cfg["ldm_training"])

    rows = [dict(r) for r in data["train"]]
    _encode_latents(vae, normalizer, rows, train_cfg.per_device_train_batch_size)
    for r in rows:
        r.pop("poses")  # the latents replace the poses for this stage
    if not settings.trainable:
        _encode_texts(text_encoder, tokenizer, rows)
    if train_cfg.attention_guidance_weight > 0:
        if not denoiser.config.use_cross_attention:
            raise ValueError("`ldm_training.attention_guidance_weight` > 0 needs `denoiser.use_cross_attention: true`.")
        for r in rows:
            r["attention_target"] = gloss_token_targets(r, tokenizer, len(r["latent_mean"]), vae.temporal_downsample_factor)
    if denoiser.config.duration_conditioning:
        for r in rows:
            r["token_durations"], r["token_order"] = gloss_token_timing(r, tokenizer)
    ddpm = DDPMScheduler(
        num_train_timesteps=cfg["scheduler"]["num_train_timesteps"], beta_schedule=cfg["scheduler"]["beta_schedule"],
        beta_start=cfg["scheduler"]["beta_start"], beta_end=cfg["scheduler"]["beta_end"],
        clip_sample=cfg["scheduler"]["clip_sample"], prediction_type=denoiser.config.prediction_type,
    )
    module = LatentDiffusionModule(denoiser, text_encoder if settings.trainable else None)
    trainer = LatentDenoiserTrainer(
        model=module,
        args=_training_arguments(train_cfg, out / "checkpoints" / "ldm", cfg["seed"], use_cpu),
        data_collator=LatentCollator(tokenizer=tokenizer),
        train_dataset=PoseRows(rows, "num_frames"),
        noise_scheduler=ddpm,
        scale_latents=vae.scale_latents,
        length_loss_weight=train_cfg.length_loss_weight,
        sample_posterior=train_cfg.sample_posterior,
        attention_guidance_weight=train_cfg.attention_guidance_weight,
        attention_guidance_heads=train_cfg.attention_guidance_heads,
        latent_joint_loss_weights=latent_joint_weights(train_cfg.latent_joint_loss_weights, vae.config),
        snr_gamma=train_cfg.snr_gamma,
        group_by_length=train_cfg.group_by_length,
    )
    metrics = {f"ldm_{k}": v for k, v in _fit(trainer, resume).items()}
    module = trainer.accelerator.unwrap_model(trainer.model)
    if settings.trainable:
        text_encoder = module.text_encoder
    text_encoder.eval().requires_grad_(False)
    scheduler = DDIMScheduler.from_config(
        ddpm.config, steps_offset=cfg["scheduler"]["steps_offset"], set_alpha_to_one=cfg["scheduler"]["set_alpha_to_one"]
    )
    pipe = SignSALDPipeline(
        vae=vae, denoiser=module.denoiser.eval(), text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
        normalizer=normalizer, fps=data["fps"], default_guidance_scale=cfg["inference"]["guidance_scale"],
    )
    pipe.save_pretrained(str(out))
    return metrics


def run_sign_sald_training(cfg: Dict[str, Any], dataset_dir: str, output_dir: str, stage: Optional[str] = None,
                           resume_from_checkpoint: bool = False, use_cpu: bool = False) -> Path:
    """Run `stage` (or both stages) with the resolved config `cfg`; returns the output folder."""
    if stage is not None and stage not in STAGES:
        raise ValueError(f"`stage` must be one of {STAGES} or None (both); got {stage!r}.")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    if cfg["num_threads"] > 0:
        torch.set_num_threads(cfg["num_threads"])
    try:
        data = load_pose_splits(dataset_dir, cfg["data"]["max_frames"])
        (out / "sign_sald_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        metrics_path = out / "sign_sald_metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        metrics.update(num_train=len(data["train"]), num_train_skipped_long=data["skipped"])
        stages = STAGES if stage is None else (stage,)
        unaligned = [r["id"] for r in data["train"] if not r.get("gloss_spans")]  # missing or empty
        needs = [k for k, on in (("ldm_training.attention_guidance_weight", cfg["ldm_training"]["attention_guidance_weight"] > 0),
                                 ("denoiser.duration_conditioning", cfg["denoiser"].get("duration_conditioning"))) if on]
        if "ldm" in stages and needs and unaligned:
            # fail before the VAE stage spends its minutes, not when the ldm stage starts
            raise ValueError(
                f"{' and '.join(f'`{k}`' for k in needs)} need `gloss_spans` in every train sample; {len(unaligned)} have "
                f"none (e.g. {unaligned[0]!r}). For this corpus pass "
                f"{' '.join('--set ' + k + ('=0' if 'weight' in k else '=false') for k in needs)}."
            )
        if "ldm" in stages:  # unknown atomic joint names fail here, before the VAE stage
            latent_joint_weights(cfg["ldm_training"]["latent_joint_loss_weights"], cfg["vae"])
        for name in stages:
            run = run_vae_stage if name == "vae" else run_ldm_stage
            metrics.update(run(cfg, data, out, resume_from_checkpoint, use_cpu))
            metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    finally:
        torch.set_num_threads(threads)
    return out


def train_sign_sald(
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    config: Union[str, Path, Dict[str, Any]] = "tiny",
    stage: Optional[str] = None,
    seed: Optional[int] = 0,
    overrides: Optional[Dict[str, Any]] = None,
    resume_from_checkpoint: bool = False,
    use_cpu: bool = False,
) -> Path:
    """Train Sign-SALD on `dataset_dir`; the output folder ends up a complete `SignSALDPipeline` folder.

    Args:
        dataset_dir (`str` or `Path`): hf-sign dataset folder (or Hub id) with a `train` split (smplx133 for the
            default VAE skeleton).
        output_dir (`str` or `Path`): output folder (`model_index.json` at its root after the `ldm` stage).
        config (`str`, `Path` or `dict`, *optional*, defaults to `"tiny"`): `tiny`, `small`, `paper`, a YAML path,
            or a dict of config sections.
        stage (`str`, *optional*): `"vae"` or `"ldm"` (which loads `output_dir/vae`); default: both, in order.
        seed (`int`, *optional*, defaults to 0): the run's seed (`None` keeps the config's `seed`).
        overrides (`dict`, *optional*): dotted keys, e.g. `{"vae.num_atomic_joints": 5,
            "denoiser.use_cross_attention": False, "ldm_training.num_train_epochs": 2}`; strings (from `--set`) are
            converted to the replaced value's type; unknown keys raise.
        resume_from_checkpoint (`bool`, *optional*, defaults to `False`): continue each stage from its latest
            checkpoint under `output_dir/checkpoints/<stage>/`.
        use_cpu (`bool`, *optional*, defaults to `False`): train on CPU even if an accelerator is present.

    Returns:
        `Path`: `output_dir`.
    """
    overrides = dict(overrides or {})
    if seed is not None:
        overrides.setdefault("seed", seed)
    cfg = full_config(config, overrides)
    return run_sign_sald_training(cfg, str(dataset_dir), str(output_dir), stage, resume_from_checkpoint, use_cpu)


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m hf_sign.training.sign_sald_trainer --dataset_dir D --output_dir O [--config small] [--set k=v ...]`."""
    (args,) = HfArgumentParser(SignSALDTrainingArguments).parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = parse_overrides(args.set)
    if args.num_threads:
        overrides["num_threads"] = args.num_threads
    out = train_sign_sald(args.dataset_dir, args.output_dir, args.config, args.stage, args.seed, overrides,
                          args.resume_from_checkpoint, args.use_cpu)
    print(json.dumps(json.loads((out / "sign_sald_metrics.json").read_text()), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

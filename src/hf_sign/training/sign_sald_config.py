"""Sign-SALD training config: the settings of each stage, the config defaults and the models a config builds.

* `StageTrainingSettings` (`VAETrainingSettings`, `LatentTrainingSettings`): the `vae_training` / `ldm_training`
  sections, validated when built.
* `default_config()`: every key with its default (the paper-scale model and schedule); the model sections are read
  off the `SkeletonVAE` / `SkeletonLatentDenoiser` signatures, less the arguments the trainer derives.
* `full_config(config, overrides)`: defaults <- YAML config (`hf_sign/configs/sign-sald/`) <- dotted overrides.
* `build_vae`, `build_denoiser`, `sign_sald_param_counts`: the models of a config (no data needed).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from ..models.text_encoders import TextEncoderSettings, count_text_encoder_parameters
from ..skeletons.spec import get_skeleton
from .config_utils import apply_overrides, deep_update, load_config

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
        gamma = self.snr_gamma
        if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma <= 0):
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

"""Training Sign-SALD (Shen et al.): its config and its entry points. The stages are in `sign_sald_stages`.

```
OUTPUT_DIR/model_index.json, vae/, denoiser/, text_encoder/, tokenizer/, scheduler/, normalizer/,
           pipeline_sign_sald.py          a complete `SignSALDPipeline` folder (written by the ldm stage)
OUTPUT_DIR/sign_sald_config.json          the resolved config (defaults <- YAML <- overrides, skeleton filled in)
OUTPUT_DIR/sign_sald_metrics.json         per stage: seconds, losses, steps; VAE validation error, latent scaling
OUTPUT_DIR/checkpoints/{vae,ldm}/checkpoint-N   Trainer checkpoints (safetensors weights; resume)
```

Config (`CONFIG_SCHEMA`): the defaults are the paper's model and schedule, read off `SkeletonVAE.__init__`,
`SkeletonLatentDenoiser.__init__`, `TextEncoderSettings`, diffusers' `DDIMScheduler` and the stage arguments
(`SkeletonVAETrainingArguments`, `LatentDenoiserTrainingArguments`). A YAML file in `hf_sign/configs/sign-sald/`
lists only what differs from them; dotted overrides (`--set vae.num_atomic_joints=5`) are type-checked.
`vae.skeleton` follows the dataset's `representation` unless a config pins it.

Entry points: `train_sign_sald(dataset_dir, output_dir, config="tiny", stage=None, seed=None, overrides=None,
resume_from_checkpoint=False)` (what `hf-sign train sign-sald` calls), `sign_sald_param_counts(config, overrides)`
(`hf-sign models params`) and `python -m hf_sign.training.sign_sald_trainer --dataset_dir D --output_dir O
[--config small] [--stage vae] [--set vae.num_atomic_joints=5 ...]`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from diffusers import DDIMScheduler

from ..models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from ..models.text_encoders import TextEncoderSettings, count_text_encoder_parameters
from ..skeletons.spec import get_skeleton
from .arguments import DataArguments, parse_training_run
from .config_utils import ConfigSchema, ConfigSection
from .losses import PREDICTION_TYPES
from .sign_sald_stages import (
    SIGN_SALD_STAGES,
    InferenceArguments,
    LatentDenoiserTrainingArguments,
    SkeletonVAETrainingArguments,
    build_denoiser,
    build_vae,
    latent_joint_weights,
)
from .stages import StageContext, run_pose_stages

__all__ = [
    "SYSTEM",
    "STAGES",
    "CONFIG_SCHEMA",
    "default_config",
    "full_config",
    "train_sign_sald",
    "run_sign_sald_training",
    "sign_sald_param_counts",
    "main",
]

logger = logging.getLogger(__name__)

SYSTEM = "sign-sald"
STAGES = tuple(stage.name for stage in SIGN_SALD_STAGES)  # ("vae", "ldm")
PAPER_VAE_PARAMS = 2.81e6  # Table 2

# Model arguments the trainer derives (from the data, the VAE or the text encoder) or estimates, instead of reading.
_VAE_DERIVED = ("scaling_factor", "latents_mean", "latents_std")
_DENOISER_DERIVED = ("num_joints", "latent_channels", "text_dim")

CONFIG_SCHEMA = ConfigSchema(
    SYSTEM,
    top_level={"seed": 0, "num_threads": 0},
    sections={
        "data": ConfigSection(DataArguments),
        "text_encoder": ConfigSection(TextEncoderSettings),
        # `skeleton: null` follows the dataset's representation
        "vae": ConfigSection(SkeletonVAE, exclude=_VAE_DERIVED, defaults={"skeleton": None}),
        "denoiser": ConfigSection(SkeletonLatentDenoiser, exclude=_DENOISER_DERIVED),
        # DDPM with these betas in training, DDIM in the saved pipeline; the latent-diffusion DDIM settings
        "scheduler": ConfigSection(
            DDIMScheduler,
            include=("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "clip_sample",
                     "set_alpha_to_one", "steps_offset"),
            defaults={"clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1},
        ),
        "vae_training": ConfigSection(SkeletonVAETrainingArguments),
        "ldm_training": ConfigSection(LatentDenoiserTrainingArguments),
        "inference": ConfigSection(InferenceArguments),
    },
)


# ------------------------------------------------------------------------------------------------- config
def default_config() -> Dict[str, Any]:
    """Every config key with its default (the paper's model and schedule)."""
    return CONFIG_SCHEMA.defaults()


def full_config(
    config: Union[str, Path, Mapping[str, Any], None] = "tiny", overrides: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """Defaults <- YAML config (name, path or dict) <- dotted overrides; unknown keys and wrong types raise."""
    cfg = CONFIG_SCHEMA.resolve(config, overrides)
    TextEncoderSettings(**cfg["text_encoder"])  # validate early
    if cfg["denoiser"]["prediction_type"] not in PREDICTION_TYPES:
        raise ValueError(
            f"`denoiser.prediction_type` must be one of {PREDICTION_TYPES}; "
            f"got {cfg['denoiser']['prediction_type']!r}."
        )
    DataArguments(**cfg["data"])
    SkeletonVAETrainingArguments(**cfg["vae_training"])
    LatentDenoiserTrainingArguments(**cfg["ldm_training"])
    return cfg


def _resolve_skeleton(cfg: Dict[str, Any], representation: str) -> None:
    """`vae.skeleton` follows the dataset's representation unless the config pins it; a pinned one must agree."""
    pinned = cfg["vae"]["skeleton"]
    if pinned is None:
        try:
            get_skeleton(representation)
        except ValueError as err:
            raise ValueError(
                f"The dataset's representation {representation!r} has no skeleton for the VAE: {err}"
            ) from None
        cfg["vae"]["skeleton"] = representation
    elif pinned != representation:
        raise ValueError(
            f"`vae.skeleton` is {pinned!r} but the dataset's representation is {representation!r}. Train on this "
            f"dataset with `--set vae.skeleton={representation}` (or leave `vae.skeleton` out of the config: it then "
            "follows the dataset)."
        )


def _prepare(ctx: StageContext, stages: Sequence[str]) -> Dict[str, Any]:
    """Complete the config from the data and check it before any stage spends its time."""
    cfg, data = ctx.config, ctx.data
    _resolve_skeleton(cfg, data["representation"])
    if "ldm" in stages:
        unaligned = [r["id"] for r in data["train"] if not r.get("gloss_spans")]  # missing or empty
        options = {
            "ldm_training.attention_guidance_weight": cfg["ldm_training"]["attention_guidance_weight"] > 0,
            "denoiser.duration_conditioning": cfg["denoiser"]["duration_conditioning"],
        }
        needs = [k for k, on in options.items() if on]
        if needs and unaligned:
            raise ValueError(
                f"{' and '.join(f'`{k}`' for k in needs)} need `gloss_spans` in every train sample; {len(unaligned)} "
                f"have none (e.g. {unaligned[0]!r}). For this corpus pass "
                f"{' '.join('--set ' + k + ('=0' if 'weight' in k else '=false') for k in needs)}."
            )
        latent_joint_weights(cfg["ldm_training"]["latent_joint_loss_weights"], cfg["vae"])  # unknown names raise
    return {"num_train": len(data["train"]), "num_train_skipped_long": data["skipped"]}


# ------------------------------------------------------------------------------------------------- running
def run_sign_sald_training(
    cfg: Dict[str, Any],
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    stage: Optional[str] = None,
    resume_from_checkpoint: bool = False,
    use_cpu: bool = False,
) -> Path:
    """Run `stage` (or both stages) with the resolved config `cfg` (`full_config`); returns the output folder."""
    return run_pose_stages(
        SIGN_SALD_STAGES, cfg, dataset_dir, output_dir, "sign_sald", _prepare, stage, resume_from_checkpoint, use_cpu
    )


def train_sign_sald(
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    config: Union[str, Path, Dict[str, Any]] = "tiny",
    stage: Optional[str] = None,
    seed: Optional[int] = None,
    overrides: Optional[Dict[str, Any]] = None,
    resume_from_checkpoint: bool = False,
) -> Path:
    """Train Sign-SALD on `dataset_dir`; the output folder ends up a complete `SignSALDPipeline` folder.

    Args:
        dataset_dir (`str` or `Path`): hf-sign dataset folder (or Hub id) with a `train` split; the VAE's skeleton is
            the dataset's representation unless the config pins one.
        output_dir (`str` or `Path`): output folder (`model_index.json` at its root after the `ldm` stage).
        config (`str`, `Path` or `dict`, *optional*, defaults to `"tiny"`): `tiny`, `small`, `paper`, a YAML path,
            or a dict of config sections.
        stage (`str`, *optional*): `"vae"` or `"ldm"` (which loads `output_dir/vae`); default: both, in order.
        seed (`int`, *optional*): the run's seed; `None` keeps the config's `seed` (0 unless a config sets it).
        overrides (`dict`, *optional*): dotted keys, e.g. `{"vae.num_atomic_joints": 5,
            "denoiser.use_cross_attention": False, "ldm_training.num_train_epochs": 2}`; strings (from `--set`) are
            converted to the replaced value's type; unknown keys raise.
        resume_from_checkpoint (`bool`, *optional*, defaults to `False`): continue each stage from its latest
            checkpoint under `output_dir/checkpoints/<stage>/`.

    Returns:
        `Path`: `output_dir`, holding `sign_sald_metrics.json`.
    """
    overrides = dict(overrides or {})
    if seed is not None:
        overrides["seed"] = seed
    cfg = full_config(config, overrides)
    return run_sign_sald_training(cfg, dataset_dir, output_dir, stage, resume_from_checkpoint)


def text_dim_of(settings: TextEncoderSettings) -> int:
    """Width of the text encoder's states (the denoiser's `text_dim`)."""
    if settings.type == "minilm":
        from ..models.text_encoders import minilm_config

        return int(minilm_config().hidden_size)
    return settings.hidden_size


def sign_sald_param_counts(
    config: Union[str, Path, Dict[str, Any]] = "paper", overrides: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """Instantiate the config's models (no data needed) and count their parameters.

    Without data, a config that leaves `vae.skeleton` to the dataset counts on `SkeletonVAE`'s default skeleton.

    Returns:
        `dict` with `vae`, `denoiser` (with its length predictor), `length_predictor`, `text_encoder` (frozen unless
        `text_encoder.trainable`; CLIP counted with a 1000-word vocabulary unless pretrained), `text_encoder_type`,
        `trainable` (VAE + denoiser [+ text encoder if trainable]) and `paper_vae` (2.81M, Table 2).
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


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m hf_sign.training.sign_sald_trainer --dataset_dir D --output_dir O [--config small] [--set k=v]`."""
    args, overrides = parse_training_run(argv)
    cfg = full_config(args.config, overrides)
    out = run_sign_sald_training(cfg, args.dataset_dir, args.output_dir, args.stage, args.resume_from_checkpoint,
                                 args.use_cpu)
    print(json.dumps(json.loads((out / "sign_sald_metrics.json").read_text()), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

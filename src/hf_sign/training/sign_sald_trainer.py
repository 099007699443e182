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
  loss); `ldm_training.latent_joint_loss_weights` weighs the atomic joints in the diffusion MSE;
  `ldm_training.snr_gamma` weighs the timesteps (Min-SNR-gamma; off everywhere, measured worse on `small`).

Entry points: `train_sign_sald(dataset_dir, output_dir, config="tiny", stage=None, seed=0, overrides=None)` (what
`hf-sign train sign-sald` calls) and `python -m hf_sign.training.sign_sald_trainer --dataset_dir D --output_dir O
--config small [--stage vae] [--set vae.num_atomic_joints=5 ...]`. Configs are YAML files in
`hf_sign/configs/sign-sald/` (`tiny`, `small`, `paper`) with the sections of `default_config()`; dotted overrides
are type-checked (`config_utils.apply_overrides`).

Modules: `sign_sald_config` (the stage settings, `default_config`, `full_config`, `build_vae`, `build_denoiser`,
`sign_sald_param_counts`), `sign_sald_vae_stage` (`run_vae_stage`), `sign_sald_ldm_stage` (`run_ldm_stage`) and
`sign_sald_common` (what both stages share). This module loads the data, runs the stages in order and holds the entry
points; it re-exports the other modules' public names, so code importing them from here keeps working.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import torch
from transformers import HfArgumentParser

from ..data.io import load_corpus, split_rows
from .config_utils import parse_overrides

# Re-exported: these names lived here before the split, and the CLI, the tests, the benchmarks and the configs' comments
# still import them from (or point at) this module.
from .sign_sald_config import (  # noqa: F401
    PAPER_VAE_PARAMS,
    STAGES,
    SYSTEM,
    LatentTrainingSettings,
    StageTrainingSettings,
    VAETrainingSettings,
    build_denoiser,
    build_vae,
    default_config,
    full_config,
    latent_joint_weights,
    sign_sald_param_counts,
    text_dim_of,
)
from .sign_sald_ldm_stage import (  # noqa: F401
    LatentCollator,
    LatentDenoiserTrainer,
    LatentDiffusionModule,
    masked_latent_mse,
    min_snr_weights,
    run_ldm_stage,
)
from .sign_sald_vae_stage import RandomCropCollator, SkeletonVAETrainer, run_vae_stage  # noqa: F401

logger = logging.getLogger(__name__)


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


# ------------------------------------------------------------------------------------------------- running
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

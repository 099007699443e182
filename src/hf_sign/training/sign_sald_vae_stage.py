"""Sign-SALD stage `vae`: the skeleton-aware VAE, then its latent scaling (called by `run_sign_sald_training`).

`SkeletonVAE.compute_loss` (eq. 4: L1 features + positions + velocities + KL) on poses standardised by the train
split's `PoseNormalizer`, optionally on random windows (`vae_training.crop_frames`, `RandomCropCollator`). At the end
the latent scaling factor (or the per-channel statistics) goes into the VAE's config, the reconstruction error on the
validation split into the metrics, and the VAE into `OUTPUT_DIR/vae/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import torch
from transformers import set_seed

from ..data.collator import PoseCollator
from ..data.normalization import PoseNormalizer
from ..models.sign_sald import SkeletonVAE
from .common import PoseRows
from .sign_sald_common import _fit, _normalizer, _SignSALDTrainer, _training_arguments
from .sign_sald_config import VAETrainingSettings, build_vae


# ------------------------------------------------------------------------------------------------- data
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


# ------------------------------------------------------------------------------------------------- trainers
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


# ------------------------------------------------------------------------------------------------- running
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

"""Pieces both Sign-SALD stages share: the Trainer base class, its `TrainingArguments`, the fit and the normalizer.

* `_SignSALDTrainer`: `PoseTrainer` plus running means of the loss terms in the logs.
* `_training_arguments`: a stage's `StageTrainingSettings` as `TrainingArguments` (a checkpoint per epoch, no eval).
* `_fit`: trains, from the latest checkpoint when resuming, and returns the time, losses and steps.
* `_normalizer`: the `PoseNormalizer` of the train split; the first stage fits it into `OUTPUT_DIR/normalizer/`, the
  next one loads it from there.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, List

import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..data.normalization import PoseNormalizer
from .common import PoseTrainer
from .sign_sald_config import StageTrainingSettings

logger = logging.getLogger(__name__)


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

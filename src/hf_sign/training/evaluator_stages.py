"""The evaluators' two training stages: `recognizer`, then `contrastive` (either can run alone).

Each stage is its arguments (a config section), its collator (`evaluator_data`), its Trainer and a `Stage` for the
runner (`hf_sign.training.stages.run_stages`); `evaluator_trainer` holds the config and the entry points.

* `recognizer` (`RecognizerTrainingArguments`, section `recognizer_training`): [`PoseRecognizerModel`], CTC loss
  from pose sequences to glosses (or words, see `recognizer.target`);
* `contrastive` (`ContrastiveTrainingArguments`, section `contrastive_training`): [`SignTextContrastiveModel`],
  symmetric InfoNCE between pose sequences and their texts, with in-batch negatives.

Both Trainers may add Gaussian noise (`noise_std`) and random tempo changes (`time_stretch`) to the training poses,
and select the best epoch on `validation` (`select_best`). At the end of a stage its model is saved to
`OUTPUT_DIR/<stage>/` and scored on the validation and test splits (`evaluator_metrics`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import torch
from transformers import TrainingArguments

from ..evaluation.evaluators import (
    PoseRecognizerConfig,
    PoseRecognizerModel,
    SignTextContrastiveConfig,
    SignTextContrastiveModel,
)
from .arguments import StageTrainingArguments
from .evaluator_data import ContrastiveCollator, RecognizerCollator, time_stretch
from .evaluator_metrics import contrastive_metrics, recognizer_metrics
from .stages import Stage, StageContext
from .trainer_utils import HfSignTrainer

__all__ = [
    "EvaluatorTrainingArguments",
    "RecognizerTrainingArguments",
    "ContrastiveTrainingArguments",
    "RecognizerTrainer",
    "ContrastiveTrainer",
    "EVALUATOR_STAGES",
]


# ================================================================================================ 1. arguments
@dataclass
class EvaluatorTrainingArguments(StageTrainingArguments):
    """What both evaluator stages add to `StageTrainingArguments` (defaults here: 30 epochs, AdamW with weight decay
    0.01, cosine schedule after 5% warm-up):

    Args:
        noise_std (`float`, *optional*, defaults to 0.0): Gaussian noise added to the training poses, in units of the
            per-feature std (robustness to generated poses).
        time_stretch (`float`, *optional*, defaults to 0.0): training sequences are resampled to a random length in
            [1 - x, 1 + x] times their own (robustness to the tempo of generated poses).
        select_best (`bool`, *optional*, defaults to `True`): evaluate on `validation` every epoch and keep the epoch
            with the lowest validation loss (ignored without a non-empty validation split).
        eval_batch_size (`int`, *optional*, defaults to 64): batch size of the validation loss and of the final
            metrics.
    """

    num_train_epochs: float = 30.0
    weight_decay: float = 0.01
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.05
    noise_std: float = 0.0
    time_stretch: float = 0.0
    select_best: bool = True
    eval_batch_size: int = 64

    def __post_init__(self):
        if self.noise_std < 0:
            raise ValueError(f"`noise_std` must be >= 0; got {self.noise_std}.")
        if not 0.0 <= self.time_stretch < 1.0:
            raise ValueError(f"`time_stretch` must be in [0, 1); got {self.time_stretch}.")
        if self.eval_batch_size < 1:
            raise ValueError(f"`eval_batch_size` must be >= 1; got {self.eval_batch_size}.")

    def to_training_arguments(
        self, output_dir: Union[str, Path], seed: int = 0, use_cpu: bool = False, validation: bool = False
    ) -> TrainingArguments:
        """`StageTrainingArguments.to_training_arguments`, plus (with `select_best` and a `validation` split) the
        validation loss every epoch and the best epoch's weights loaded at the end."""
        args = super().to_training_arguments(output_dir, seed=seed, use_cpu=use_cpu)
        select = self.select_best and validation
        best = dict(eval_strategy="epoch", load_best_model_at_end=True, metric_for_best_model="eval_loss",
                    greater_is_better=False)
        return dataclasses.replace(args, per_device_eval_batch_size=self.eval_batch_size, **(best if select else {}))


@dataclass
class RecognizerTrainingArguments(EvaluatorTrainingArguments):
    """The `recognizer_training` section: `EvaluatorTrainingArguments` with batch size 32 and learning rate 1e-3."""

    per_device_train_batch_size: int = 32
    learning_rate: float = 1e-3


@dataclass
class ContrastiveTrainingArguments(EvaluatorTrainingArguments):
    """The `contrastive_training` section: `EvaluatorTrainingArguments` with batch size 64 (the batch is also the
    number of in-batch negatives + 1) and learning rate 5e-4.

    Batches are drawn at random, not grouped by length (`group_by_length: false`): in-batch negatives of one length
    make the task harder to start (every pooled embedding looks alike) and let the model lean on nothing but content.
    """

    per_device_train_batch_size: int = 64
    learning_rate: float = 5e-4
    group_by_length: bool = False


# ================================================================================================ 2. trainers
class _PoseTrainer(HfSignTrainer):
    """Shared parts: augmentation of the training poses and loss-only evaluation."""

    def __init__(self, *args, noise_std: float = 0.0, time_stretch: float = 0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.noise_std = noise_std
        self.time_stretch = time_stretch

    def _augment(self, model, poses: torch.Tensor, mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Training-time augmentation: random tempo change per sequence, then Gaussian feature noise."""
        if not model.training:
            return poses, mask
        if self.time_stretch > 0:
            poses, mask = time_stretch(poses, mask, self.time_stretch)
        if self.noise_std > 0:
            std = self.accelerator.unwrap_model(model).pose_std.to(poses)
            poses = poses + self.noise_std * std * torch.randn_like(poses) * mask[..., None]
        return poses, mask

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None


class RecognizerTrainer(_PoseTrainer):
    """`Trainer` for [`PoseRecognizerModel`]: CTC loss on (poses, labels) batches from `RecognizerCollator`."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        poses, mask = self._augment(model, inputs["poses"], inputs["attention_mask"])
        outputs = model(poses=poses, attention_mask=mask, labels=inputs["labels"], return_dict=True)
        return (outputs.loss, outputs) if return_outputs else outputs.loss


class ContrastiveTrainer(_PoseTrainer):
    """`Trainer` for [`SignTextContrastiveModel`]: symmetric InfoNCE on batches from `ContrastiveCollator`."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        poses, mask = self._augment(model, inputs["poses"], inputs["attention_mask"])
        outputs = model(
            poses=poses,
            attention_mask=mask,
            input_ids=inputs["input_ids"],
            text_attention_mask=inputs["text_attention_mask"],
            return_loss=True,
            return_dict=True,
        )
        return (outputs.loss, outputs) if return_outputs else outputs.loss


# ================================================================================================ 3. stages
def _stage_arguments(ctx: StageContext, name: str, args: EvaluatorTrainingArguments) -> TrainingArguments:
    validation = ctx.data["validation"] is not None
    return args.to_training_arguments(
        ctx.checkpoint_dir(name), seed=ctx.config["seed"], use_cpu=ctx.use_cpu, validation=validation
    )


def _evaluator_trainer(ctx: StageContext, name: str, trainer_cls, model, collator, args: EvaluatorTrainingArguments):
    """A stage's Trainer: the model with the train split's normaliser, validation for best-epoch selection and the
    stage's augmentations."""
    model.set_normalizer(ctx.data["normalizer"])
    return trainer_cls(
        model=model,
        args=_stage_arguments(ctx, name, args),
        data_collator=collator,
        train_dataset=ctx.data["train"],
        eval_dataset=ctx.data["validation"],
        noise_std=args.noise_std,
        time_stretch=args.time_stretch,
        group_by_length=args.group_by_length,
    )


def _build_recognizer_trainer(ctx: StageContext) -> RecognizerTrainer:
    cfg, data = ctx.config, ctx.data
    tokens = [PoseRecognizerModel.sample_tokens(r, cfg["recognizer"]["target"]) for r in data["train"].rows]
    model = PoseRecognizerModel(
        PoseRecognizerConfig(
            feature_dim=data["feature_dim"],
            representation=data["representation"],
            vocab=PoseRecognizerModel.build_vocab(tokens, cfg["data"]["min_token_frequency"]),
            **cfg["recognizer"],
        )
    )
    args = RecognizerTrainingArguments(**cfg["recognizer_training"])
    return _evaluator_trainer(ctx, "recognizer", RecognizerTrainer, model, RecognizerCollator(model), args)


def _finish_recognizer(ctx: StageContext, trainer: RecognizerTrainer) -> Dict[str, Any]:
    trainer.save_model(str(ctx.output_dir / "recognizer"))  # through `_save`: config.json + model.safetensors
    metrics: Dict[str, Any] = {"recognizer_vocab_size": trainer.model.config.vocab_size}
    batch_size = ctx.config["recognizer_training"]["eval_batch_size"]
    for split_name, split in ctx.data["eval_splits"].items():
        for k, v in recognizer_metrics(trainer.model, split, batch_size).items():
            metrics[f"recognizer_{split_name}_{k}"] = round(v, 2)
    return metrics


def _build_contrastive_trainer(ctx: StageContext) -> ContrastiveTrainer:
    cfg, data = ctx.config, ctx.data
    texts = [r["text"] for r in data["train"].rows]
    text_tokenizer = cfg["contrastive"]["text_tokenizer"]
    model = SignTextContrastiveModel(
        SignTextContrastiveConfig(
            feature_dim=data["feature_dim"],
            representation=data["representation"],
            text_vocab=SignTextContrastiveModel.build_vocab(texts, text_tokenizer, cfg["data"]["min_token_frequency"]),
            **cfg["contrastive"],
        )
    )
    args = ContrastiveTrainingArguments(**cfg["contrastive_training"])
    return _evaluator_trainer(ctx, "contrastive", ContrastiveTrainer, model, ContrastiveCollator(model), args)


def _finish_contrastive(ctx: StageContext, trainer: ContrastiveTrainer) -> Dict[str, Any]:
    trainer.save_model(str(ctx.output_dir / "contrastive"))
    metrics: Dict[str, Any] = {"contrastive_text_vocab_size": len(trainer.model.config.text_vocab)}
    batch_size = ctx.config["contrastive_training"]["eval_batch_size"]
    for split_name, split in ctx.data["eval_splits"].items():
        for k, v in contrastive_metrics(trainer.model, split, batch_size).items():
            metrics[f"contrastive_{split_name}_{k}"] = round(v, 2) if isinstance(v, float) else v
    return metrics


EVALUATOR_STAGES = (
    Stage("recognizer", _build_recognizer_trainer, _finish_recognizer),
    Stage("contrastive", _build_contrastive_trainer, _finish_contrastive),
)

"""Training the benchmark's evaluators: the back-translation recogniser and the sign-text contrastive evaluator.

Both are trained once, with a fixed seed, on the ground-truth poses of the `train` split only; by default the
`validation` split selects the best epoch (lowest validation loss). They are the two stages of the stage runner
(`hf_sign.training.stages.run_stages`), either of which can run alone (`--stage recognizer|contrastive`):

* `recognizer` (`RecognizerTrainingArguments`, section `recognizer_training`): [`PoseRecognizerModel`], CTC loss
  from pose sequences to glosses (or words, see `recognizer.target`);
* `contrastive` (`ContrastiveTrainingArguments`, section `contrastive_training`): [`SignTextContrastiveModel`],
  symmetric InfoNCE between pose sequences and their texts, with in-batch negatives.

Each model carries the train split's `PoseNormalizer`, so it reads poses in the dataset's units; training may add
Gaussian noise (`noise_std`) and random tempo changes (`time_stretch`) to its poses. After training, each model is
scored on the validation and test splits' ground truth (the ceiling row of the benchmark's tables).

```
OUTPUT_DIR/recognizer/, contrastive/      config.json (vocabulary inside) + model.safetensors (normaliser inside)
OUTPUT_DIR/evaluator_metrics.json         per stage: seconds, losses, steps; validation/test metrics of ground truth
OUTPUT_DIR/evaluator_config.json          the resolved config (defaults <- YAML <- overrides, target filled in)
OUTPUT_DIR/evaluator_training_args.json   the run: dataset_dir, output_dir, config, stage, seed (the harness reads it)
OUTPUT_DIR/checkpoints/{recognizer,contrastive}/checkpoint-N   Trainer checkpoints (safetensors weights; resume)
```

Config (`CONFIG_SCHEMA`): the architecture defaults are read off `PoseRecognizerConfig.__init__` and
`SignTextContrastiveConfig.__init__`, the training defaults off `EvaluatorDataArguments` and the stage arguments. A
YAML file in `hf_sign/configs/evaluator/` lists only what differs from them; dotted overrides
(`--set recognizer_training.num_train_epochs=20`) are type-checked.

Entry points: `train_evaluators(dataset_dir, output_dir, config="default", seed=None, stage=None,
resume_from_checkpoint=False, **overrides)` (what the benchmark harness calls), `train_evaluator_system`
(`hf-sign train evaluator`, through the registry) and `python -m hf_sign.training.evaluator_trainer --dataset_dir D
--output_dir O [--config tiny] [--stage recognizer] [--set recognizer.hidden_size=64 ...]`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from transformers import HfArgumentParser, TrainingArguments

from ..data.collator import PoseCollator
from ..data.io import load_corpus, split_rows
from ..data.normalization import PoseNormalizer
from ..evaluation.evaluators import (
    PoseRecognizerConfig,
    PoseRecognizerModel,
    SignTextContrastiveConfig,
    SignTextContrastiveModel,
)
from . import config_utils
from .arguments import DataArguments, StageTrainingArguments, TrainingRunArguments
from .config_utils import ConfigSchema, ConfigSection, parse_overrides
from .stages import Stage, StageContext, run_stages
from .trainer_utils import HfSignTrainer, PoseRows

__all__ = [
    "SYSTEM",
    "STAGES",
    "CONFIG_SCHEMA",
    "EvaluatorDataArguments",
    "EvaluatorTrainingArguments",
    "RecognizerTrainingArguments",
    "ContrastiveTrainingArguments",
    "RecognizerCollator",
    "ContrastiveCollator",
    "RecognizerTrainer",
    "ContrastiveTrainer",
    "EVALUATOR_STAGES",
    "full_config",
    "load_splits",
    "time_stretch",
    "word_error_rate",
    "recognizer_metrics",
    "contrastive_metrics",
    "resolve_config",
    "run_evaluator_training",
    "train_evaluators",
    "train_evaluator_system",
    "main",
]

logger = logging.getLogger(__name__)

SYSTEM = "evaluator"
TARGETS = ("gloss", "text", "auto")


# ================================================================================================ 1. arguments
@dataclass
class EvaluatorDataArguments(DataArguments):
    """The `data` section: `DataArguments` (`max_frames`, defaults to 1000 here) plus

    Args:
        min_token_frequency (`int`, *optional*, defaults to 1): vocabulary cut-off of both models (rarer tokens
            read as `<unk>`).
    """

    max_frames: int = 1000
    min_token_frequency: int = 1

    def __post_init__(self):
        super().__post_init__()
        if self.min_token_frequency < 1:
            raise ValueError(f"`data.min_token_frequency` must be >= 1; got {self.min_token_frequency}.")


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


def _init_arguments(config_class: type) -> type:
    """A `ConfigSection` source with the `__init__` arguments of a transformers config class. (Such a class is a
    dataclass of `PreTrainedConfig`'s own fields, which `ConfigSection` would read instead of its arguments.)"""
    return type(config_class.__name__, (), {"__init__": config_class.__init__})


# The trainer derives these from the data.
_DERIVED = ("feature_dim", "representation", "vocab", "text_vocab")

CONFIG_SCHEMA = ConfigSchema(
    SYSTEM,
    top_level={"seed": 0, "num_threads": 0},
    sections={
        "data": ConfigSection(EvaluatorDataArguments),
        # `target: auto`: glosses when every train sample has them, the text when none has
        "recognizer": ConfigSection(
            _init_arguments(PoseRecognizerConfig), exclude=_DERIVED, defaults={"target": "auto"}
        ),
        "recognizer_training": ConfigSection(RecognizerTrainingArguments),
        "contrastive": ConfigSection(_init_arguments(SignTextContrastiveConfig), exclude=_DERIVED),
        "contrastive_training": ConfigSection(ContrastiveTrainingArguments),
    },
)


def full_config(
    config: Union[str, Path, Mapping[str, Any], None] = "default", overrides: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """Defaults <- YAML config (name, path or dict) <- dotted overrides; unknown keys and wrong values raise before
    any data is read."""
    cfg = CONFIG_SCHEMA.resolve(config, overrides)
    if cfg["recognizer"]["target"] not in TARGETS:
        raise ValueError(f"`recognizer.target` must be one of {TARGETS}; got {cfg['recognizer']['target']!r}.")
    PoseRecognizerConfig(**{**cfg["recognizer"], "target": "gloss"})
    SignTextContrastiveConfig(**cfg["contrastive"])
    EvaluatorDataArguments(**cfg["data"])
    RecognizerTrainingArguments(**cfg["recognizer_training"])
    ContrastiveTrainingArguments(**cfg["contrastive_training"])
    return cfg


def resolve_config(config: str) -> Path:
    """`config` as a YAML path, or a name under `hf_sign/configs/evaluator/` (`tiny`, `default`)."""
    return config_utils.resolve_config(SYSTEM, config)


# ================================================================================================ 2. data
def load_splits(dataset_dir: str) -> Dict[str, PoseRows]:
    """Load an hf-sign dataset (`hf_sign.data.io.load_corpus`) into in-memory `PoseRows` per split (every column: the
    recogniser reads `gloss`, the final metrics the `test` split)."""
    dd = load_corpus(dataset_dir)
    if "train" not in dd or len(dd["train"]) == 0:
        raise ValueError(f"Dataset {dataset_dir!s} has no non-empty `train` split; evaluators train on it.")
    return {name: PoseRows(split_rows(ds, name) if len(ds) else []) for name, ds in dd.items()}


def _filter_long(split: PoseRows, max_frames: int, name: str) -> Tuple[PoseRows, int]:
    kept = [r for r in split.rows if len(r["poses"]) <= max_frames]
    dropped = len(split.rows) - len(kept)
    if dropped:
        logger.warning("%d %s sample(s) longer than data.max_frames=%d are left out.", dropped, name, max_frames)
    return PoseRows(kept), dropped


def load_evaluator_data(dataset_dir: str, max_frames: int) -> Dict[str, Any]:
    """What both stages read: `train` and `validation` rows without sequences over `max_frames` (left out, never cut;
    `validation` is `None` when empty), the splits scored at the end (`eval_splits`: validation, test), the train
    split's `normalizer`, `feature_dim`, `representation` and the count of `skipped` train samples."""
    splits = load_splits(dataset_dir)
    train, skipped = _filter_long(splits["train"], max_frames, "train")
    if len(train) == 0:
        raise ValueError(f"No train sample has <= data.max_frames={max_frames} frames.")
    validation = splits.get("validation")
    if validation is not None:
        validation, _ = _filter_long(validation, max_frames, "validation")
    validation = validation if validation is not None and len(validation) else None
    feature_dim = int(train.rows[0]["poses"].shape[1])
    representation = str(train.rows[0]["representation"])
    return {
        "train": train,
        "validation": validation,
        "eval_splits": {k: v for k, v in (("validation", validation), ("test", splits.get("test"))) if v},
        "normalizer": PoseNormalizer.fit(
            (r["poses"] for r in train.rows), feature_dim=feature_dim, representation=representation
        ),
        "feature_dim": feature_dim,
        "representation": representation,
        "skipped": skipped,
    }


@dataclass
class RecognizerCollator:
    """`PoseCollator` batch + `labels` (target token ids padded with -100) for the recogniser."""

    model: PoseRecognizerModel
    max_frames: Optional[int] = None

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        batch = PoseCollator(max_frames=self.max_frames)(samples)
        tokens = [PoseRecognizerModel.sample_tokens(s, self.model.config.target) for s in samples]
        labels = self.model.encode_targets(tokens)
        return {"poses": batch["poses"], "attention_mask": batch["attention_mask"], "labels": labels}


@dataclass
class ContrastiveCollator:
    """`PoseCollator` batch + tokenised texts (`input_ids`, `text_attention_mask`)."""

    model: SignTextContrastiveModel
    max_frames: Optional[int] = None

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        batch = PoseCollator(max_frames=self.max_frames)(samples)
        input_ids, text_mask = self.model.tokenize([s["text"] for s in samples])
        return {
            "poses": batch["poses"],
            "attention_mask": batch["attention_mask"],
            "input_ids": input_ids,
            "text_attention_mask": text_mask,
        }


# ================================================================================================ 3. trainers
def time_stretch(poses: torch.Tensor, mask: torch.Tensor, amount: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Resample each sequence to `length * f` frames, f ~ U[1 - amount, 1 + amount] (linear interpolation).

    Generated poses are rarely exactly as fast as the ground truth; a recogniser that has seen tempo changes
    reads them more fairly.
    """
    lengths = mask.long().sum(1).tolist()
    factors = 1.0 + amount * (2 * torch.rand(len(lengths)) - 1)
    new_lengths = [max(1, int(round(n * float(f)))) for n, f in zip(lengths, factors)]
    out = poses.new_zeros(len(lengths), max(new_lengths), poses.shape[-1])
    for i, (n, m) in enumerate(zip(lengths, new_lengths)):
        seq = poses[i, :n].t()[None]  # (1, D, n)
        if n > 1:
            out[i, :m] = F.interpolate(seq, size=m, mode="linear", align_corners=True)[0].t()
        else:
            out[i, :m] = seq[0].t().expand(m, -1)
    positions = torch.arange(out.shape[1], device=mask.device)[None]
    return out, positions < torch.tensor(new_lengths, device=mask.device)[:, None]


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


# ================================================================================================ 4. metrics
def word_error_rate(references: Sequence[Sequence[str]], hypotheses: Sequence[Sequence[str]]) -> float:
    """Corpus WER in percent: total token edit distance / total reference tokens."""
    errors = total = 0
    for ref, hyp in zip(references, hypotheses):
        prev = list(range(len(hyp) + 1))
        for i, r in enumerate(ref, 1):
            cur = [i] + [0] * len(hyp)
            for j, h in enumerate(hyp, 1):
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
            prev = cur
        errors += prev[-1]
        total += len(ref)
    return 100.0 * errors / max(total, 1)


def recognizer_metrics(model: PoseRecognizerModel, split: PoseRows, batch_size: int = 64) -> Dict[str, float]:
    """WER, BLEU-4 (sacrebleu over space-joined tokens, no extra tokenisation) and exact-match accuracy."""
    import sacrebleu

    refs = [PoseRecognizerModel.sample_tokens(r, model.config.target) for r in split.rows]
    order = np.argsort([len(r["poses"]) for r in split.rows])  # similar lengths per chunk: less padding
    hyps: List[List[str]] = [[] for _ in refs]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        poses = [split.rows[i]["poses"] for i in idx]
        for i, toks in zip(idx, model.generate(poses, batch_size=batch_size, return_tokens=True)):
            hyps[i] = toks
    bleu = sacrebleu.corpus_bleu([" ".join(h) for h in hyps], [[" ".join(r) for r in refs]], tokenize="none")
    return {
        "wer": word_error_rate(refs, hyps),
        "bleu4": float(bleu.score),
        "exact_match": 100.0 * float(np.mean([h == r for h, r in zip(hyps, refs)])),
    }


def contrastive_metrics(model: SignTextContrastiveModel, split: PoseRows, batch_size: int = 64) -> Dict[str, float]:
    """Sign-to-text retrieval R@1/R@5 (percent) among the split's distinct texts."""
    texts = [r["text"] for r in split.rows]
    pose_emb = model.get_pose_embeddings([r["poses"] for r in split.rows], batch_size=batch_size)
    text_emb = model.get_text_embeddings(texts)
    m = SignTextContrastiveModel.retrieval_metrics(pose_emb, text_emb, texts)
    return {"r1": m["R@1"], "r5": m["R@5"], "num_candidates": m["num_candidates"]}


# ================================================================================================ 5. stages
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
STAGES = tuple(stage.name for stage in EVALUATOR_STAGES)  # ("recognizer", "contrastive")


# ================================================================================================ 6. running
def _resolve_target(target: str, train: PoseRows) -> str:
    has = [bool(r["gloss"]) for r in train.rows]
    if target == "gloss":
        if not all(has):
            bad = next(r["id"] for r in train.rows if not r["gloss"])
            raise ValueError(
                f"`recognizer.target='gloss'` but train sample {bad!r} has an empty `gloss`; use target='text' or "
                "'auto'."
            )
        return "gloss"
    if target == "text":
        return "text"
    if all(has):
        return "gloss"
    if not any(has):
        return "text"
    raise ValueError(
        f"`recognizer.target='auto'`: {sum(has)} of {len(has)} train samples have glosses; choose target='gloss' or "
        "'text' explicitly."
    )


def _prepare(ctx: StageContext, stages: Sequence[str]) -> Dict[str, Any]:
    """Resolve the recogniser's target from the data and check that CTC can align its targets."""
    cfg, data = ctx.config, ctx.data
    metrics: Dict[str, Any] = {"num_train": len(data["train"]), "num_train_skipped_long": data["skipped"]}
    if "recognizer" in stages:
        target = cfg["recognizer"]["target"] = _resolve_target(cfg["recognizer"]["target"], data["train"])
        ds = cfg["recognizer"]["temporal_downsample"]
        unalignable = 0
        for row in data["train"].rows:
            t = PoseRecognizerModel.sample_tokens(row, target)
            unalignable += math.ceil(len(row["poses"]) / ds) < len(t) + sum(a == b for a, b in zip(t, t[1:]))
        if unalignable:
            logger.warning(
                "%d train sample(s) have more CTC targets than output steps; lower recognizer.temporal_downsample.",
                unalignable,
            )
        metrics.update(recognizer_target=target, recognizer_num_unalignable=unalignable)
    return metrics


def run_evaluator_training(
    cfg: Dict[str, Any],
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    stage: Optional[str] = None,
    resume_from_checkpoint: bool = False,
    use_cpu: bool = False,
    config_name: Optional[str] = None,
) -> Dict[str, Any]:
    """Run `stage` (or both stages) with the resolved config `cfg` (`full_config`); returns the metrics of
    `evaluator_metrics.json`. `config_name` (the config's name or path) is recorded in `evaluator_training_args.json`.
    """
    out = Path(output_dir)
    # the evaluators are two transformers models, not a generator's pipeline folder
    run_stages(
        EVALUATOR_STAGES,
        cfg,
        out,
        load_data=lambda: load_evaluator_data(str(dataset_dir), cfg["data"]["max_frames"]),
        stage=stage,
        resume_from_checkpoint=resume_from_checkpoint,
        use_cpu=use_cpu,
        prepare=_prepare,
        prefix="evaluator",
        pipeline_folder=False,
    )
    run = {
        "dataset_dir": str(dataset_dir),
        "output_dir": str(output_dir),
        "config": config_name,
        "stage": stage,
        "seed": cfg["seed"],
        "resume_from_checkpoint": resume_from_checkpoint,
        "use_cpu": use_cpu,
    }
    (out / "evaluator_training_args.json").write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    return json.loads((out / "evaluator_metrics.json").read_text(encoding="utf-8"))


def train_evaluators(
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    config: Union[str, Path, Mapping[str, Any], None] = "default",
    seed: Optional[int] = None,
    stage: Optional[str] = None,
    resume_from_checkpoint: bool = False,
    use_cpu: bool = False,
    **overrides: Any,
) -> Dict[str, Any]:
    """Train the recogniser and the contrastive evaluator on `dataset_dir`'s train split.

    Args:
        dataset_dir (`str` or `Path`): hf-sign dataset folder (or Hub id) with a `train` split (and `validation`,
            `test` for the best epoch and the final metrics).
        output_dir (`str` or `Path`): output folder (`recognizer/`, `contrastive/`, `evaluator_metrics.json`, ...).
        config (`str`, `Path` or `dict`, *optional*, defaults to `"default"`): `tiny`, `default`, a YAML path, or a
            dict of config sections.
        seed (`int`, *optional*): the fixed seed; `None` keeps the config's (0 unless a config sets it).
        stage (`str`, *optional*): `"recognizer"` or `"contrastive"`; default: both, in order.
        resume_from_checkpoint (`bool`, *optional*, defaults to `False`): continue each stage from its latest
            checkpoint under `output_dir/checkpoints/<stage>/`.
        use_cpu (`bool`, *optional*, defaults to `False`): train on CPU even when an accelerator is present.
        **overrides: dotted config keys (`**{"recognizer_training.num_train_epochs": 2}`) or sections as mappings
            (`recognizer_training={"num_train_epochs": 2}`); strings (from `--set`) are converted to the replaced
            value's type; unknown keys raise.

    Returns:
        `dict`: the metrics, e.g. `recognizer_test_bleu4`, `recognizer_test_wer`, `contrastive_test_r1`.
    """
    if seed is not None:
        overrides["seed"] = seed
    cfg = full_config(config, overrides)
    name = str(config) if isinstance(config, (str, Path)) else None
    return run_evaluator_training(cfg, dataset_dir, output_dir, stage, resume_from_checkpoint, use_cpu, name)


def train_evaluator_system(
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    config: Union[str, Path, Mapping[str, Any], None] = "default",
    stage: Optional[str] = None,
    seed: Optional[int] = None,
    overrides: Optional[Dict[str, Any]] = None,
    resume_from_checkpoint: bool = False,
) -> Dict[str, Any]:
    """The registry's entry point (`hf-sign train evaluator`): `train_evaluators` with the dotted `--set` overrides as
    one dict, like every system's trainer takes them."""
    return train_evaluators(
        dataset_dir, output_dir, config=config, seed=seed, stage=stage,
        resume_from_checkpoint=resume_from_checkpoint, **(overrides or {}),
    )


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m hf_sign.training.evaluator_trainer --dataset_dir D --output_dir O [--config tiny] [--stage S]
    [--set k=v ...]` (`--config` defaults to `default` here)."""
    parser = HfArgumentParser(TrainingRunArguments)
    parser.set_defaults(config="default")
    (args,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides: Dict[str, Any] = dict(parse_overrides(args.set))
    if args.num_threads:
        overrides["num_threads"] = args.num_threads
    if args.seed is not None:
        overrides["seed"] = args.seed
    cfg = full_config(args.config, overrides)
    metrics = run_evaluator_training(
        cfg, args.dataset_dir, args.output_dir, args.stage, args.resume_from_checkpoint, args.use_cpu, args.config
    )
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

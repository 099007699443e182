"""Training the evaluator models (back-translation recogniser and sign-text contrastive evaluator).

Both are trained once, with a fixed seed, on the ground-truth poses of the `train` split only; the
`validation` split selects the best epoch (lowest validation loss). The result is

```
OUTPUT_DIR/recognizer/              config.json (vocabulary inside) + model.safetensors (normaliser inside)
OUTPUT_DIR/contrastive/             same, for the contrastive evaluator
OUTPUT_DIR/evaluator_metrics.json   validation/test metrics of ground-truth poses (the ceiling row)
OUTPUT_DIR/checkpoints/{recognizer,contrastive}/checkpoint-N   Trainer checkpoints (resume)
```

Entry points:

- `train_evaluators(dataset_dir, output_dir, config="default", seed=None, **overrides)` (what
  `hf-sign train evaluator --dataset DIR --output-dir DIR [--config NAME|PATH] [--set key=value ...]` calls);
- `python -m hf_sign.training.evaluator_trainer --config tiny --dataset_dir DIR --output_dir DIR [--key value ...]`.

`--config NAME` resolves to `hf_sign/configs/evaluator/NAME.yaml`; a path to a YAML file works too. Every
key of the YAML and every override is a field of [`EvaluatorTrainingArguments`].

Measured with `config="default"` on the default SynthSign corpus (seed 0; 2000/200/200 sentences, signs
co-articulated), one CPU thread: recogniser 318-766 s (one to three other jobs on the 2 cores), contrastive
120-150 s. Ground-truth test poses (the ceiling row): back-translation WER 19.5, BLEU-4 52.5; SiCLIP sign-to-text
R@1 79.5, R@5 96.0 among 200 texts (chance 0.5); the mean pose scores 0.0 / 0.5. The recogniser is the noisiest
part of the benchmark: small corpus changes moved its ground-truth test WER between 13 and 48 (see the config's
comments). (Before co-articulation, with 20 recogniser epochs, degraded inputs scored as they should: the same
poses 1.25x slower BLEU-4 67.6 / R@1 86.0; with 0.3-std noise 62.5 / 88.5; time-reversed 1.0 / 29.5; another
sentence's poses 0.3 / 0.5.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from transformers import HfArgumentParser, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

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
from .trainer_utils import HfSignTrainer, PoseRows

logger = logging.getLogger(__name__)



@dataclass
class EvaluatorTrainingArguments:
    """Arguments of `train_evaluators` (one YAML config = one set of these fields).

    Args:
        dataset_dir (`str`): hf-sign dataset (local folder or Hub id) with `train` (and `validation`) splits.
        output_dir (`str`): where `recognizer/`, `contrastive/`, checkpoints and metrics go.
        config (`str`, *optional*): name or path of the YAML these values came from (recorded only).
        seed (`int`, *optional*, defaults to 0): seed of model init, batching, dropout and augmentation.
        train_recognizer (`bool`, *optional*, defaults to `True`): train the back-translation recogniser.
        train_contrastive (`bool`, *optional*, defaults to `True`): train the contrastive evaluator.
        max_frames (`int`, *optional*, defaults to 1000): training samples longer than this are left out
            (with a warning and a count in the metrics), never cut.
        target (`str`, *optional*, defaults to `"auto"`): recogniser target, `"gloss"`, `"text"` or `"auto"`
            (gloss when every train sample has glosses, text when none has).
        min_token_frequency (`int`, *optional*, defaults to 1): vocabulary cut-off of both models.
        text_tokenizer (`str`, *optional*, defaults to `"word"`): contrastive text tokens, `"word"` or `"char"`.
        noise_std (`float`, *optional*, defaults to 0.0): Gaussian noise added to training poses, in units
            of the per-feature std (robustness to generated poses).
        recognizer_time_stretch, contrastive_time_stretch (`float`, *optional*, defaults to 0.0): training
            sequences are resampled to a random length in [1 - x, 1 + x] times their own. On SynthSign 0.2 makes
            the contrastive evaluator tempo-robust (R@1 on 1.25x slower test poses 86 instead of 51) and better
            (test R@1 88 vs 78), while it costs the recogniser accuracy (test BLEU-4 56 vs 69) that it does not
            need for robustness (1.25x slower: BLEU-4 68 without it).
        recognizer_* / contrastive_* architecture fields: see `PoseRecognizerConfig` / `SignTextContrastiveConfig`.
        recognizer_num_train_epochs, contrastive_num_train_epochs (`float`): epochs of each model.
        recognizer_learning_rate, contrastive_learning_rate (`float`): peak AdamW learning rates.
        recognizer_batch_size, contrastive_batch_size (`int`): train batch sizes (contrastive: also the number
            of in-batch negatives + 1).
        weight_decay (`float`, defaults to 0.01), warmup_steps (`float`, defaults to 0.05; < 1 is a ratio),
        lr_scheduler_type (`str`, defaults to `"cosine"`), max_grad_norm (`float`, defaults to 1.0),
        eval_batch_size (`int`, defaults to 64), logging_steps (`int`, defaults to 50): Trainer settings.
        select_best (`bool`, *optional*, defaults to `True`): evaluate on `validation` every epoch and keep
            the epoch with the lowest validation loss (needs a non-empty validation split).
        save_checkpoints (`bool`, *optional*, defaults to `True`): write a Trainer checkpoint every epoch (needed
            to resume; always on when `select_best` is).
        resume_from_checkpoint (`bool`, *optional*, defaults to `False`): continue each model from its latest
            checkpoint in `output_dir/checkpoints/<model>/`.
        use_cpu (`bool`, *optional*, defaults to `False`): train on CPU even when an accelerator is present.
        num_threads (`int`, *optional*, defaults to 0): CPU threads of torch during training (0 keeps torch's
            setting). Small models train faster on 1 thread when other processes share the cores.
    """

    dataset_dir: str = field(metadata={"help": "hf-sign dataset folder (or Hub id) with train/validation splits"})
    output_dir: str = field(metadata={"help": "output folder"})
    config: Optional[str] = field(default=None, metadata={"help": "YAML config name (configs/evaluator/NAME.yaml) or path"})
    seed: int = 0
    train_recognizer: bool = True
    train_contrastive: bool = True
    max_frames: int = 1000
    target: str = "auto"
    min_token_frequency: int = 1
    text_tokenizer: str = "word"
    noise_std: float = 0.0
    recognizer_time_stretch: float = 0.0
    contrastive_time_stretch: float = 0.0
    # recogniser architecture
    recognizer_hidden_size: int = 192
    recognizer_num_hidden_layers: int = 3
    recognizer_num_attention_heads: int = 4
    recognizer_intermediate_size: int = 384
    recognizer_dropout: float = 0.1
    recognizer_temporal_downsample: int = 2
    # contrastive architecture
    contrastive_hidden_size: int = 192
    contrastive_num_hidden_layers: int = 3
    contrastive_num_attention_heads: int = 4
    contrastive_intermediate_size: int = 384
    contrastive_temporal_downsample: int = 2
    contrastive_text_hidden_size: int = 128
    contrastive_text_num_hidden_layers: int = 2
    contrastive_text_intermediate_size: int = 256
    contrastive_projection_dim: int = 128
    contrastive_dropout: float = 0.1
    # optimisation
    recognizer_num_train_epochs: float = 30.0
    recognizer_learning_rate: float = 1e-3
    recognizer_batch_size: int = 32
    contrastive_num_train_epochs: float = 30.0
    contrastive_learning_rate: float = 5e-4
    contrastive_batch_size: int = 64
    weight_decay: float = 0.01
    warmup_steps: float = 0.05
    lr_scheduler_type: str = "cosine"
    max_grad_norm: float = 1.0
    eval_batch_size: int = 64
    logging_steps: int = 50
    select_best: bool = True
    save_checkpoints: bool = True
    resume_from_checkpoint: bool = False
    use_cpu: bool = False
    num_threads: int = 0

    def __post_init__(self):
        if self.target not in ("gloss", "text", "auto"):
            raise ValueError(f"`target` must be 'gloss', 'text' or 'auto'; got {self.target!r}.")
        if self.text_tokenizer not in ("word", "char"):
            raise ValueError(f"`text_tokenizer` must be 'word' or 'char'; got {self.text_tokenizer!r}.")
        if self.max_frames < 1:
            raise ValueError(f"`max_frames` must be >= 1; got {self.max_frames}.")
        if not (self.train_recognizer or self.train_contrastive):
            raise ValueError("Both `train_recognizer` and `train_contrastive` are False; nothing to train.")


# ----------------------------------------------------------------------------------------- data
def load_splits(dataset_dir: str) -> Dict[str, PoseRows]:
    """Load an hf-sign dataset (`hf_sign.data.io.load_corpus`) into in-memory `PoseRows` per split."""
    dd = load_corpus(dataset_dir)
    if "train" not in dd or len(dd["train"]) == 0:
        raise ValueError(f"Dataset {dataset_dir!s} has no non-empty `train` split; evaluators train on it.")
    return {name: PoseRows(split_rows(ds, name) if len(ds) else []) for name, ds in dd.items()}


@dataclass
class RecognizerCollator:
    """`PoseCollator` batch + `labels` (target token ids padded with -100) for the recogniser."""

    model: PoseRecognizerModel
    max_frames: Optional[int] = None

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        batch = PoseCollator(max_frames=self.max_frames)(samples)
        tokens = [PoseRecognizerModel.sample_tokens(s, self.model.config.target) for s in samples]
        return {"poses": batch["poses"], "attention_mask": batch["attention_mask"], "labels": self.model.encode_targets(tokens)}


@dataclass
class ContrastiveCollator:
    """`PoseCollator` batch + tokenised texts (`input_ids`, `text_attention_mask`)."""

    model: SignTextContrastiveModel
    max_frames: Optional[int] = None

    def __call__(self, samples: List[Dict[str, Any]]) -> Dict[str, Any]:
        batch = PoseCollator(max_frames=self.max_frames)(samples)
        input_ids, text_mask = self.model.tokenize([s["text"] for s in samples])
        return {"poses": batch["poses"], "attention_mask": batch["attention_mask"], "input_ids": input_ids, "text_attention_mask": text_mask}


# -------------------------------------------------------------------------------------- trainers
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
        out[i, :m] = F.interpolate(seq, size=m, mode="linear", align_corners=True)[0].t() if n > 1 else seq[0].t().expand(m, -1)
    new_mask = torch.arange(out.shape[1], device=mask.device)[None] < torch.tensor(new_lengths, device=mask.device)[:, None]
    return out, new_mask


class _PoseTrainer(HfSignTrainer):
    """Shared parts: length-grouped batches (less padding), augmentation, loss-only evaluation."""

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
    """`Trainer` for [`SignTextContrastiveModel`]: symmetric InfoNCE on batches from `ContrastiveCollator`.

    Batches are drawn at random, not grouped by length: in-batch negatives of one length make the task
    harder to start (every pooled embedding looks alike) and let the model lean on nothing but content.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("group_by_length", False)
        super().__init__(*args, **kwargs)

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


# ---------------------------------------------------------------------------------------- metrics
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
        for i, toks in zip(idx, model.generate([split.rows[i]["poses"] for i in idx], batch_size=batch_size, return_tokens=True)):
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


# ---------------------------------------------------------------------------------------- running
def _resolve_target(args: EvaluatorTrainingArguments, train: PoseRows) -> str:
    has = [bool(r["gloss"]) for r in train.rows]
    if args.target == "gloss":
        if not all(has):
            bad = next(r["id"] for r in train.rows if not r["gloss"])
            raise ValueError(f"`target='gloss'` but train sample {bad!r} has an empty `gloss`; use target='text' or 'auto'.")
        return "gloss"
    if args.target == "text":
        return "text"
    if all(has):
        return "gloss"
    if not any(has):
        return "text"
    raise ValueError(
        f"`target='auto'`: {sum(has)} of {len(has)} train samples have glosses; choose target='gloss' or 'text' explicitly."
    )


def _training_arguments(args: EvaluatorTrainingArguments, name: str, has_validation: bool) -> TrainingArguments:
    select = args.select_best and has_validation
    return TrainingArguments(
        output_dir=str(Path(args.output_dir) / "checkpoints" / name),
        num_train_epochs=getattr(args, f"{name}_num_train_epochs"),
        learning_rate=getattr(args, f"{name}_learning_rate"),
        per_device_train_batch_size=getattr(args, f"{name}_batch_size"),
        per_device_eval_batch_size=args.eval_batch_size,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        lr_scheduler_type=args.lr_scheduler_type,
        max_grad_norm=args.max_grad_norm,
        logging_steps=args.logging_steps,
        eval_strategy="epoch" if select else "no",
        save_strategy="epoch" if (select or args.save_checkpoints) else "no",
        save_total_limit=1,
        load_best_model_at_end=select,
        metric_for_best_model="eval_loss" if select else None,
        greater_is_better=False if select else None,
        seed=args.seed,
        data_seed=args.seed,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available() and not args.use_cpu,
        report_to="none",
        use_cpu=args.use_cpu,
    )


def _fit(trainer: _PoseTrainer, args: EvaluatorTrainingArguments, out_dir: Path) -> float:
    resume = None
    if args.resume_from_checkpoint and Path(trainer.args.output_dir).is_dir():
        resume = get_last_checkpoint(trainer.args.output_dir)
        if resume is None:
            logger.warning("resume_from_checkpoint: no checkpoint in %s; training from scratch.", trainer.args.output_dir)
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    elapsed = time.perf_counter() - start
    trainer.save_model(str(out_dir))  # goes through `_save`: config.json + model.safetensors, no pickle
    return elapsed


def _filter_long(split: PoseRows, max_frames: int, name: str) -> Tuple[PoseRows, int]:
    kept = [r for r in split.rows if len(r["poses"]) <= max_frames]
    dropped = len(split.rows) - len(kept)
    if dropped:
        logger.warning("%d %s sample(s) longer than max_frames=%d are left out of training.", dropped, name, max_frames)
    return PoseRows(kept), dropped


def run_evaluator_training(args: EvaluatorTrainingArguments) -> Dict[str, Any]:
    """Train the evaluators described by `args`; returns (and writes) a flat dict of final metrics."""
    threads = torch.get_num_threads()
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: EvaluatorTrainingArguments) -> Dict[str, Any]:
    splits = load_splits(args.dataset_dir)
    train, dropped = _filter_long(splits["train"], args.max_frames, "train")
    if len(train) == 0:
        raise ValueError(f"No train sample has <= max_frames={args.max_frames} frames.")
    validation = splits.get("validation")
    if validation is not None:
        validation, _ = _filter_long(validation, args.max_frames, "validation")
    has_val = validation is not None and len(validation) > 0
    feature_dim = int(train.rows[0]["poses"].shape[1])
    representation = str(train.rows[0]["representation"])
    normalizer = PoseNormalizer.fit((r["poses"] for r in train.rows), feature_dim=feature_dim, representation=representation)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics: Dict[str, Any] = {"num_train": len(train), "num_train_skipped_long": dropped}
    eval_splits = {k: v for k, v in (("validation", validation), ("test", splits.get("test"))) if v is not None and len(v)}

    if args.train_recognizer:
        target = _resolve_target(args, train)
        token_seqs = [PoseRecognizerModel.sample_tokens(r, target) for r in train.rows]
        set_seed(args.seed)
        model = PoseRecognizerModel(
            PoseRecognizerConfig(
                feature_dim=feature_dim,
                representation=representation,
                vocab=PoseRecognizerModel.build_vocab(token_seqs, args.min_token_frequency),
                target=target,
                hidden_size=args.recognizer_hidden_size,
                num_hidden_layers=args.recognizer_num_hidden_layers,
                num_attention_heads=args.recognizer_num_attention_heads,
                intermediate_size=args.recognizer_intermediate_size,
                dropout=args.recognizer_dropout,
                temporal_downsample=args.recognizer_temporal_downsample,
            )
        )
        model.set_normalizer(normalizer)
        ds = model.config.temporal_downsample
        unalignable = sum(math.ceil(len(r["poses"]) / ds) < len(t) + sum(a == b for a, b in zip(t, t[1:])) for r, t in zip(train.rows, token_seqs))
        if unalignable:
            logger.warning("%d train sample(s) have more CTC targets than output steps; lower temporal_downsample.", unalignable)
        trainer = RecognizerTrainer(
            model=model,
            args=_training_arguments(args, "recognizer", has_val),
            data_collator=RecognizerCollator(model),
            train_dataset=train,
            eval_dataset=validation if has_val else None,
            noise_std=args.noise_std,
            time_stretch=args.recognizer_time_stretch,
        )
        metrics["recognizer_train_seconds"] = round(_fit(trainer, args, out / "recognizer"), 1)
        metrics["recognizer_target"] = target
        metrics["recognizer_vocab_size"] = model.config.vocab_size
        metrics["recognizer_num_unalignable"] = unalignable
        for split_name, split in eval_splits.items():
            for k, v in recognizer_metrics(trainer.model, split, args.eval_batch_size).items():
                metrics[f"recognizer_{split_name}_{k}"] = round(v, 2)

    if args.train_contrastive:
        set_seed(args.seed)
        model = SignTextContrastiveModel(
            SignTextContrastiveConfig(
                feature_dim=feature_dim,
                representation=representation,
                text_vocab=SignTextContrastiveModel.build_vocab([r["text"] for r in train.rows], args.text_tokenizer, args.min_token_frequency),
                text_tokenizer=args.text_tokenizer,
                hidden_size=args.contrastive_hidden_size,
                num_hidden_layers=args.contrastive_num_hidden_layers,
                num_attention_heads=args.contrastive_num_attention_heads,
                intermediate_size=args.contrastive_intermediate_size,
                temporal_downsample=args.contrastive_temporal_downsample,
                text_hidden_size=args.contrastive_text_hidden_size,
                text_num_hidden_layers=args.contrastive_text_num_hidden_layers,
                text_intermediate_size=args.contrastive_text_intermediate_size,
                projection_dim=args.contrastive_projection_dim,
                dropout=args.contrastive_dropout,
            )
        )
        model.set_normalizer(normalizer)
        trainer = ContrastiveTrainer(
            model=model,
            args=_training_arguments(args, "contrastive", has_val),
            data_collator=ContrastiveCollator(model),
            train_dataset=train,
            eval_dataset=validation if has_val else None,
            noise_std=args.noise_std,
            time_stretch=args.contrastive_time_stretch,
        )
        metrics["contrastive_train_seconds"] = round(_fit(trainer, args, out / "contrastive"), 1)
        metrics["contrastive_text_vocab_size"] = len(model.config.text_vocab)
        for split_name, split in eval_splits.items():
            for k, v in contrastive_metrics(trainer.model, split, args.eval_batch_size).items():
                metrics[f"contrastive_{split_name}_{k}"] = round(v, 2) if isinstance(v, float) else v

    (out / "evaluator_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (out / "evaluator_training_args.json").write_text(json.dumps(dataclasses.asdict(args), indent=2) + "\n", encoding="utf-8")
    return metrics


# ------------------------------------------------------------------------------------- configs
def resolve_config(config: str) -> Path:
    """`config` as a YAML path, or a name under `hf_sign/configs/evaluator/` (`tiny`, `default`)."""
    return config_utils.resolve_config("evaluator", config)


def build_arguments(
    dataset_dir: str, output_dir: str, config: Optional[str] = "default", seed: Optional[int] = None, **overrides: Any
) -> EvaluatorTrainingArguments:
    """YAML config (name or path) + overrides -> `EvaluatorTrainingArguments` (unknown keys raise).

    `seed=None` keeps the config's seed (0 when it has none); string values are converted to the field's type.
    """
    values: Dict[str, Any] = {}
    if config:
        values.update(yaml.safe_load(resolve_config(config).read_text(encoding="utf-8")) or {})
    values.update(dataset_dir=str(dataset_dir), output_dir=str(output_dir), config=config)
    if seed is not None:
        overrides = {**overrides, "seed": seed}
    defaults = {f.name: f.default for f in dataclasses.fields(EvaluatorTrainingArguments)}
    unknown = sorted(k for k in set(values) | set(overrides) if k not in defaults)
    if unknown:
        raise ValueError(f"Unknown evaluator training argument(s) {unknown}; valid names: {sorted(defaults)}.")
    values.update(overrides)
    # YAML reads `1e-3` as a string (YAML 1.1) and `--set` gives strings: convert to each field's type.
    values = {
        k: config_utils.coerce_value(v, defaults[k] if defaults[k] is not dataclasses.MISSING else None, k)
        for k, v in values.items()
    }
    (parsed,) = HfArgumentParser(EvaluatorTrainingArguments).parse_dict(values)
    return parsed


def train_evaluators(
    dataset_dir: str, output_dir: str, config: Optional[str] = "default", seed: Optional[int] = None, **overrides: Any
) -> Dict[str, Any]:
    """Train the recogniser and the contrastive evaluator on `dataset_dir`'s train split.

    Args:
        dataset_dir (`str`): hf-sign dataset folder (or Hub id).
        output_dir (`str`): output folder (`recognizer/`, `contrastive/`, `evaluator_metrics.json`, checkpoints).
        config (`str`, *optional*, defaults to `"default"`): config name (`tiny`, `default`) or YAML path.
        seed (`int`, *optional*): the fixed seed; `None` keeps the config's (0 in the shipped configs).
        **overrides: any `EvaluatorTrainingArguments` field; strings (from `--set key=value`) are converted to
            the field's type.

    Returns:
        `dict`: final metrics, e.g. `recognizer_test_bleu4`, `recognizer_test_wer`, `contrastive_test_r1`.
    """
    return run_evaluator_training(build_arguments(dataset_dir, output_dir, config=config, seed=seed, **overrides))


def train_evaluator_system(
    dataset_dir: str, output_dir: str, config: Optional[str] = "default", seed: Optional[int] = None,
    overrides: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """The registry's entry point (`hf-sign train evaluator`): `train_evaluators` with the dotted `--set` overrides
    as one dict, like every system's trainer takes them."""
    return train_evaluators(dataset_dir, output_dir, config=config, seed=seed, **(overrides or {}))


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m hf_sign.training.evaluator_trainer --config NAME --dataset_dir DIR --output_dir DIR [--field value]`."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default="default")
    known, _ = pre.parse_known_args(argv)
    parser = HfArgumentParser(EvaluatorTrainingArguments)
    parser.set_defaults(**(yaml.safe_load(resolve_config(known.config).read_text(encoding="utf-8")) or {}), config=known.config)
    (args,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(json.dumps(run_evaluator_training(args), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

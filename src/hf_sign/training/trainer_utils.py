"""The Trainer base and the data helpers every hf-sign training stage uses.

* `HfSignTrainer`: `transformers.Trainer` with length-grouped batches over `PoseRows`, running means of the loss
  terms in the logs (`log_loss_terms`), and pickle-free checkpoints: weights are safetensors (the Trainer's default),
  and the `TrainingArguments` that `Trainer` pickles into `training_args.bin` are kept as JSON instead, so nothing
  an hf-sign checkpoint holds for weights or settings needs unpickling. A stage subclasses it and overrides
  `compute_loss`. In a multi-process run (DDP) it runs that loss inside DDP's forward (so the gradients are
  all-reduced), shards length-grouped batches the same way on every process, seeds each process apart and averages
  the logged loss terms over the processes (`hf_sign.training.distributed`).
* `train_with_resume`: trains, from the latest checkpoint when resuming, and returns the time, losses and steps.
* `PoseRows`: a split as a sequence of dicts (a list, or a `PoseTable` read per row from a memory-mapped corpus);
  `lengths` feeds the length-grouped sampler.
* `load_pose_splits`: the train and validation rows of an hf-sign corpus, long sequences left out.
* `fit_or_load_normalizer`: the `PoseNormalizer` of the train split, fitted once into an output folder.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
from transformers import Trainer, set_seed
from transformers.trainer_pt_utils import LengthGroupedSampler
from transformers.trainer_utils import get_last_checkpoint

from ..data.io import load_corpus
from ..data.normalization import PoseNormalizer
from ..data.pose_table import PoseTable
from .distributed import SeededLengthGroupedSampler, main_process_first, reduce_mean

__all__ = ["PoseRows", "HfSignTrainer", "train_with_resume", "load_pose_splits", "fit_or_load_normalizer"]

logger = logging.getLogger(__name__)


class PoseRows(torch.utils.data.Dataset):
    """A split: a sequence of dicts with at least `poses` (a list, or a `PoseTable`, whose `num_frames` come from its
    lengths column); `length_key` names the field that gives each length (an array's length, or an int such as
    `num_frames`)."""

    def __init__(self, rows: List[Dict[str, Any]], length_key: str = "poses"):
        self.rows, self.length_key = rows, length_key

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return self.rows[i]

    @property
    def lengths(self) -> List[int]:
        if self.length_key == "num_frames" and isinstance(self.rows, PoseTable):
            return self.rows.lengths  # from the lengths column: no pose is read
        values = [r[self.length_key] for r in self.rows]
        return [int(v) if isinstance(v, (int, float)) else len(v) for v in values]


class HfSignTrainer(Trainer):
    """`Trainer` with length-grouped batches over `PoseRows`, loss terms in the logs and pickle-free checkpoints.

    Args:
        group_by_length (`bool`, *optional*, defaults to `True`): batch `PoseRows` of similar length (less padding).
        *args, **kwargs: what `transformers.Trainer` takes.

    A subclass's `compute_loss` returns a per-batch mean (hence `loss_is_scaled_for_ga = False`: the Trainer divides
    it by the gradient accumulation steps) and hands its named terms to `log_loss_terms`, which adds their running
    means since the last log to the next logged line (`loss_denoise`, `loss_length`, ...).
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, group_by_length: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_by_length = group_by_length
        self._loss_terms: Dict[str, List[float]] = {}
        if self.args.world_size > 1:
            # each process draws its own noise, timesteps, crops and dropout masks (the same seed everywhere would
            # give every shard of a batch the same draws); DDP starts every process from the main one's weights
            set_seed(self.args.seed + self.args.process_index)

    def log_loss_terms(self, terms: Mapping[str, torch.Tensor]) -> None:
        """Record scalar loss terms (everything but `loss`) for the running means of the next log."""
        for name, value in terms.items():
            if name != "loss":
                self._loss_terms.setdefault(name, []).append(float(value.detach()))

    def log(self, logs: Dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs and self._loss_terms:
            # every process logs at the same step; the terms are averaged over them, as the Trainer does the loss
            means = reduce_mean({k: sum(v) / len(v) for k, v in self._loss_terms.items()})
            logs.update({k: round(v, 5) for k, v in means.items()})
            self._loss_terms = {}
        super().log(logs, *args, **kwargs)

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not isinstance(model, torch.nn.parallel.DistributedDataParallel):
            return super().training_step(model, inputs, num_items_in_batch)
        # A stage's `compute_loss` calls the unwrapped model's parts (`vae.encode`, `module.denoiser`), which would
        # bypass DDP's forward and with it the bookkeeping its gradient all-reduce needs. Run it inside DDP's
        # forward instead: the wrapped module's `forward` is, for this one call, the stage's loss (which may call the
        # module's own `forward` again, hence restored first).
        compute_loss, module = self.compute_loss, model.module

        def loss_through_ddp(ddp_model, batch, return_outputs=False, num_items_in_batch=None):
            def forward():
                del module.forward
                return compute_loss(module, batch, return_outputs, num_items_in_batch)

            module.forward = forward
            try:
                return ddp_model()
            finally:
                module.__dict__.pop("forward", None)

        self.compute_loss = loss_through_ddp
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        finally:
            del self.compute_loss

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.group_by_length and isinstance(dataset, PoseRows):
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            if self.args.world_size > 1:  # the same order on every process, whose batches accelerate shards
                return SeededLengthGroupedSampler(batch, dataset.lengths, seed=self.args.seed)
            return LengthGroupedSampler(batch, lengths=dataset.lengths)
        return super()._get_train_sampler(train_dataset)

    def _save(self, output_dir: Optional[str] = None, state_dict=None) -> None:
        super()._save(output_dir, state_dict=state_dict)
        output_dir = Path(output_dir if output_dir is not None else self.args.output_dir)
        pickled = output_dir / "training_args.bin"
        if pickled.exists():
            pickled.unlink()
            (output_dir / "training_args.json").write_text(self.args.to_json_string(), encoding="utf-8")


def train_with_resume(trainer: Trainer, resume: bool) -> Dict[str, Any]:
    """`trainer.train()`, from the latest checkpoint in `trainer.args.output_dir` when `resume`.

    Returns:
        `dict` with `seconds`, `train_loss` (mean over this run's steps), `first_logged_loss`, `last_logged_loss`,
        `global_step` (counting the resumed checkpoint's steps) and `resumed_from` (the checkpoint folder or `None`).
    """
    checkpoint = None
    if resume and Path(trainer.args.output_dir).is_dir():
        checkpoint = get_last_checkpoint(trainer.args.output_dir)
    if resume and checkpoint is None:
        logger.warning("resume_from_checkpoint: no checkpoint in %s; training from scratch.", trainer.args.output_dir)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {
        "seconds": round(time.perf_counter() - start, 1),
        "train_loss": float(result.training_loss),
        "first_logged_loss": losses[0] if losses else None,
        "last_logged_loss": losses[-1] if losses else None,
        "global_step": int(trainer.state.global_step),
        "resumed_from": checkpoint,
    }


_OPTIONAL_COLUMNS = ("gloss", "prompt", "language", "signer", "gloss_spans", "gloss_text_spans")


def load_pose_splits(dataset_dir: str, max_frames: int) -> Dict[str, Any]:
    """Load train (and validation) rows: `{"train": rows, "validation": rows, "representation", "fps", "skipped"}`.

    The rows of a split are a `PoseTable` over the corpus' memory-mapped Arrow table (`load_corpus(...,
    memory_map=True)`): a row is read when it is asked for, so a corpus far larger than memory trains in bounded
    memory. Each row holds `id`, `text`, `poses`, `num_frames` and, where the corpus has them, `gloss`, `prompt`,
    `language`, `signer`, `gloss_spans` and `gloss_text_spans`. Sequences longer than `max_frames` are left out (the
    train ones counted in `skipped`, with a warning), never cut; lengths come from the `num_frames` column, so
    leaving them out reads no pose.
    """
    dd = load_corpus(dataset_dir, memory_map=True)
    if "train" not in dd or len(dd["train"]) == 0:
        raise ValueError(f"Dataset {dataset_dir!s} has no non-empty `train` split to train on.")
    out: Dict[str, Any] = {"skipped": 0}
    for split in ("train", "validation"):
        if split not in dd or len(dd[split]) == 0:
            out[split] = []
            continue
        table = PoseTable(dd[split], split, columns=("id", "text") + _OPTIONAL_COLUMNS)
        lengths = np.asarray(table.lengths)
        kept = np.flatnonzero(lengths <= max_frames)
        if split == "train":
            out["skipped"] = int(len(lengths) - len(kept))
        out[split] = table.select(kept) if len(kept) < len(lengths) else table
        if split == "train":
            first = dd[split].select_columns(["representation", "fps"])[0]
            out["representation"], out["fps"] = str(first["representation"]), float(first["fps"])
    if out["skipped"]:
        logger.warning("%d train sequence(s) longer than data.max_frames=%d are left out.", out["skipped"], max_frames)
    if not out["train"]:
        raise ValueError(f"No train sequence has <= data.max_frames={max_frames} frames.")
    return out


def fit_or_load_normalizer(data: Mapping[str, Any], folder: Path) -> PoseNormalizer:
    """The `PoseNormalizer` of `data["train"]`: fitted and saved into `folder` by the first stage, loaded by the
    next."""
    with main_process_first():  # in a multi-process run the main process fits it, the others load it
        if (folder / "config.json").is_file():
            return PoseNormalizer.from_pretrained(str(folder))
        norm = PoseNormalizer.fit((r["poses"] for r in data["train"]), representation=data["representation"])
        norm.save_pretrained(str(folder))
        return norm

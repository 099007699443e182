"""Pieces every hf-sign `Trainer` shares: an in-memory split dataset and a Trainer base class.

* `PoseRows`: a split held in memory (list of dicts); `lengths` feeds the length-grouped sampler.
* `PoseTrainer`: length-grouped batches (less padding for variable-length poses) and pickle-free checkpoints
  (`Trainer` writes its `TrainingArguments` as `training_args.bin`, a pickle; we keep a JSON copy instead, so
  nothing an hf-sign checkpoint holds for weights or settings needs unpickling).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from transformers import Trainer
from transformers.trainer_pt_utils import LengthGroupedSampler


class PoseRows(torch.utils.data.Dataset):
    """A split in memory: dicts with at least `poses`; `length_key` names the field that gives each length
    (an array's length, or an int such as `num_frames`)."""

    def __init__(self, rows: List[Dict[str, Any]], length_key: str = "poses"):
        self.rows, self.length_key = rows, length_key

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return self.rows[i]

    @property
    def lengths(self) -> List[int]:
        values = [r[self.length_key] for r in self.rows]
        return [int(v) if isinstance(v, (int, float)) else len(v) for v in values]


class PoseTrainer(Trainer):
    """`Trainer` with length-grouped batches over `PoseRows` and pickle-free checkpoints."""

    def __init__(self, *args, group_by_length: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_by_length = group_by_length

    def _get_train_sampler(self, train_dataset=None):
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.group_by_length and isinstance(dataset, PoseRows):
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps, lengths=dataset.lengths)
        return super()._get_train_sampler(train_dataset)

    def _save(self, output_dir: Optional[str] = None, state_dict=None) -> None:
        super()._save(output_dir, state_dict=state_dict)
        output_dir = Path(output_dir if output_dir is not None else self.args.output_dir)
        pickled = output_dir / "training_args.bin"
        if pickled.exists():
            pickled.unlink()
            (output_dir / "training_args.json").write_text(self.args.to_json_string(), encoding="utf-8")

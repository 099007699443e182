"""Argument dataclasses every hf-sign training entry point shares.

* `StageTrainingArguments`: the optimisation of one training stage (one config section per stage, e.g.
  `vae_training`); `to_training_arguments` turns it into `transformers.TrainingArguments`. A system subclasses it
  once per stage to add that stage's loss weights and options (and to set the paper's epochs and batch size as
  the defaults).
* `DataArguments`: which training sequences a system reads (the `data` config section).
* `TrainingRunArguments`: the command line of `python -m hf_sign.training.<system>_trainer` (parsed by
  `HfArgumentParser`), the same flags as `hf-sign train`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from transformers import TrainingArguments

__all__ = ["StageTrainingArguments", "DataArguments", "TrainingRunArguments", "parse_training_run"]


@dataclass
class StageTrainingArguments:
    """Optimisation of one training stage (the keys of a `<stage>_training` config section).

    Args:
        num_train_epochs (`float`, *optional*, defaults to 10.0): epochs over the train split.
        per_device_train_batch_size (`int`, *optional*, defaults to 32): batch size.
        learning_rate (`float`, *optional*, defaults to 1e-3): peak learning rate.
        adam_beta1 (`float`, *optional*, defaults to 0.9): Adam's beta1.
        adam_beta2 (`float`, *optional*, defaults to 0.999): Adam's beta2.
        adam_epsilon (`float`, *optional*, defaults to 1e-8): Adam's epsilon.
        weight_decay (`float`, *optional*, defaults to 0.0): decoupled weight decay (0 is plain Adam).
        lr_scheduler_type (`str`, *optional*, defaults to `"constant"`): transformers scheduler name (`constant`,
            `cosine`, `linear`, ...).
        warmup_steps (`float`, *optional*, defaults to 0.0): warm-up steps; a value below 1 is a fraction of all steps.
        max_grad_norm (`float`, *optional*, defaults to 1.0): gradient clipping (0 disables it).
        logging_steps (`int`, *optional*, defaults to 50): log the loss and its terms every N steps.
        save_total_limit (`int`, *optional*, defaults to 1): checkpoints kept (one is written per epoch, for resuming).
        group_by_length (`bool`, *optional*, defaults to `True`): batch sequences of similar length (less padding).
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

    def to_training_arguments(
        self, output_dir: Union[str, Path], seed: int = 0, use_cpu: bool = False
    ) -> TrainingArguments:
        """These settings as `TrainingArguments`: a checkpoint per epoch into `output_dir`, no evaluation, no pickles
        of the dataset workers (single process), nothing reported to external trackers."""
        return TrainingArguments(
            output_dir=str(output_dir),
            num_train_epochs=self.num_train_epochs,
            per_device_train_batch_size=self.per_device_train_batch_size,
            learning_rate=self.learning_rate,
            adam_beta1=self.adam_beta1,
            adam_beta2=self.adam_beta2,
            adam_epsilon=self.adam_epsilon,
            weight_decay=self.weight_decay,
            lr_scheduler_type=self.lr_scheduler_type,
            warmup_steps=self.warmup_steps,
            max_grad_norm=self.max_grad_norm,
            logging_steps=self.logging_steps,
            save_strategy="epoch",
            save_total_limit=self.save_total_limit,
            eval_strategy="no",
            seed=seed,
            data_seed=seed,
            remove_unused_columns=False,  # the collators need every column
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            report_to="none",
            use_cpu=use_cpu,
            disable_tqdm=None,
        )


@dataclass
class DataArguments:
    """Which training sequences a system reads (the `data` config section).

    Args:
        max_frames (`int`, *optional*, defaults to 400): train sequences longer than this are left out (counted in
            the metrics, with a warning), never cut.
    """

    max_frames: int = 400

    def __post_init__(self):
        if self.max_frames < 1:
            raise ValueError(f"`data.max_frames` must be >= 1; got {self.max_frames}.")


@dataclass
class TrainingRunArguments:
    """Command line of `python -m hf_sign.training.<system>_trainer` (parsed by `HfArgumentParser`).

    Args:
        dataset_dir (`str`): hf-sign dataset folder (or Hub id) with a `train` split (and `validation`).
        output_dir (`str`): output folder; a complete pipeline folder once every stage has run.
        config (`str`, *optional*, defaults to `"tiny"`): config name in `hf_sign/configs/<system>/` or a YAML path.
        stage (`str`, *optional*): run only this stage (it reads what the earlier stages wrote into `output_dir`);
            default: every stage, in order.
        seed (`int`, *optional*): overrides the config's seed.
        set (`List[str]`, *optional*): dotted `key=value` config overrides, e.g. `vae.num_atomic_joints=5`.
        resume_from_checkpoint (`bool`, *optional*, defaults to `False`): continue each stage from its latest
            checkpoint in `output_dir/checkpoints/<stage>/`.
        num_threads (`int`, *optional*, defaults to 0): torch CPU threads during training (0 keeps the config's).
        use_cpu (`bool`, *optional*, defaults to `False`): train on CPU even when an accelerator is present.
    """

    dataset_dir: str = field(metadata={"help": "hf-sign dataset folder (or Hub id)"})
    output_dir: str = field(metadata={"help": "output folder (a pipeline folder at the end)"})
    config: str = field(default="tiny", metadata={"help": "config name (tiny, small, paper) or YAML path"})
    stage: Optional[str] = field(default=None, metadata={"help": "run only this stage (default: all, in order)"})
    seed: Optional[int] = None
    set: List[str] = field(default_factory=list, metadata={"help": "overrides key=value (dotted keys)", "nargs": "*"})
    resume_from_checkpoint: bool = False
    num_threads: int = 0
    use_cpu: bool = False


def parse_training_run(
    argv: Optional[List[str]] = None, default_config: str = "tiny"
) -> Tuple[TrainingRunArguments, Dict[str, Any]]:
    """The command line of a `python -m hf_sign.training.<system>_trainer` entry point: its `TrainingRunArguments`
    and the config overrides it implies (`--set k=v ...`, `--num_threads`, `--seed`); sets up logging."""
    import logging

    from transformers import HfArgumentParser

    from .config_utils import parse_overrides

    parser = HfArgumentParser(TrainingRunArguments)
    parser.set_defaults(config=default_config)
    (args,) = parser.parse_args_into_dataclasses(args=argv, look_for_args_file=False)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides: Dict[str, Any] = dict(parse_overrides(args.set))
    if args.num_threads:
        overrides["num_threads"] = args.num_threads
    if args.seed is not None:
        overrides["seed"] = args.seed
    return args, overrides

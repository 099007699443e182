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

This file holds the config and the entry points; the stages (arguments, Trainers) are in `evaluator_stages`, their
data (splits, collators, tempo augmentation) in `evaluator_data` and the final metrics in `evaluator_metrics`.

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

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from ..evaluation.evaluators import PoseRecognizerConfig, PoseRecognizerModel, SignTextContrastiveConfig
from . import config_utils
from .arguments import DataArguments, parse_training_run
from .config_utils import ConfigSchema, ConfigSection
from .distributed import is_main_process
from .evaluator_data import load_evaluator_data
from .evaluator_stages import EVALUATOR_STAGES, ContrastiveTrainingArguments, RecognizerTrainingArguments
from .stages import StageContext, run_stages
from .trainer_utils import PoseRows

__all__ = [
    "SYSTEM",
    "STAGES",
    "CONFIG_SCHEMA",
    "EvaluatorDataArguments",
    "full_config",
    "resolve_config",
    "run_evaluator_training",
    "train_evaluators",
    "train_evaluator_system",
    "main",
]

logger = logging.getLogger(__name__)

SYSTEM = "evaluator"
STAGES = tuple(stage.name for stage in EVALUATOR_STAGES)  # ("recognizer", "contrastive")
TARGETS = ("gloss", "text", "auto")


# ================================================================================================ 1. config
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


# ================================================================================================ 2. running
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
    if is_main_process():
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
    args, overrides = parse_training_run(argv, default_config="default")
    cfg = full_config(args.config, overrides)
    metrics = run_evaluator_training(
        cfg, args.dataset_dir, args.output_dir, args.stage, args.resume_from_checkpoint, args.use_cpu, args.config
    )
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

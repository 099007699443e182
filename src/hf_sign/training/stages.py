"""The stage runner: trains a system's stages in order (or one of them) into one output folder.

A system describes each training stage as a `Stage`: `build_trainer` makes the stage's `Trainer` (models, data,
loss) from a `StageContext`, `finish` saves what the stage trained into the output folder and returns the stage's
own metrics. `run_stages` does the rest, the same for every system:

```
OUTPUT_DIR/<prefix>_config.json          the resolved config
OUTPUT_DIR/<prefix>_metrics.json         per stage: seconds, losses, global_step, resumed_from (+ the stage's own)
OUTPUT_DIR/checkpoints/<stage>/checkpoint-N   Trainer checkpoints (safetensors weights; resume)
OUTPUT_DIR/model_index.json, ...         the pipeline folder, written by the last stage
```

1. load the data and let the system `prepare` the run (fill config fields that follow the data, check the config
   against the data before any stage spends its time, report data metrics);
2. write the resolved config;
3. per stage: seed, build the Trainer, train (from the latest checkpoint when resuming), finish, and update the
   metrics file (earlier stages' metrics in it are kept, so stages can run one at a time);
4. after the last stage, check that the output folder is a pipeline folder (`model_index.json`), for generators.

Launched on several processes (`torchrun`, `accelerate launch`), every process loads the data and trains each stage
(the Trainer shards the batches and all-reduces the gradients); the main process alone writes the config, runs each
stage's `finish` (saving, validation) and writes the metrics, while the others wait for it before the next stage.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import torch
from transformers import Trainer, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .arguments import StageTrainingArguments
from .distributed import init_distributed, is_main_process, wait_for_everyone
from .trainer_utils import load_pose_splits, train_with_resume

__all__ = ["Stage", "StageContext", "check_output_dir", "run_stages", "run_pose_stages"]


@dataclass
class StageContext:
    """What a stage sees: the resolved config, the loaded data and the output folder.

    Args:
        config (`dict`): the resolved config (the system's sections, `seed`, `num_threads`).
        data (`Any`): what the system's `load_data` returned.
        output_dir (`Path`): the run's output folder.
        use_cpu (`bool`, *optional*, defaults to `False`): train on CPU even when an accelerator is present.
        base_pipeline (`Any`, *optional*): a trained pipeline whose components the stage continues from instead of
            building new ones (`hf-sign finetune`: the stage's data and loss, the base model's networks).
    """

    config: Dict[str, Any]
    data: Any
    output_dir: Path
    use_cpu: bool = False
    base_pipeline: Any = None

    def component(self, name: str, build: Callable[[], Any]) -> Any:
        """The base pipeline's component `name` when fine-tuning, else `build()`."""
        return getattr(self.base_pipeline, name) if self.base_pipeline is not None else build()

    def checkpoint_dir(self, stage: str) -> Path:
        return self.output_dir / "checkpoints" / stage

    def training_arguments(self, stage: str, args: StageTrainingArguments) -> TrainingArguments:
        """`args` as `TrainingArguments` checkpointing into `output_dir/checkpoints/<stage>/`, with the run's seed."""
        return args.to_training_arguments(self.checkpoint_dir(stage), seed=self.config["seed"], use_cpu=self.use_cpu)


@dataclass(frozen=True)
class Stage:
    """One training stage of a system.

    Args:
        name (`str`): the stage's name (`--stage NAME`, the checkpoint folder, the metrics' prefix).
        build_trainer (`Callable[[StageContext], Trainer]`): the stage's Trainer, ready to train.
        finish (`Callable[[StageContext, Trainer], dict]`): saves the trained models into the output folder;
            returns extra metrics (already prefixed, e.g. `vae_val_mpjpe_mm`).
    """

    name: str
    build_trainer: Callable[[StageContext], Trainer]
    finish: Callable[[StageContext, Trainer], Dict[str, Any]]


def check_output_dir(
    output_dir: Union[str, Path], stages: Sequence[str], resume: bool = False, overwrite: bool = False
) -> None:
    """Before training `stages` into `output_dir` (as transformers' example scripts do): a folder that already holds
    checkpoints of one of these stages is refused unless the run resumes from them (`--resume`) or starts over
    (`--overwrite-output-dir`, which removes them: left in place, a stale checkpoint with a higher step would be the
    one a later `--resume` picks). Raises a `ValueError` naming both flags."""
    if resume and overwrite:
        raise ValueError("Give `--resume` (continue from the checkpoints) or `--overwrite-output-dir`, not both.")
    root = Path(output_dir) / "checkpoints"
    found = [root / s for s in stages if (root / s).is_dir() and get_last_checkpoint(str(root / s)) is not None]
    if not found or resume:
        return
    if not overwrite:
        names = ", ".join(p.name for p in found)
        raise ValueError(
            f"Output directory ({output_dir}) already holds checkpoints of stage(s) {names}. Pass `--resume` to "
            "continue from the latest one, or `--overwrite-output-dir` to train from scratch (their checkpoints are "
            "removed); or choose another `--output-dir`."
        )
    if is_main_process():  # the other processes of a multi-process run leave it to the main one
        for path in found:
            shutil.rmtree(path)


def run_stages(
    stages: Sequence[Stage],
    config: Dict[str, Any],
    output_dir: Path,
    load_data: Callable[[], Any],
    stage: Optional[str] = None,
    resume_from_checkpoint: bool = False,
    use_cpu: bool = False,
    prepare: Optional[Callable[[StageContext, Sequence[str]], Mapping[str, Any]]] = None,
    prefix: str = "training",
    pipeline_folder: bool = True,
) -> Path:
    """Run `stages` in order (or only `stage`) into `output_dir`; returns `output_dir`.

    Args:
        stages (`Sequence[Stage]`): the system's stages, in training order.
        config (`dict`): the resolved config; `seed` seeds every stage, `num_threads` (> 0) sets torch's CPU threads
            for the run, and `train_stages` (a list of stage names; empty or absent: all) names the stages a run
            without `stage` trains (e.g. a config that leaves out a long optional stage).
        output_dir (`Path`): the output folder (created).
        load_data (`Callable[[], Any]`): loads the training data (becomes `StageContext.data`).
        stage (`str`, *optional*): run only this stage; default: the config's `train_stages`, or every stage.
        resume_from_checkpoint (`bool`, *optional*, defaults to `False`): start each stage from its latest checkpoint.
        use_cpu (`bool`, *optional*, defaults to `False`): train on CPU even when an accelerator is present.
        prepare (`Callable`, *optional*): `prepare(context, stage_names)` runs after the data is loaded and before
            the config is written; it may fill config fields that follow the data, raises on a config the data cannot
            train, and returns data metrics (e.g. `num_train`).
        prefix (`str`, *optional*, defaults to `"training"`): names `<prefix>_config.json` and `<prefix>_metrics.json`.
        pipeline_folder (`bool`, *optional*, defaults to `True`): check that the folder is a pipeline folder
            (`model_index.json`) once every stage the config trains has run in it; `False` for systems that train
            something else (the evaluators).
    """
    names = [s.name for s in stages]
    if stage is not None and stage not in names:
        raise ValueError(f"`stage` must be one of {tuple(names)} or None (all, in order); got {stage!r}.")
    chosen = list(config.get("train_stages") or [])
    if any(name not in names for name in chosen):
        raise ValueError(f"`train_stages` must name stages of {tuple(names)}; got {chosen!r}.")
    selected = [s for s in stages if (s.name == stage if stage is not None else not chosen or s.name in chosen)]
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    use_cpu = init_distributed(use_cpu)  # a multi-process launch: the process group, before anything is written
    main = is_main_process()
    threads = torch.get_num_threads()
    if config.get("num_threads", 0) > 0:
        torch.set_num_threads(config["num_threads"])
    try:
        # 1. data, and the config checked (and completed) against it
        ctx = StageContext(config=config, data=load_data(), output_dir=out, use_cpu=use_cpu)
        data_metrics = dict(prepare(ctx, [s.name for s in selected])) if prepare is not None else {}
        # 2. the resolved config
        if main:
            (out / f"{prefix}_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        metrics_path = out / f"{prefix}_metrics.json"
        metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
        metrics.update(data_metrics)
        # 3. the stages (the main process saves what a stage trained; the others wait, as a next stage reads it)
        for s in selected:
            set_seed(config["seed"])
            trainer = s.build_trainer(ctx)
            metrics.update({f"{s.name}_{k}": v for k, v in train_with_resume(trainer, resume_from_checkpoint).items()})
            if main:
                metrics.update(s.finish(ctx, trainer))
                metrics_path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
            wait_for_everyone()
    finally:
        torch.set_num_threads(threads)
    if not main:  # the metrics the main process wrote (with its stages' own)
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    # 4. once every stage the config trains has run in this folder, it is a pipeline folder (a later stage trained
    # alone into a new folder, e.g. Stable Signer's renderer, leaves only its own modules)
    trained = [s.name for s in stages if not chosen or s.name in chosen]
    done = all(f"{name}_global_step" in metrics for name in trained)
    if pipeline_folder and done and not (out / "model_index.json").is_file():
        raise RuntimeError(f"Stage {trained[-1]!r} finished without writing a pipeline folder into {out}.")
    return out


def run_pose_stages(
    stages: Sequence[Stage],
    config: Dict[str, Any],
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    prefix: str,
    prepare: Optional[Callable[[StageContext, Sequence[str]], Mapping[str, Any]]] = None,
    stage: Optional[str] = None,
    resume_from_checkpoint: bool = False,
    use_cpu: bool = False,
    pipeline_folder: bool = True,
) -> Path:
    """`run_stages` on the train and validation rows of an hf-sign pose dataset (`load_pose_splits`, sequences up
    to the config's `data.max_frames`): what a system's training entry point runs."""
    return run_stages(
        stages,
        config,
        Path(output_dir),
        load_data=lambda: load_pose_splits(str(dataset_dir), config["data"]["max_frames"]),
        stage=stage,
        resume_from_checkpoint=resume_from_checkpoint,
        use_cpu=use_cpu,
        prepare=prepare,
        prefix=prefix,
        pipeline_folder=pipeline_folder,
    )

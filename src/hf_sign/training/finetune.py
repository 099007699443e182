"""LoRA fine-tuning of a trained system's main network (`hf-sign finetune`), through the system registry.

Every generator in the registry names, in its `FinetuneSpec`, the pipeline component to adapt and the training stage
that trains it (Sign-SALD: the denoiser, stage `ldm`; Sign-MExD: the transformer, stage `diffusion`; MaDiS: the LM,
stage `sft`; Stable Signer: the linker, stage `linker`). `finetune` is the same for all of them:

1. load the base pipeline (a folder or a cached repo id of that system) and the config it was trained with (its
   `<prefix>_config.json`, else the system's default config), with the command's overrides;
2. load the new corpus and let the system check it against the config;
3. add a LoRA adapter to the component (`hf_sign.pipelines.lora.add_lora_adapter`: diffusers' `PeftAdapterMixin` or
   PEFT's `get_peft_model`); everything else, the component's own weights included, is frozen;
4. build the stage's Trainer from a `StageContext` whose `base_pipeline` hands it the trained components (the stage's
   data, collator and loss; no checkpoints), and train; the stage's loss on the new train split with fixed draws
   (seed 0, eval mode) is measured before and after;
5. save the adapter only (`adapter_model.safetensors`, `adapter_config.json`, `hf_sign_adapter.json`) and the metrics
   (`finetune_metrics.json`: losses, steps, the adapter's size against the base component's).

```
OUTPUT_DIR/adapter_model.safetensors   LoRA matrices only
OUTPUT_DIR/adapter_config.json         PEFT LoraConfig
OUTPUT_DIR/hf_sign_adapter.json        system, pipeline class, component, base model, sizes
OUTPUT_DIR/finetune_metrics.json       losses before/after, steps, seconds, sizes
```
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from transformers import set_seed

from ..pipelines.hub_cache import cached_repo_path
from ..pipelines.lora import ADAPTER_WEIGHTS_NAME, add_lora_adapter, save_lora_adapter
from ..systems import get_system, system_for_pipeline
from .distributed import init_distributed, is_main_process, wait_for_everyone
from .stages import StageContext
from .trainer_utils import load_pose_splits, train_with_resume

__all__ = ["LoraArguments", "finetune", "finetune_pipeline", "fixed_draw_loss"]

logger = logging.getLogger(__name__)


@dataclass
class LoraArguments:
    """The LoRA adapter (`peft.LoraConfig`).

    Args:
        r (`int`, *optional*, defaults to 8): rank of the update `B @ A` added to each target layer.
        lora_alpha (`int`, *optional*): scale numerator, the update is `lora_alpha / r * B @ A`; defaults to `r`
            (scale 1).
        lora_dropout (`float`, *optional*, defaults to 0.0): dropout on the adapter's input, in [0, 1).
        target_modules (`List[str]`, *optional*): names of the linear layers that get an adapter; defaults to the
            system's (`FinetuneSpec.target_modules`: the attention projections of the component).
    """

    r: int = 8
    lora_alpha: Optional[int] = None
    lora_dropout: float = 0.0
    target_modules: Optional[List[str]] = None

    def __post_init__(self):
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r <= 0:
            raise ValueError(f"`lora_r` must be an integer > 0 (the adapter's rank); got {self.r!r}.")
        if self.lora_alpha is not None and self.lora_alpha <= 0:
            raise ValueError(f"`lora_alpha` must be > 0; got {self.lora_alpha!r}.")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"`lora_dropout` must be in [0, 1); got {self.lora_dropout!r}.")
        if self.target_modules is not None and (
            not self.target_modules or not all(isinstance(t, str) and t.strip() for t in self.target_modules)
        ):
            raise ValueError(f"`target_modules` must be a non-empty list of layer names; got {self.target_modules!r}.")

    def lora_config(self, default_targets: Sequence[str]):
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.lora_alpha if self.lora_alpha is not None else self.r,
            lora_dropout=self.lora_dropout,
            target_modules=list(self.target_modules or default_targets),
        )


def _model_folder(model: Union[str, os.PathLike]) -> Path:
    folder = Path(model)
    if folder.is_dir():
        return folder
    cached = cached_repo_path(str(model)) if str(model).count("/") == 1 and not os.path.isabs(model) else None
    if cached is None:
        raise ValueError(f"`model` {str(model)!r} is neither a pipeline folder nor a repo id in the local hub cache.")
    return Path(cached)


@torch.no_grad()
def fixed_draw_loss(trainer, seed: int = 0) -> float:
    """The stage's loss (`trainer.compute_loss`) over its whole train set in eval mode, with the random draws (noise,
    timesteps, masks) seeded by `seed`: the same number for the same weights, so before and after compare."""
    model, was_training = trainer.model, trainer.model.training
    model.eval()
    dataset, size = trainer.train_dataset, trainer.args.per_device_train_batch_size
    device = trainer.args.device
    torch.manual_seed(seed)
    total, count = 0.0, 0
    for start in range(0, len(dataset), size):
        rows = [dataset[i] for i in range(start, min(start + size, len(dataset)))]
        batch = trainer.data_collator(rows)
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        total += float(trainer.compute_loss(model.to(device), batch)) * len(rows)
        count += len(rows)
    trainer._loss_terms = {}  # these terms belong to no training step's log
    model.train(was_training)
    return total / max(count, 1)


def _count(params) -> int:
    return int(sum(p.numel() for p in params))


def _fingerprints(module: torch.nn.Module) -> Dict[str, str]:
    """A bit-exact digest of every non-adapter tensor of `module` (parameters and buffers)."""
    return {
        name: hashlib.sha1(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()
        for name, t in module.state_dict().items()
        if "lora_" not in name
    }


def finetune(*args, **kwargs) -> Dict[str, Any]:
    """`finetune_pipeline` without the pipeline: fine-tune, save the adapter and return the metrics."""
    return finetune_pipeline(*args, **kwargs)[1]


def finetune_pipeline(
    system: str,
    model: Union[str, os.PathLike],
    dataset_dir: Union[str, os.PathLike],
    output_dir: Union[str, os.PathLike],
    lora: Optional[LoraArguments] = None,
    learning_rate: Optional[float] = None,
    num_train_epochs: Optional[float] = None,
    overrides: Optional[Dict[str, Any]] = None,
    seed: Optional[int] = None,
) -> Tuple[Any, Dict[str, Any]]:
    """Fine-tune the main network of the trained pipeline `model` of `system` on `dataset_dir` with a LoRA adapter;
    returns the pipeline (its component carrying the trained adapter) and the metrics.

    Args:
        system (`str`): a registered system with a `FinetuneSpec` (`sign-sald`, `sign-mexd`, `madis`,
            `stable-signer`).
        model (`str` or `os.PathLike`): the base pipeline folder (or a cached repo id); it must be `system`'s.
        dataset_dir (`str` or `os.PathLike`): the hf-sign corpus to adapt to (its `train` split).
        output_dir (`str` or `os.PathLike`): where the adapter goes (only the adapter and the metrics).
        lora (`LoraArguments`, *optional*): the adapter (rank 8 on the system's default targets by default).
        learning_rate (`float`, *optional*): the stage's learning rate; default: the base run's config.
        num_train_epochs (`float`, *optional*): the stage's epochs; default: the base run's config.
        overrides (`dict`, *optional*): dotted config overrides (`{"ldm_training.per_device_train_batch_size": 8}`).
        seed (`int`, *optional*): the run's seed; default: the base run's config.

    Returns:
        `Tuple[pipeline, dict]`: the pipeline, and the metrics written to `finetune_metrics.json` (`loss_before`,
        `loss_after`, `train_loss`, `global_step`, `adapter_parameters`, `base_component_parameters`,
        `adapter_bytes`, `base_component_bytes`, `adapter_fraction`, `base_weights_unchanged`, ...).
    """
    # 1. the system, its base pipeline and the config it was trained with
    spec_system = get_system(system)
    spec = spec_system.finetune
    if spec is None:
        raise ValueError(f"System {system!r} has no LoRA fine-tuning (its registry entry has no `finetune`).")
    lora = lora if lora is not None else LoraArguments()
    use_cpu = init_distributed()  # under a multi-process launch: DDP as in `hf-sign train`, the main process writes
    folder = _model_folder(model)
    found = system_for_pipeline(folder)
    if found is None:
        raise ValueError(
            f"`model` {str(model)!r} is not a pipeline folder of a registered system (no model_index.json naming "
            f"one); fine-tune a folder written by `hf-sign train {system}`."
        )
    if found.name != spec_system.name:
        raise ValueError(
            f"`model` {str(model)!r} holds a {found.name} pipeline, not {system}: run `hf-sign finetune {found.name} "
            "...` or pass a model of this system."
        )
    pipe = spec_system.pipeline_class().from_pretrained(str(folder))
    config_file = folder / spec_system.metrics_file.replace("_metrics.json", "_config.json")
    if config_file.is_file():
        base_config: Any = json.loads(config_file.read_text(encoding="utf-8"))
    else:
        logger.warning(
            "%s has no %s; the stage's settings come from the %r config.",
            folder,
            config_file.name,
            spec_system.default_config,
        )
        base_config = spec_system.default_config
    overrides = dict(overrides or {})
    if learning_rate is not None:
        overrides[f"{spec.section}.learning_rate"] = learning_rate
    if num_train_epochs is not None:
        overrides[f"{spec.section}.num_train_epochs"] = num_train_epochs
    if seed is not None:
        overrides["seed"] = seed
    cfg = spec.resolve("config")(base_config, overrides)
    stage = spec.resolve("stage")
    component = getattr(pipe, spec.component)
    base_parameters = _count(component.parameters())

    threads = torch.get_num_threads()
    if cfg.get("num_threads", 0) > 0:
        torch.set_num_threads(cfg["num_threads"])
    try:
        with tempfile.TemporaryDirectory(prefix="hf-sign-finetune-") as work:
            # 2. the new corpus, checked against the config
            data = load_pose_splits(str(dataset_dir), cfg["data"]["max_frames"])
            ctx = StageContext(config=cfg, data=data, output_dir=Path(work), use_cpu=use_cpu, base_pipeline=pipe)
            prepare = spec.resolve("prepare")
            data_metrics = dict(prepare(ctx, [stage.name])) if prepare is not None else {}
            # 3. the adapter; 4. the stage's Trainer on the base components, only the adapter trainable
            adapted = add_lora_adapter(component, lora.lora_config(spec.target_modules))
            set_seed(cfg["seed"])
            trainer = stage.build_trainer(ctx)
            for name, param in trainer.model.named_parameters():
                param.requires_grad_("lora_" in name)
            trainer.args.save_strategy = "no"  # the adapter is saved below, nothing else (no checkpoints)
            adapter_parameters = _count(p for p in trainer.model.parameters() if p.requires_grad)
            frozen = _fingerprints(trainer.model)
            loss_before = fixed_draw_loss(trainer)
            start = time.perf_counter()
            result = train_with_resume(trainer, False)
            seconds = round(time.perf_counter() - start, 1)
            loss_after = fixed_draw_loss(trainer)
            unchanged = _fingerprints(trainer.model) == frozen
    finally:
        torch.set_num_threads(threads)
    if not unchanged:  # would mean a frozen weight or buffer moved: the adapter alone would not reproduce the model
        raise RuntimeError(f"Fine-tuning {system} changed weights outside the adapter of {spec.component!r}.")

    # 5. the adapter only, and its size against the base component's
    out = Path(output_dir)
    # a local base as an absolute path, so that the adapter folder loads its base from anywhere (a repo id as given)
    base_model = str(Path(model).resolve()) if Path(model).is_dir() else str(model)
    base_bytes = sum(f.stat().st_size for f in (folder / spec.component).glob("*.safetensors"))
    info = {
        "system": spec_system.name,
        "pipeline_class": type(pipe).__name__,
        "component": spec.component,
        "component_class": type(component).__name__,
        "base_model": base_model,
        "stage": stage.name,
        "dataset": str(dataset_dir),
        "lora": {**asdict(lora), "target_modules": sorted(lora.lora_config(spec.target_modules).target_modules)},
    }
    if is_main_process():
        save_lora_adapter(adapted, out, info)
    wait_for_everyone()  # the other processes read the adapter's size from what the main one wrote
    adapter_bytes = (out / ADAPTER_WEIGHTS_NAME).stat().st_size
    metrics = {
        **data_metrics,
        "system": spec_system.name,
        "base_model": base_model,
        "loss_before": round(loss_before, 6),
        "loss_after": round(loss_after, 6),
        "train_loss": result["train_loss"],
        "global_step": result["global_step"],
        "seconds": seconds,
        "learning_rate": cfg[spec.section]["learning_rate"],
        "num_train_epochs": cfg[spec.section]["num_train_epochs"],
        "adapter_parameters": adapter_parameters,
        "base_component_parameters": base_parameters,
        "adapter_fraction": round(adapter_parameters / max(base_parameters, 1), 6),
        "adapter_bytes": adapter_bytes,
        "base_component_bytes": base_bytes,
        "base_weights_unchanged": unchanged,
    }
    if is_main_process():
        (out / "finetune_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return pipe, metrics

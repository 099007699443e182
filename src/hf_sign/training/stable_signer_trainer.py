"""Training Stable Signer (Fang et al.): its config and its entry points. The stages are in `stable_signer_stages`.

```
OUTPUT_DIR/model_index.json, linker/, tokenizer/, gate/, pose_bank/, [unet/, controlnet/, reference_encoder/,
           renderer_scheduler/], pipeline_stable_signer.py   a complete `StableSignerPipeline` folder
OUTPUT_DIR/stable_signer_config.json      the resolved config (defaults <- YAML <- overrides)
OUTPUT_DIR/stable_signer_metrics.json     per stage: seconds, losses, steps; linker gloss BLEU, gate accuracy
OUTPUT_DIR/checkpoints/{linker,moe,renderer}/checkpoint-N   Trainer checkpoints (safetensors weights; resume)
```

Config (`CONFIG_SCHEMA`): the defaults are the paper's (a T5-base linker), read off `LinkerSettings`,
`PoseExpertGate.__init__` and the stage arguments. A YAML file in `hf_sign/configs/stable-signer/` lists only what
differs from them; dotted overrides (`--set linker_training.sagm_weight=0`) are type-checked.

Entry points: `train_stable_signer(dataset_dir, output_dir, config="tiny", stage=None, seed=None, overrides=None,
resume_from_checkpoint=False)` (what `hf-sign train stable-signer` calls), `stable_signer_param_counts(config,
overrides)` (`hf-sign models params`) and `python -m hf_sign.training.stable_signer_trainer --dataset_dir D
--output_dir O [--config small] [--stage linker] [--set key=value ...]`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from ..models.stable_signer.expert_gate import PoseExpertGate
from ..models.stable_signer.linker import SignLinkerConfig, SignLinkerForConditionalGeneration
from .arguments import DataArguments, parse_training_run
from .config_utils import ConfigSchema, ConfigSection
from .stable_signer_renderer import (
    RENDERER_CONFIG_SECTIONS,
    RendererSettings,
    RendererTrainingArguments,
    build_renderer,
)
from .stable_signer_stages import (
    STABLE_SIGNER_STAGES,
    LinkerSettings,
    LinkerTrainingArguments,
    MoETrainingArguments,
    save_stable_signer_pipeline,
)
from .stages import StageContext, run_pose_stages

__all__ = [
    "SYSTEM",
    "STAGES",
    "CONFIG_SCHEMA",
    "default_config",
    "full_config",
    "train_stable_signer",
    "run_stable_signer_training",
    "stable_signer_param_counts",
    "save_stable_signer_pipeline",
    "main",
]

logger = logging.getLogger(__name__)

SYSTEM = "stable-signer"
STAGES = tuple(stage.name for stage in STABLE_SIGNER_STAGES)

CONFIG_SCHEMA = ConfigSchema(
    SYSTEM,
    top_level={"seed": 0, "num_threads": 0, "train_stages": []},
    sections={
        "data": ConfigSection(DataArguments),
        "linker": ConfigSection(LinkerSettings),
        "linker_training": ConfigSection(LinkerTrainingArguments),
        "gate": ConfigSection(PoseExpertGate, exclude=("query_dim",)),
        "moe_training": ConfigSection(MoETrainingArguments),
        **RENDERER_CONFIG_SECTIONS,
    },
)


def default_config() -> Dict[str, Any]:
    """Every config key with its default (the paper's linker and objective)."""
    return CONFIG_SCHEMA.defaults()


def full_config(config: Union[str, Path, Dict[str, Any], None] = "tiny", overrides: Optional[Dict[str, Any]] = None):
    """Defaults <- YAML config (name, path or dict) <- dotted overrides; unknown keys and wrong types raise."""
    cfg = CONFIG_SCHEMA.resolve(config, overrides)
    DataArguments(**cfg["data"])
    LinkerSettings(**cfg["linker"])
    LinkerTrainingArguments(**cfg["linker_training"])
    MoETrainingArguments(**cfg["moe_training"])
    PoseExpertGate(query_dim=8, **cfg["gate"])  # validates the gate settings
    RendererSettings(**cfg["renderer"])
    RendererTrainingArguments(**cfg["renderer_training"])
    return cfg


def _prepare(ctx: StageContext, stages: Sequence[str]) -> Dict[str, Any]:
    """Check the data against the config before any stage spends its time."""
    rows = ctx.data["train"]
    if "linker" in stages:
        if not any(r.get("gloss") for r in rows):
            raise ValueError("Stable Signer's linker learns text -> gloss: the train split has no `gloss` column.")
        missing = [
            f for f in ctx.config["linker_training"]["inputs"] if not any(isinstance(r.get(f), str) for r in rows)
        ]
        if missing:
            raise ValueError(
                f"`linker_training.inputs` lists {missing} but the train split has no such column; pass "
                f"--set linker_training.inputs={[f for f in ('text', 'prompt') if f not in missing]}."
            )
    if "moe" in stages and not any(r.get("gloss_spans") for r in rows):
        raise ValueError(
            "Stage 'moe' cuts the pose bank's clips with `gloss_spans`; the train split has none. Convert a corpus "
            "with gloss alignments (SynthSign has them)."
        )
    return {"num_train": len(rows), "num_train_skipped_long": ctx.data["skipped"]}


# ------------------------------------------------------------------------------------------------- running
def run_stable_signer_training(
    cfg: Dict[str, Any],
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    stage: Optional[str] = None,
    resume_from_checkpoint: bool = False,
    use_cpu: bool = False,
) -> Path:
    """Run `stage` (or every stage) with the resolved config `cfg` (`full_config`); returns the output folder."""
    return run_pose_stages(
        STABLE_SIGNER_STAGES, cfg, dataset_dir, output_dir, "stable_signer", _prepare, stage, resume_from_checkpoint,
        use_cpu,
    )


def train_stable_signer(
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    config: Union[str, Path, Dict[str, Any]] = "tiny",
    stage: Optional[str] = None,
    seed: Optional[int] = None,
    overrides: Optional[Dict[str, Any]] = None,
    resume_from_checkpoint: bool = False,
) -> Path:
    """Train Stable Signer on `dataset_dir`; the output folder ends up a complete `StableSignerPipeline` folder.

    Args:
        dataset_dir (`str` or `Path`): hf-sign dataset folder (or Hub id) with a `train` split holding `gloss` (and
            `gloss_spans` for the pose bank; `prompt` when `linker_training.inputs` lists it).
        output_dir (`str` or `Path`): output folder (`model_index.json` at its root after the `moe` stage).
        config (`str`, `Path` or `dict`, *optional*, defaults to `"tiny"`): `tiny`, `small`, `paper`, a YAML path,
            or a dict of config sections.
        stage (`str`, *optional*): one of `STAGES` (a later stage reads what the earlier ones wrote); default: the
            config's `train_stages` (all when empty).
        seed (`int`, *optional*): the run's seed; `None` keeps the config's `seed`.
        overrides (`dict`, *optional*): dotted keys, e.g. `{"linker_training.sagm_weight": 0}`; unknown keys raise.
        resume_from_checkpoint (`bool`, *optional*, defaults to `False`): continue each stage from its latest
            checkpoint under `output_dir/checkpoints/<stage>/`.
    """
    overrides = dict(overrides or {})
    if seed is not None:
        overrides["seed"] = seed
    cfg = full_config(config, overrides)
    return run_stable_signer_training(cfg, dataset_dir, output_dir, stage, resume_from_checkpoint)


def stable_signer_param_counts(
    config: Union[str, Path, Dict[str, Any]] = "paper", overrides: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """Instantiate the config's models (no data needed: a 1000-token vocabulary) and count their parameters: the
    linker, the gate and the renderer's UNet, ControlNet and reference encoder."""
    cfg = full_config(config, overrides)
    settings = LinkerSettings(**cfg["linker"])
    linker = SignLinkerForConditionalGeneration(SignLinkerConfig(vocab_size=1000, **settings.t5_kwargs()))
    gate = PoseExpertGate(query_dim=2 * settings.d_model, **cfg["gate"])
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    renderer = build_renderer(cfg)
    out = {"linker": count(linker), "gate": count(gate)}
    out.update({f"renderer_{k}": count(renderer[k]) for k in ("unet", "controlnet", "reference_encoder")})
    out["trainable"] = sum(out.values())
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m hf_sign.training.stable_signer_trainer --dataset_dir D --output_dir O [--config small]`."""
    args, overrides = parse_training_run(argv)
    cfg = full_config(args.config, overrides)
    out = run_stable_signer_training(
        cfg, args.dataset_dir, args.output_dir, args.stage, args.resume_from_checkpoint, args.use_cpu
    )
    print(json.dumps(json.loads((out / "stable_signer_metrics.json").read_text()), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training MaDiS (masked diffusion sign generation): its config and its entry points. The stages are in
`madis_stages`; the first, `tokenizer`, is the only one so far.

```
OUTPUT_DIR/part_vqvae/                    the part-wise VQ-VAE sign tokenizer (safetensors)
OUTPUT_DIR/normalizer/                    the train split's PoseNormalizer (the VQ-VAE works on standardised poses)
OUTPUT_DIR/text_tokenizer/                the byte-level BPE text tokenizer (PreTrainedTokenizerFast)
OUTPUT_DIR/madis_config.json              the resolved config (defaults <- YAML <- overrides)
OUTPUT_DIR/madis_metrics.json             seconds, losses, steps, validation MPJPE, codebook usage
OUTPUT_DIR/checkpoints/tokenizer/checkpoint-N   Trainer checkpoints (safetensors weights; resume)
```

Config (`CONFIG_SCHEMA`): the defaults are read off `PartVQVAE.__init__` (its `skeleton` follows the dataset),
`PartVQVAETrainingArguments` and `TextTokenizerArguments`. A YAML file in `hf_sign/configs/madis/` lists only what
differs: `tiny` (tests, seconds), `small` (CPU) and `paper` (SOKE's tokenizer sizes).

Entry points: `train_madis(dataset_dir, output_dir, config="tiny", stage=None, seed=None, overrides=None,
resume_from_checkpoint=False)` (what `hf-sign train madis` calls), `madis_param_counts(config)` (`hf-sign models
params madis`) and `python -m hf_sign.training.madis_trainer --dataset_dir D --output_dir O [--config small]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

from ..models.madis import PartVQVAE
from ..models.madis.part_vqvae import PART_NAMES
from .arguments import DataArguments, parse_training_run
from .config_utils import CONFIGS_DIR, ConfigSchema, ConfigSection
from .madis_stages import MADIS_STAGES, PartVQVAETrainingArguments, TextTokenizerArguments
from .stages import run_pose_stages

__all__ = ["SYSTEM", "STAGES", "CONFIG_SCHEMA", "full_config", "train_madis", "madis_param_counts", "main"]

SYSTEM = "madis"
STAGES = tuple(stage.name for stage in MADIS_STAGES)  # ("tokenizer",)

CONFIG_SCHEMA = ConfigSchema(
    SYSTEM,
    top_level={"seed": 0, "num_threads": 0},
    sections={
        "data": ConfigSection(DataArguments),
        # the skeleton (and with it the parts) follows the dataset's representation
        "part_vqvae": ConfigSection(PartVQVAE, exclude=("skeleton", "part_dims")),
        "tokenizer_training": ConfigSection(PartVQVAETrainingArguments),
        "text_tokenizer": ConfigSection(TextTokenizerArguments),
    },
)


def full_config(
    config: Union[str, Path, Mapping[str, Any], None] = "tiny", overrides: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """Defaults <- YAML config (name, path or dict) <- dotted overrides; unknown keys and wrong types raise."""
    cfg = CONFIG_SCHEMA.resolve(config, overrides)
    DataArguments(**cfg["data"])
    TextTokenizerArguments(**cfg["text_tokenizer"])
    args = PartVQVAETrainingArguments(**cfg["tokenizer_training"])
    rate = cfg["part_vqvae"]["downsample_rate"]
    if args.window_frames % rate:
        raise ValueError(
            f"`tokenizer_training.window_frames` ({args.window_frames}) must be a multiple of "
            f"`part_vqvae.downsample_rate` ({rate})."
        )
    return cfg


def train_madis(
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    config: Union[str, Path, Dict[str, Any]] = "tiny",
    stage: Optional[str] = None,
    seed: Optional[int] = None,
    overrides: Optional[Dict[str, Any]] = None,
    resume_from_checkpoint: bool = False,
    use_cpu: bool = False,
) -> Path:
    """Train MaDiS on `dataset_dir` (so far its `tokenizer` stage: `part_vqvae/`, `normalizer/`, `text_tokenizer/`).

    Args:
        dataset_dir (`str` or `Path`): hf-sign dataset folder (or Hub id) with a `train` split (and `validation`).
        output_dir (`str` or `Path`): output folder.
        config (`str`, `Path` or `dict`, *optional*, defaults to `"tiny"`): `tiny`, `small`, `paper`, a YAML path, or
            a dict of config sections.
        stage (`str`, *optional*): `"tokenizer"`; default: every stage, in order.
        seed (`int`, *optional*): the run's seed; `None` keeps the config's `seed`.
        overrides (`dict`, *optional*): dotted keys, e.g. `{"part_vqvae.code_dim": 32}`; strings (from `--set`) are
            converted; unknown keys raise.
        resume_from_checkpoint (`bool`, *optional*, defaults to `False`): continue from the latest checkpoint under
            `output_dir/checkpoints/<stage>/`.
        use_cpu (`bool`, *optional*, defaults to `False`): train on CPU even when an accelerator is present.

    Returns:
        `Path`: `output_dir`, holding `madis_metrics.json`.
    """
    overrides = dict(overrides or {})
    if seed is not None:
        overrides["seed"] = seed
    cfg = full_config(config, overrides)
    # no pipeline folder yet: the stages that write `model_index.json` (pretrain, sft) come later
    return run_pose_stages(
        MADIS_STAGES, cfg, dataset_dir, output_dir, "madis", None, stage, resume_from_checkpoint, use_cpu,
        pipeline_folder=False,
    )


def madis_param_counts(config: Union[str, Path, Dict[str, Any], None] = None) -> Dict[str, Any]:
    """Parameter counts of the trainable modules (no data needed; the `smplx133` skeleton).

    Args:
        config (`str`, `Path` or `dict`, *optional*): one config; default: every named config.

    Returns:
        `dict`: for one config, `part_vqvae` (total) and `part_vqvae_<part>` (encoder + decoder of each part; the
        EMA codebooks are buffers, not parameters); by default `{"configs": {name: counts}}`.
    """
    if config is None:
        names = sorted(p.stem for p in (CONFIGS_DIR / SYSTEM).glob("*.yaml"))
        return {"configs": {name: madis_param_counts(name) for name in names}}
    vqvae = PartVQVAE(**full_config(config)["part_vqvae"])
    counts = {"part_vqvae": sum(p.numel() for p in vqvae.parameters())}
    for name, enc, dec in zip(PART_NAMES, vqvae.encoders, vqvae.decoders):
        counts[f"part_vqvae_{name}"] = sum(p.numel() for m in (enc, dec) for p in m.parameters())
    return counts


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m hf_sign.training.madis_trainer --dataset_dir D --output_dir O [--config small] [--set k=v]`."""
    args, overrides = parse_training_run(argv)
    out = train_madis(
        args.dataset_dir,
        args.output_dir,
        args.config,
        args.stage,
        None,
        overrides,
        args.resume_from_checkpoint,
        use_cpu=args.use_cpu,
    )
    print(json.dumps(json.loads((out / "madis_metrics.json").read_text()), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

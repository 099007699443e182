"""Training Sign-MExD (Shen et al.): its config and its entry points. The stage is in `sign_mexd_stages`.

```
OUTPUT_DIR/model_index.json, transformer/, text_encoder/, tokenizer/, scheduler/, normalizer/,
           pipeline_sign_mexd.py          a complete `SignMExDPipeline` folder
OUTPUT_DIR/sign_mexd_config.json          the resolved config (defaults <- YAML <- overrides)
OUTPUT_DIR/sign_mexd_metrics.json         seconds, losses, steps, the validation loss, glosses left out
OUTPUT_DIR/checkpoints/diffusion/checkpoint-N   Trainer checkpoints (safetensors weights; resume)
```

Config (`CONFIG_SCHEMA`): the defaults are read off `SignMExDTransformer.__init__`, `GlossEncoderSettings`,
diffusers' `DDIMScheduler` and `SignMExDTrainingArguments` (the paper's loss, noise rate and learning rate). The
transformer's `pose_dim` follows the dataset and its `cross_attention_dim` the gloss encoder's `hidden_size`. A YAML
file in `hf_sign/configs/sign-mexd/` lists only what differs (a `base:` names the config it varies): `tiny` (tests),
`small-dense` and `small-moe` (the CPU pair with equal active parameters per token; `small` is `small-moe`), and
`paper-xl`, `paper-xxl`, `paper-3xl` (Table I's dense shapes; `--set transformer.num_experts=4` for 4E, and so on).

Entry points: `train_sign_mexd(dataset_dir, output_dir, config="tiny", stage=None, seed=None, overrides=None,
resume_from_checkpoint=False)` (what `hf-sign train sign-mexd` calls), `sign_mexd_param_counts(config, overrides)`
(`hf-sign models params sign-mexd`: without a config, every Table I row beside the paper's numbers and every named
config) and `python -m hf_sign.training.sign_mexd_trainer --dataset_dir D --output_dir O [--config small]`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from diffusers import DDIMScheduler

from ..models.sign_mexd import SignMExDTransformer, count_parameters, table_i_parameter_counts
from .arguments import DataArguments, parse_training_run
from .config_utils import CONFIGS_DIR, ConfigSchema, ConfigSection
from .sign_mexd_data import glossed_rows
from .sign_mexd_stages import SIGN_MEXD_STAGES, GlossEncoderSettings, SignMExDTrainingArguments
from .stages import StageContext, run_pose_stages

__all__ = [
    "SYSTEM",
    "STAGES",
    "CONFIG_SCHEMA",
    "default_config",
    "full_config",
    "train_sign_mexd",
    "run_sign_mexd_training",
    "sign_mexd_param_counts",
    "main",
]

logger = logging.getLogger(__name__)

SYSTEM = "sign-mexd"
STAGES = tuple(stage.name for stage in SIGN_MEXD_STAGES)  # ("diffusion",)


CONFIG_SCHEMA = ConfigSchema(
    SYSTEM,
    top_level={"seed": 0, "num_threads": 0},
    sections={
        "data": ConfigSection(DataArguments),
        "gloss_encoder": ConfigSection(GlossEncoderSettings),
        # `pose_dim` follows the dataset, `cross_attention_dim` the gloss encoder's width
        "transformer": ConfigSection(SignMExDTransformer, exclude=("pose_dim", "cross_attention_dim")),
        # DDPM with these betas in training (`prediction_type="sample"`), DDIM in the saved pipeline
        "scheduler": ConfigSection(
            DDIMScheduler,
            include=("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "clip_sample",
                     "set_alpha_to_one", "steps_offset"),
            defaults={"clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1},
        ),
        "training": ConfigSection(SignMExDTrainingArguments),
    },
)


# ------------------------------------------------------------------------------------------------- config
def default_config() -> Dict[str, Any]:
    """Every config key with its default."""
    return CONFIG_SCHEMA.defaults()


def full_config(
    config: Union[str, Path, Mapping[str, Any], None] = "tiny", overrides: Optional[Mapping[str, Any]] = None
) -> Dict[str, Any]:
    """Defaults <- YAML config (name, path or dict) <- dotted overrides; unknown keys and wrong types raise."""
    cfg = CONFIG_SCHEMA.resolve(config, overrides)
    DataArguments(**cfg["data"])
    GlossEncoderSettings(**cfg["gloss_encoder"])
    SignMExDTrainingArguments(**cfg["training"])
    if cfg["data"]["max_frames"] > cfg["transformer"]["max_frames"]:
        raise ValueError(
            f"`data.max_frames` ({cfg['data']['max_frames']}) exceeds `transformer.max_frames` "
            f"({cfg['transformer']['max_frames']}), the longest sequence the transformer's positions hold."
        )
    return cfg


def _prepare(ctx: StageContext, stages: Sequence[str]) -> Dict[str, Any]:
    """Check the data against the config before the stage spends its time; count the samples without glosses."""
    rows, left_out = glossed_rows(ctx.data["train"])
    if not rows:
        raise ValueError(
            "Sign-MExD is conditioned on glosses and no train sample has a `gloss` sequence; train it on a corpus "
            "with glosses (SynthSign has them)."
        )
    limit = ctx.config["gloss_encoder"]["max_position_embeddings"]
    longest = max(rows, key=lambda r: len(r["gloss"]))
    if len(longest["gloss"]) + 2 > limit:
        raise ValueError(
            f"Train sample {longest['id']!r} has {len(longest['gloss'])} glosses; with [BOS] and [EOS] that exceeds "
            f"`gloss_encoder.max_position_embeddings` = {limit}. Pass --set gloss_encoder.max_position_embeddings="
            f"{len(longest['gloss']) + 2} (or more)."
        )
    return {"num_train": len(rows), "num_train_skipped_long": ctx.data["skipped"], "num_train_without_gloss": left_out}


# ------------------------------------------------------------------------------------------------- running
def run_sign_mexd_training(
    cfg: Dict[str, Any],
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    stage: Optional[str] = None,
    resume_from_checkpoint: bool = False,
    use_cpu: bool = False,
) -> Path:
    """Run the stage with the resolved config `cfg` (`full_config`); returns the output folder."""
    return run_pose_stages(
        SIGN_MEXD_STAGES, cfg, dataset_dir, output_dir, "sign_mexd", _prepare, stage, resume_from_checkpoint, use_cpu
    )


def train_sign_mexd(
    dataset_dir: Union[str, Path],
    output_dir: Union[str, Path],
    config: Union[str, Path, Dict[str, Any]] = "tiny",
    stage: Optional[str] = None,
    seed: Optional[int] = None,
    overrides: Optional[Dict[str, Any]] = None,
    resume_from_checkpoint: bool = False,
) -> Path:
    """Train Sign-MExD on `dataset_dir`; the output folder ends up a complete `SignMExDPipeline` folder.

    Args:
        dataset_dir (`str` or `Path`): hf-sign dataset folder (or Hub id) whose `train` split has `gloss` sequences
            (and, for the length model, `gloss_spans` where known).
        output_dir (`str` or `Path`): output folder (`model_index.json` at its root at the end).
        config (`str`, `Path` or `dict`, *optional*, defaults to `"tiny"`): `tiny`, `small`, `small-dense`,
            `small-moe`, `paper-xl`, `paper-xxl`, `paper-3xl`, a YAML path, or a dict of config sections.
        stage (`str`, *optional*): `"diffusion"` (the only stage).
        seed (`int`, *optional*): the run's seed; `None` keeps the config's `seed`.
        overrides (`dict`, *optional*): dotted keys, e.g. `{"transformer.num_experts": 8,
            "transformer.routing": "token_choice"}`; strings (from `--set`) are converted; unknown keys raise.
        resume_from_checkpoint (`bool`, *optional*, defaults to `False`): continue from the latest checkpoint under
            `output_dir/checkpoints/diffusion/`.

    Returns:
        `Path`: `output_dir`, holding `sign_mexd_metrics.json`.
    """
    overrides = dict(overrides or {})
    if seed is not None:
        overrides["seed"] = seed
    cfg = full_config(config, overrides)
    return run_sign_mexd_training(cfg, dataset_dir, output_dir, stage, resume_from_checkpoint)


# ------------------------------------------------------------------------------------------------- parameters
def _config_counts(config: Union[str, Path, Dict[str, Any]], overrides: Optional[Dict[str, Any]] = None):
    """A config's counts: the transformer's (on the model's default `pose_dim`, the dataset's being unknown) and the
    gloss encoder's (a 1000-gloss vocabulary); `total` and `active_per_token` count both, as Table I does."""
    cfg = full_config(config, overrides)
    kwargs = dict(cfg["transformer"], cross_attention_dim=cfg["gloss_encoder"]["hidden_size"])
    settings = GlossEncoderSettings(**cfg["gloss_encoder"])
    gloss = dict(vocab_size=1000 + 4, hidden_size=settings.hidden_size, num_hidden_layers=settings.num_hidden_layers,
                 num_attention_heads=settings.num_attention_heads, intermediate_size=settings.intermediate_size,
                 max_position_embeddings=settings.max_position_embeddings, pad_token_id=0, bos_token_id=2,
                 eos_token_id=3)
    transformer, both = count_parameters(kwargs), count_parameters(kwargs, gloss_encoder=gloss)
    return {
        "total": both["total"], "active_per_token": both["active_per_token"],
        "transformer_total": transformer["total"], "transformer_active_per_token": transformer["active_per_token"],
        "gloss_encoder": both["total"] - transformer["total"],
    }


def sign_mexd_param_counts(
    config: Union[str, Path, Dict[str, Any], None] = None, overrides: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """Parameter counts (no data needed).

    Args:
        config (`str`, `Path` or `dict`, *optional*): one config; default: every Table I row and every named config.
        overrides (`dict`, *optional*): dotted overrides of the config(s).

    Returns:
        `dict`: for one config, `total` and `active_per_token` (transformer + gloss encoder, as Table I counts),
        `transformer_total`, `transformer_active_per_token` and `gloss_encoder`; by default `{"table_i": {row:
        {total, active_per_token, paper_total, paper_active_per_token}}, "configs": {name: counts}}` (Table I's rows
        as `table_i_parameter_counts` counts them: PHOENIX14T's 150 pose features and 1,089-token gloss vocabulary).
    """
    if config is not None:
        return _config_counts(config, overrides)
    names = sorted(p.stem for p in (CONFIGS_DIR / SYSTEM).glob("*.yaml"))
    return {"table_i": table_i_parameter_counts(), "configs": {n: _config_counts(n, overrides) for n in names}}


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m hf_sign.training.sign_mexd_trainer --dataset_dir D --output_dir O [--config small] [--set k=v]`."""
    args, overrides = parse_training_run(argv)
    cfg = full_config(args.config, overrides)
    out = run_sign_mexd_training(cfg, args.dataset_dir, args.output_dir, args.stage, args.resume_from_checkpoint,
                                 args.use_cpu)
    print(json.dumps(json.loads((out / "sign_mexd_metrics.json").read_text()), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training MaDiS (masked diffusion sign generation): its config and its entry points. The stages are in
`madis_stages` (`tokenizer`) and `madis_lm_stages` (`pretrain`, `sft`).

```
OUTPUT_DIR/model_index.json, lm/, part_vqvae/, text_tokenizer/, scheduler/, normalizer/, pipeline_madis.py
                                          a complete `MaDiSPipeline` folder (written by `sft`)
OUTPUT_DIR/pretrained_lm/                 the pretrained LM (stage `pretrain`; `sft` starts from it)
OUTPUT_DIR/madis_config.json              the resolved config (defaults <- YAML <- overrides)
OUTPUT_DIR/madis_metrics.json             seconds, losses, steps, validation MPJPE, codebook usage, validation
                                          loss terms and masked token accuracy of the LM stages
OUTPUT_DIR/checkpoints/<stage>/checkpoint-N   Trainer checkpoints (safetensors weights; resume)
```

Config (`CONFIG_SCHEMA`): the defaults are read off `PartVQVAE.__init__` (its `skeleton` follows the dataset),
`PartVQVAETrainingArguments`, `TextTokenizerArguments`, `MaDiSConfig` (section `lm`: its own arguments and the Qwen3
backbone arguments it passes on, defaulting to Qwen3-0.6B's shape; the vocabulary and code sizes follow the
tokenizer stage's outputs), `MaskedDiffusionScheduler` (section `scheduler`), `PretrainingArguments` (section
`pretraining`) and `SFTArguments` (section `sft`). `train_stages` names the stages a run trains (all when empty). A
YAML file in `hf_sign/configs/madis/` lists only what differs: `tiny` (tests, seconds), `small` (the CPU default),
`paper` (SOKE's tokenizer, Qwen3-0.6B, the paper's schedule), and the baselines `mdlm-baseline` (no pretraining, UTC
or MoP) and `ar-baseline` (the same backbone causal, SOKE-style).

Entry points: `train_madis(dataset_dir, output_dir, config="tiny", stage=None, seed=None, overrides=None,
resume_from_checkpoint=False)` (what `hf-sign train madis` calls), `madis_param_counts(config)` (`hf-sign models
params madis`) and `python -m hf_sign.training.madis_trainer --dataset_dir D --output_dir O [--config small]`.
"""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import torch
from transformers import Qwen3Config

from ..models.madis import MaDiSConfig, MaDiSForMaskedDiffusion, PartVQVAE
from ..models.madis.configuration_madis import QWEN3_BACKBONE_ARGUMENTS
from ..models.madis.part_vqvae import PART_NAMES
from ..schedulers.scheduling_masked_diffusion import MaskedDiffusionScheduler
from .arguments import DataArguments, parse_training_run
from .config_utils import CONFIGS_DIR, ConfigSchema, ConfigSection
from .madis_lm_stages import PretrainingArguments, SFTArguments
from .madis_stages import MADIS_STAGES, PartVQVAETrainingArguments, TextTokenizerArguments
from .stages import run_pose_stages

__all__ = ["SYSTEM", "STAGES", "CONFIG_SCHEMA", "full_config", "train_madis", "madis_param_counts", "main"]

SYSTEM = "madis"
STAGES = tuple(stage.name for stage in MADIS_STAGES)  # ("tokenizer", "pretrain", "sft")

# Qwen3-0.6B(-Base), the paper's backbone: the `lm` section's defaults
QWEN3_0_6B = {
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
}
# The LM's vocabulary follows the tokenizer stage's outputs (and `eos`/`pad`, which `lm` does not list, too).
_FROM_TOKENIZERS = ("text_vocab_size", "part_codebook_sizes", "code_dim", "mask_token_id")


def _lm_arguments() -> type:
    """A `ConfigSection` source for `MaDiSConfig`: its own `__init__` arguments, then the Qwen3 backbone arguments
    it takes through `**kwargs` (`QWEN3_BACKBONE_ARGUMENTS`). (A transformers config class is a dataclass of
    `PreTrainedConfig`'s own fields, which `ConfigSection` would read instead of its arguments.)"""
    own = inspect.signature(MaDiSConfig.__init__).parameters.values()
    qwen = inspect.signature(Qwen3Config.__init__).parameters
    params = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params += [
        qwen[name].replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=inspect.Parameter.empty)
        for name in QWEN3_BACKBONE_ARGUMENTS
    ]

    def __init__(self, **kwargs):  # noqa: N807 - only its signature is read
        raise TypeError("a config schema source; build a MaDiSConfig instead")

    __init__.__signature__ = inspect.Signature(params)
    hints = dict(typing.get_type_hints(MaDiSConfig.__init__))
    hints.update(
        {n: (Optional[dict] if n == "rope_parameters" else type(qwen[n].default)) for n in QWEN3_BACKBONE_ARGUMENTS}
    )
    __init__.__annotations__ = hints
    return type(MaDiSConfig.__name__, (), {"__init__": __init__})


CONFIG_SCHEMA = ConfigSchema(
    SYSTEM,
    top_level={"seed": 0, "num_threads": 0, "train_stages": []},
    sections={
        "data": ConfigSection(DataArguments),
        # the skeleton (and with it the parts) follows the dataset's representation
        "part_vqvae": ConfigSection(PartVQVAE, exclude=("skeleton", "part_dims")),
        "tokenizer_training": ConfigSection(PartVQVAETrainingArguments),
        "text_tokenizer": ConfigSection(TextTokenizerArguments),
        "lm": ConfigSection(_lm_arguments(), exclude=_FROM_TOKENIZERS, defaults=QWEN3_0_6B),
        # `mask_token_id` and `eos_token_id` are the text tokenizer's; the authors' sampler takes the argmax
        "scheduler": ConfigSection(
            MaskedDiffusionScheduler,
            include=("pivot_timesteps", "pivot_mode", "temperature", "length_mode", "kv_cache", "kv_cache_refresh"),
            defaults={"temperature": 0.0},
        ),
        "pretraining": ConfigSection(PretrainingArguments),
        "sft": ConfigSection(SFTArguments),
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
    PretrainingArguments(**cfg["pretraining"])
    sft = SFTArguments(**cfg["sft"])
    lm = lm_config(cfg)
    MaskedDiffusionScheduler(mask_token_id=lm.mask_token_id, eos_token_id=lm.eos_token_id, **cfg["scheduler"])
    if lm.max_position_embeddings < lm.max_text_tokens + lm.max_sign_tokens:
        raise ValueError(
            f"`lm.max_position_embeddings` ({lm.max_position_embeddings}) must hold `lm.max_text_tokens` + "
            f"`lm.max_sign_tokens` ({lm.max_text_tokens + lm.max_sign_tokens}) positions."
        )
    if not lm.bidirectional and sft.alpha > 0:
        raise ValueError(
            f"`sft.alpha` must be 0 with `lm.bidirectional: false` (the autoregressive baseline is trained by "
            f"next-token prediction only); got {sft.alpha}."
        )
    return cfg


def lm_config(cfg: Mapping[str, Any]) -> MaDiSConfig:
    """The `lm` section as a `MaDiSConfig` before the tokenizers exist: the text vocabulary at its largest
    (`text_tokenizer.vocab_size`), the codes of the `part_vqvae` section (for checks and parameter counts)."""
    vq = cfg["part_vqvae"]
    return MaDiSConfig(
        text_vocab_size=cfg["text_tokenizer"]["vocab_size"],
        part_codebook_sizes=list(vq["codebook_sizes"]),
        code_dim=vq["code_dim"],
        **cfg["lm"],
    )


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
    """Train MaDiS on `dataset_dir`; the output folder ends up a complete `MaDiSPipeline` folder.

    Args:
        dataset_dir (`str` or `Path`): hf-sign dataset folder (or Hub id) with a `train` split (and `validation`).
        output_dir (`str` or `Path`): output folder.
        config (`str`, `Path` or `dict`, *optional*, defaults to `"tiny"`): `tiny`, `small`, `paper`,
            `mdlm-baseline`, `ar-baseline`, a YAML path, or a dict of config sections.
        stage (`str`, *optional*): `"tokenizer"`, `"pretrain"` or `"sft"` (each reads what the earlier stages wrote
            into `output_dir`); default: the config's `train_stages` (every stage when empty), in order.
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
    return run_pose_stages(
        MADIS_STAGES, cfg, dataset_dir, output_dir, "madis", None, stage, resume_from_checkpoint, use_cpu
    )


def madis_param_counts(config: Union[str, Path, Dict[str, Any], None] = None) -> Dict[str, Any]:
    """Parameter counts of the trainable modules (no data needed; the `smplx133` skeleton; the LM is built on the
    meta device, so the paper's Qwen3-0.6B shape costs no memory).

    Args:
        config (`str`, `Path` or `dict`, *optional*): one config; default: every named config.

    Returns:
        `dict`: for one config, `part_vqvae` (total) and `part_vqvae_<part>` (encoder + decoder of each part; the
        EMA codebooks are buffers, not parameters), `lm` (the language model, its tied embedding counted once, with a
        text vocabulary of `text_tokenizer.vocab_size`), `lm_embedding`, `lm_backbone` (the Qwen3 layers and final
        norm), `lm_mop` and `lm_latent_heads`; by default `{"configs": {name: counts}}`.
    """
    if config is None:
        names = sorted(p.stem for p in (CONFIGS_DIR / SYSTEM).glob("*.yaml"))
        return {"configs": {name: madis_param_counts(name) for name in names}}
    cfg = full_config(config)
    vqvae = PartVQVAE(**cfg["part_vqvae"])
    counts = {"part_vqvae": sum(p.numel() for p in vqvae.parameters())}
    for name, enc, dec in zip(PART_NAMES, vqvae.encoders, vqvae.decoders):
        counts[f"part_vqvae_{name}"] = sum(p.numel() for m in (enc, dec) for p in m.parameters())
    with torch.device("meta"):
        lm = MaDiSForMaskedDiffusion(lm_config(cfg))
    embedding = lm.model.embed_tokens.weight.numel()
    counts["lm"] = sum(p.numel() for p in lm.parameters())
    counts["lm_embedding"] = embedding
    counts["lm_backbone"] = sum(p.numel() for p in lm.model.parameters()) - embedding
    counts["lm_mop"] = sum(p.numel() for p in lm.mop.parameters())
    counts["lm_latent_heads"] = sum(p.numel() for p in lm.latent_heads.parameters())
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

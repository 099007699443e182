"""`hf-sign finetune ...`: LoRA fine-tuning from the command line (its parser and its handler).

    hf-sign finetune SYSTEM --model DIR|REPO --dataset DIR --output-dir DIR [--lora-r 8] [--lora-alpha A]
        [--lora-dropout P] [--target-modules to_q,to_v] [--learning-rate LR] [--num-train-epochs N] [--seed N]
        [--set KEY=VALUE ...]

The output folder holds the adapter only (`hf_sign.pipelines.lora`); `hf-sign generate --model BASE --adapter DIR`
and `pipe.load_lora_weights(DIR)` load it onto the base model.
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_finetune_command"]


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 1024:.1f} KiB" if num_bytes < 1024**2 else f"{num_bytes / 1024**2:.2f} MiB"


def cmd_finetune(args: argparse.Namespace) -> int:
    from .config_utils import parse_overrides
    from .finetune import LoraArguments, finetune

    targets = [t.strip() for t in args.target_modules.split(",") if t.strip()] if args.target_modules else None
    if args.target_modules is not None and not targets:
        raise ValueError(f"`--target-modules` must name layers, comma-separated; got {args.target_modules!r}.")
    lora = LoraArguments(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout, target_modules=targets
    )
    metrics = finetune(
        args.system,
        args.model,
        args.dataset,
        args.output_dir,
        lora=lora,
        learning_rate=args.learning_rate,
        num_train_epochs=args.num_train_epochs,
        overrides=parse_overrides(args.set),
        seed=args.seed,
    )
    from .distributed import is_main_process

    if not is_main_process():  # one report for a multi-process run
        return 0
    print(json.dumps(metrics, indent=2, default=str))
    print(
        f"loss on the new train split (fixed draws): {metrics['loss_before']:.4f} -> {metrics['loss_after']:.4f}\n"
        f"adapter: {metrics['adapter_parameters']:,} parameters, {_size(metrics['adapter_bytes'])} "
        f"({100 * metrics['adapter_fraction']:.2f}% of the base component's {metrics['base_component_parameters']:,}"
        f" parameters, {_size(metrics['base_component_bytes'])})"
    )
    print(
        f"wrote {args.output_dir} (load it with `hf-sign generate --model {args.model} --adapter {args.output_dir}`)"
    )
    return 0


def add_finetune_command(sub) -> None:
    """Register `finetune` on the `hf-sign` subparsers `sub`."""
    from ..systems import list_systems

    ft = sub.add_parser("finetune", help="adapt a trained model's main network with LoRA (saves the adapter only)")
    ft.add_argument("system", choices=[s.name for s in list_systems() if s.finetune is not None])
    ft.add_argument("--model", required=True, help="the base pipeline folder (or cached repo id) of SYSTEM")
    ft.add_argument("--dataset", required=True, help="hf-sign corpus to adapt to (its train split)")
    ft.add_argument("--output-dir", required=True, help="adapter folder")
    ft.add_argument("--lora-r", type=int, default=8, help="adapter rank (default: 8)")
    ft.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default: r, i.e. scale 1)")
    ft.add_argument("--lora-dropout", type=float, default=0.0, help="dropout on the adapter's input (default: 0)")
    ft.add_argument("--target-modules", default=None, help="comma-separated layer names (default: the system's)")
    ft.add_argument("--learning-rate", type=float, default=None, help="default: the base run's config")
    ft.add_argument("--num-train-epochs", type=float, default=None, help="default: the base run's config")
    ft.add_argument("--seed", type=int, default=None)
    ft.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )
    ft.set_defaults(func=cmd_finetune)

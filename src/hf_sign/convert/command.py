"""`hf-sign convert ...`: the command-line verb of the converters (its parser and its handler).

    hf-sign convert madis-checkpoint SRC --out DIR [--lm-checkpoint CKPT] [--tokenizer-checkpoint CKPT|none]
        [--language-model-dir DIR] [--mean FILE --std FILE] [--fps F] [--allow-global NAME ...]
"""

from __future__ import annotations

import argparse

__all__ = ["add_convert_command"]


def cmd_convert(args: argparse.Namespace) -> int:
    from .madis_checkpoint import convert_madis_checkpoint

    result = convert_madis_checkpoint(
        args.src,
        args.out,
        lm_checkpoint=args.lm_checkpoint,
        tokenizer_checkpoint=False if args.tokenizer_checkpoint == "none" else args.tokenizer_checkpoint,
        language_model_dir=args.language_model_dir,
        mean=args.mean,
        std=args.std,
        fps=args.fps,
        allow_globals=args.allow_global,
    )
    print(
        f"wrote {args.out} (MaDiS {result.stage}: {len(result.mapped)} tensors mapped, {len(result.dropped)} dropped)"
    )
    for note in result.notes:
        print(f"note: {note}")
    return 0


def add_convert_command(sub) -> None:
    """Register `convert` on the `hf-sign` subparsers `sub`."""
    convert = sub.add_parser("convert", help="convert another project's released checkpoints to a pipeline folder")
    csub = convert.add_subparsers(dest="what", required=True)
    madis = csub.add_parser("madis-checkpoint", help="the authors' MaDiS release (.ckpt files, Qwen3 folder)")
    madis.add_argument("src", help="release folder (experiments/madis/, deps/) or a language-model .ckpt")
    madis.add_argument("--out", required=True, help="output pipeline folder")
    madis.add_argument("--lm-checkpoint", default=None, help="sft_csl.ckpt, pretrained.ckpt, ... or a path")
    madis.add_argument(
        "--tokenizer-checkpoint",
        default=None,
        help="default: SRC/experiments/madis/tokenizer.ckpt if present; 'none': only the LM's own copy",
    )
    madis.add_argument("--language-model-dir", default=None, help="default: SRC/deps/Qwen3-0.6B-Base-en-zh-de")
    madis.add_argument("--mean", default=None, help="the release's CSL-Daily mean.pt (default: SRC/mean.pt)")
    madis.add_argument("--std", default=None, help="the release's CSL-Daily std.pt (default: SRC/std.pt)")
    madis.add_argument("--fps", type=float, default=25.0, help="frame rate of the poses (default: 25)")
    madis.add_argument(
        "--allow-global",
        action="append",
        default=[],
        metavar="NAME",
        help="a further pickle global of the checkpoints to read as an inert placeholder (repeatable)",
    )
    convert.set_defaults(func=cmd_convert)

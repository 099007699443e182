"""`hf-sign` command line: one verb per job, the same flags everywhere (DESIGN.md, "Command line contract").

Implemented verbs:

```
hf-sign data synthsign --out DIR [--seed N] [--num-train N --num-validation N --num-test N]
hf-sign data fingerspelling --out DIR [--seed N] [--languages ase,gsg,...]
hf-sign data convert {how2sign,csl,phoenix-smplx,phoenix-skels,pose-dir} SRC --out DIR [--skip-invalid] [--allow-missing]
hf-sign render INPUT --out FILE.{gif,mp4,pose} [--split test --index N] [--view front|side]
hf-sign skeletons [NAME]
```

Heavy imports happen inside each command so `hf-sign --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

SMPLX_CORPORA = ("how2sign", "csl", "phoenix-smplx")
CONVERT_FORMATS = SMPLX_CORPORA + ("phoenix-skels", "pose-dir")


def _print_splits(dd, out: str, skipped=None) -> None:
    sizes = ", ".join(f"{k}={len(v)}" for k, v in dd.items())
    print(f"wrote {out} ({sizes})")
    if skipped:
        print(f"skipped {len(skipped)} invalid item(s); reasons in {Path(out) / 'skipped.jsonl'}")


def cmd_data(args: argparse.Namespace) -> int:
    if args.corpus == "synthsign":
        from .data.synthsign import build_synthsign

        sizes = {k: v for k, v in (("num_train", args.num_train), ("num_validation", args.num_validation), ("num_test", args.num_test)) if v is not None}
        dd = build_synthsign(args.out, seed=args.seed, **sizes)
        _print_splits(dd, args.out)
    elif args.corpus == "fingerspelling":
        from .data.fingerspelling import build_fingerspelling

        languages = [s.strip() for s in args.languages.split(",") if s.strip()] if args.languages else None
        dd = build_fingerspelling(args.out, seed=args.seed, languages=languages)
        _print_splits(dd, args.out)
    elif args.corpus == "convert":
        if args.format in SMPLX_CORPORA:
            from .data.converters.smplx_pickles import convert_smplx_corpus

            dd, skipped = convert_smplx_corpus(args.format, args.src, args.out, skip_invalid=args.skip_invalid, target_fps=args.fps)
        elif args.format == "phoenix-skels":
            from .data.converters.phoenix_skels import convert_phoenix_skels

            dd, skipped = convert_phoenix_skels(args.src, args.out, skip_invalid=args.skip_invalid)
        else:
            from .data.converters.pose_dir import convert_pose_dir

            dd, skipped = convert_pose_dir(
                args.src, args.out, csv=args.csv, skip_invalid=args.skip_invalid, allow_missing=args.allow_missing
            )
        _print_splits(dd, args.out, skipped)
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from .render import load_render_input, render_to_file
    from .skeletons import get_skeleton

    item = load_render_input(args.input, split=args.split, index=args.index)
    spec = get_skeleton(item.representation)
    reference = None
    titles = None
    if args.reference:
        ref = load_render_input(args.reference, split=args.split, index=args.index)
        reference = ref.features
        titles = ["reference", "input"]
    render_to_file(item.features, spec, args.out, fps=item.fps, reference=reference, titles=titles, text=item.text, view=args.view)
    print(f"wrote {args.out} ({len(item.features)} frames at {item.fps:g} fps): {item.text!r}")
    return 0


def cmd_skeletons(args: argparse.Namespace) -> int:
    from .skeletons import get_skeleton, list_skeletons

    names = [args.name] if args.name else list_skeletons()
    for name in names:
        spec = get_skeleton(name)
        info = {
            "name": spec.name,
            "feature_dim": spec.feature_dim,
            "feature_joints": spec.num_joints,
            "position_joints": spec.num_position_joints,
            "parts": {k: len(v) for k, v in spec.parts.items()},
            "atomic_joints": {k: list(v) for k, v in spec.atomic_joint_names.items()},
            "fps": spec.fps,
        }
        print(json.dumps(info))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-sign", description="Sign language production on the Hugging Face stack.")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build an embedded corpus or convert a real one")
    dsub = data.add_subparsers(dest="corpus", required=True)
    synth = dsub.add_parser("synthsign", help="generate the procedural SynthSign corpus (smplx133)")
    synth.add_argument("--out", required=True, help="output dataset directory")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--num-train", type=int, default=None)
    synth.add_argument("--num-validation", type=int, default=None)
    synth.add_argument("--num-test", type=int, default=None)
    fs = dsub.add_parser("fingerspelling", help="real fingerspelling clips from the spoken-to-signed package (holistic)")
    fs.add_argument("--out", required=True)
    fs.add_argument("--seed", type=int, default=0)
    fs.add_argument("--languages", default=None, help="comma-separated signed-language codes (default: all)")
    conv = dsub.add_parser("convert", help="convert a real corpus from its source format")
    conv.add_argument("format", choices=CONVERT_FORMATS)
    conv.add_argument("src", help="source directory")
    conv.add_argument("--out", required=True)
    conv.add_argument("--skip-invalid", action="store_true", help="skip bad items and list them in skipped.jsonl")
    conv.add_argument("--fps", type=float, default=24.0, help="target fps for SMPL-X corpora (SOKE uses 24)")
    conv.add_argument("--csv", default=None, help="pose-dir: CSV file (default: SRC/metadata.csv, else SRC/index.csv)")
    conv.add_argument(
        "--allow-missing",
        action="store_true",
        help="pose-dir: place joints never detected in a clip (e.g. an absent hand) on their nearest detected ancestor instead of failing",
    )
    data.set_defaults(func=cmd_data)

    render = sub.add_parser("render", help="render a dataset row or a saved .npz to GIF/MP4/.pose")
    render.add_argument("input", help="dataset directory or .npz file")
    render.add_argument("--out", required=True, help="output file (.gif, .mp4 or .pose)")
    render.add_argument("--split", default="test")
    render.add_argument("--index", type=int, default=0)
    render.add_argument("--reference", default=None, help="second input drawn beside the first ('reference | input')")
    render.add_argument("--view", default="front", choices=("front", "side"))
    render.set_defaults(func=cmd_render)

    sk = sub.add_parser("skeletons", help="describe the registered skeletons")
    sk.add_argument("name", nargs="?", default=None)
    sk.set_defaults(func=cmd_skeletons)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, ImportError) as err:
        # User errors (bad input, missing files or extras) get one clear line, not a traceback.
        print(f"hf-sign: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

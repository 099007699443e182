"""`hf-sign` command line: one verb per job, the same flags everywhere (DESIGN.md, "Command line contract").

Implemented verbs:

```
hf-sign data synthsign --out DIR [--seed N] [--num-train N --num-validation N --num-test N] [--signer-style S]
hf-sign data fingerspelling --out DIR [--seed N] [--languages ase,gsg,...]
hf-sign data convert {how2sign,csl,phoenix-smplx,phoenix-skels,pose-dir} SRC --out DIR
    [--skip-invalid] [--allow-missing]
hf-sign render INPUT --out FILE.{gif,mp4,pose} [--split test --index N] [--view front|side]
hf-sign train SYSTEM --dataset DIR --output-dir DIR [--config NAME|PATH] [--stage S] [--set key=value ...]
hf-sign finetune SYSTEM --model DIR|REPO --dataset DIR --output-dir DIR [--lora-r 8 ...] [--set key=value ...]
hf-sign generate --model DIR|REPO (--text "..." | --gloss "...") [...] --out DIR [--format gif,mp4,pose,bvh,npz]
hf-sign benchmark --dataset DIR [--split test] [--model NAME=DIR|REPO ...] [--baselines] --out DIR [--max-samples N]
hf-sign models params [SYSTEM] [--config NAME]
hf-sign plot routing --model DIR|REPO --gloss "..." --out FILE.png [--layer K] [--num-inference-steps N] [--seed N]
hf-sign skeletons [NAME]
hf-sign demo [--text "..."] [--system NAME] [--config NAME] [--repo-id ORG/NAME] [--out DIR] [--seed N] [--retrain]
hf-sign publish DIR --repo-id ORG/NAME [--repo-type model|dataset] [--dry-run] [--private] [--results PATH]
    [--results-row NAME] [--dataset-id ORG/NAME] [--license ID] [--out DIR]
hf-sign hub cache-add DIR --repo-id ORG/NAME [--repo-type model|dataset]
hf-sign convert madis-checkpoint SRC --out DIR [--lm-checkpoint CKPT] [--tokenizer-checkpoint CKPT]
    [--language-model-dir DIR] [--mean FILE --std FILE] [--fps F] [--allow-global NAME ...]
```

SYSTEM is any system of the registry (`hf_sign.systems`): `train`, `generate`, `models params`, `demo` and `benchmark`
dispatch through it and never branch on a system's name.

Heavy imports happen inside each command so `hf-sign --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

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

        sizes = {
            k: v
            for k, v in (
                ("num_train", args.num_train),
                ("num_validation", args.num_validation),
                ("num_test", args.num_test),
            )
            if v is not None
        }
        dd = build_synthsign(args.out, seed=args.seed, signer_style=args.signer_style, **sizes)
        _print_splits(dd, args.out)
    elif args.corpus == "fingerspelling":
        from .data.fingerspelling import build_fingerspelling

        languages = [s.strip() for s in args.languages.split(",") if s.strip()] if args.languages else None
        dd = build_fingerspelling(args.out, seed=args.seed, languages=languages)
        _print_splits(dd, args.out)
    elif args.corpus == "convert":
        if args.format in SMPLX_CORPORA:
            from .data.converters.smplx_pickles import convert_smplx_corpus

            dd, skipped = convert_smplx_corpus(
                args.format, args.src, args.out, skip_invalid=args.skip_invalid, target_fps=args.fps
            )
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
    render_to_file(
        item.features, spec, args.out, fps=item.fps, reference=reference, titles=titles, text=item.text, view=args.view
    )
    print(f"wrote {args.out} ({len(item.features)} frames at {item.fps:g} fps): {item.text!r}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .systems import get_system
    from .training.config_utils import parse_overrides
    from .training.distributed import is_main_process

    system = get_system(args.system)
    metrics = system.run_training(
        args.dataset, args.output_dir, config=args.config, stage=args.stage, seed=args.seed,
        overrides=parse_overrides(args.set), resume_from_checkpoint=args.resume,
        overwrite_output_dir=args.overwrite_output_dir,
    )
    if is_main_process():  # one report for a multi-process run
        print(json.dumps(metrics, indent=2, default=str))
        print(f"wrote {args.output_dir}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    import torch

    from .pipelines.loading import load_sign_pipeline
    from .render import render_to_file, save_npz
    from .systems import system_for_pipeline

    formats = [f.strip().lower() for f in args.format.split(",") if f.strip()]
    unknown = sorted(set(formats) - {"gif", "mp4", "pose", "bvh", "npz"})
    if unknown or not formats:
        raise ValueError(f"`--format` must be a comma-separated subset of gif,mp4,pose,bvh,npz; got {args.format!r}.")
    if bool(args.text) == bool(args.gloss):
        raise ValueError("Give the input as `--text` or `--gloss` (repeatable), not both and not neither.")
    if Path(args.out).exists() and not Path(args.out).is_dir():  # an output folder; files in it are overwritten
        raise ValueError(f"`--out` {args.out!r} is a file; give an output folder (new or existing).")
    pipe = load_sign_pipeline(args.model)
    if args.adapter:  # a LoRA adapter of `hf-sign finetune`, into the component it adapts
        pipe.load_lora_weights(args.adapter)
    system = system_for_pipeline(pipe)
    conditioning = system.conditioning if system is not None else ("text",)
    kind = "text" if args.text else "gloss"
    if kind not in conditioning:
        raise ValueError(f"This model is conditioned on {' and '.join(conditioning)}; `--{kind}` does not apply.")
    inputs = list(args.text) if args.text else [g.split() for g in args.gloss]
    kwargs = {"generator": torch.Generator().manual_seed(args.seed), "output_type": "np"}
    for key in ("num_inference_steps", "num_frames", "guidance_scale"):
        if getattr(args, key) is not None:
            kwargs[key] = getattr(args, key)
    output = pipe(**{"prompt" if kind == "text" else "gloss": inputs}, **kwargs)
    spec, fps = pipe.skeleton, pipe.fps
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    labels = args.text or args.gloss
    for i, (label, poses) in enumerate(zip(labels, output.poses)):
        poses = np.asarray(poses)
        for fmt in formats:
            path = out / f"sample-{i:03d}.{fmt}"
            if fmt == "npz":
                save_npz(path, poses, spec.name, fps, text=label)
            else:
                render_to_file(poses, spec, path, fps=fps, text=label)
            print(f"wrote {path} ({len(poses)} frames): {label!r}")
        if output.info and output.info[i]:
            print(f"  {json.dumps(output.info[i], default=str)}")
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .evaluation.harness import parse_model_specs, run_benchmark

    train_evaluators = None
    if args.evaluator is None:  # evaluation never imports training: the CLI hands the harness the trainer
        from .training.evaluator_trainer import train_evaluators

    results = run_benchmark(
        args.dataset,
        split=args.split,
        models=parse_model_specs(args.model),
        baselines=args.baselines,
        evaluator_dir=args.evaluator,
        out_dir=args.out,
        max_samples=args.max_samples,
        num_inference_steps=args.num_inference_steps,
        seed=args.seed,
        num_examples=args.num_examples,
        batch_size=args.batch_size,
        num_frames=None if args.num_frames == "model" else args.num_frames,
        evaluator_config=args.evaluator_config,
        device=args.device,
        train_evaluators=train_evaluators,
        conventions=args.conventions,
    )
    print((Path(args.out) / "results.md").read_text(encoding="utf-8"))
    print(f"wrote {args.out}/results.md, results.json, per_sample.csv ({results['total_seconds']} s)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .systems import get_system, list_systems

    systems = [get_system(args.system)] if args.system else [s for s in list_systems() if s.param_report is not None]
    reports = {s.name: s.parameter_report(args.config) for s in systems}
    print(json.dumps(reports[args.system] if args.system else reports, indent=2))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    import torch

    from .pipelines.loading import load_sign_pipeline
    from .render.routing import plot_routing

    kwargs = {"num_inference_steps": args.num_inference_steps} if args.num_inference_steps is not None else {}
    summary = plot_routing(load_sign_pipeline(args.model), args.gloss.split(), args.out, layer=args.layer,
                           generator=torch.Generator().manual_seed(args.seed), **kwargs)
    shape = f"{summary['glosses']} glosses x {summary['experts']} experts, {summary['frames']} frames"
    print(f"wrote {args.out} ({shape})")
    if summary["unknown_glosses"]:
        print(f"  glosses outside the model's vocabulary (encoded as [UNK]): {summary['unknown_glosses']}")
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


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(text=args.text, system=args.system, repo_id=args.repo_id, config=args.config, data_dir=args.data_dir,
             work_dir=args.work_dir, out_dir=args.out, seed=args.seed, retrain=args.retrain)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .cli_hub import add_hub_commands
    from .convert.command import add_convert_command
    from .evaluation.evaluate_command import add_evaluate_command
    from .systems import list_systems
    from .training.finetune_command import add_finetune_command

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
    synth.add_argument("--signer-style", default=None, help="one new signer (slow-expansive, fast-compact) for all")
    fs = dsub.add_parser(
        "fingerspelling", help="real fingerspelling clips from the spoken-to-signed package (holistic)"
    )
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
        help="pose-dir: place joints never detected in a clip (e.g. an absent hand) on their nearest "
        "detected ancestor instead of failing",
    )
    data.set_defaults(func=cmd_data)

    render = sub.add_parser("render", help="render a dataset row or a saved .npz to GIF/MP4/.pose/.bvh")
    render.add_argument("input", help="dataset directory or .npz file")
    render.add_argument("--out", required=True, help="output file (.gif, .mp4, .pose or .bvh)")
    render.add_argument("--split", default="test")
    render.add_argument("--index", type=int, default=0)
    render.add_argument("--reference", default=None, help="second input drawn beside the first ('reference | input')")
    render.add_argument("--view", default="front", choices=("front", "side"))
    render.set_defaults(func=cmd_render)

    train = sub.add_parser("train", help="train a system; the output folder is a loadable pipeline")
    train.add_argument("system", choices=[s.name for s in list_systems()], help="a registered system")
    train.add_argument("--dataset", required=True, help="hf-sign corpus folder")
    train.add_argument("--output-dir", required=True)
    train.add_argument(
        "--config", default=None, help="config name (tiny, small, paper, ...) or YAML path (default: the system's)"
    )
    train.add_argument("--stage", default=None, help="run one training stage of the system (default: all, in order)")
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value (repeatable)"
    )
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output-dir")
    train.add_argument("--overwrite-output-dir", action="store_true", help="remove its checkpoints, train anew")
    train.set_defaults(func=cmd_train)

    gen = sub.add_parser("generate", help="text in, signing out")
    gen.add_argument("--model", required=True, help="pipeline folder or repo id")
    gen.add_argument("--adapter", default=None, help="LoRA adapter folder of `hf-sign finetune` (for --model)")
    gen.add_argument("--text", action="append", default=[], help="sentence to sign (repeatable)")
    gen.add_argument("--gloss", action="append", default=[], help="space-separated glosses to sign (repeatable)")
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--format", default="gif,pose,npz", help="comma-separated: gif, mp4, pose, bvh, npz")
    gen.add_argument("--num-inference-steps", type=int, default=None)
    gen.add_argument("--num-frames", type=int, default=None)
    gen.add_argument("--guidance-scale", type=float, default=None)
    gen.add_argument("--seed", type=int, default=0)
    gen.set_defaults(func=cmd_generate)

    bench = sub.add_parser("benchmark", help="evaluate systems and baselines in one table (paper layout)")
    bench.add_argument("--dataset", required=True, help="hf-sign corpus folder")
    bench.add_argument("--split", default="test", help="split to evaluate (default: test)")
    bench.add_argument(
        "--model", action="append", default=[], metavar="NAME=PATH", help="a system to evaluate (repeatable)"
    )
    bench.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="include the baselines (default: yes)",
    )
    bench.add_argument(
        "--evaluator", default=None, metavar="DIR", help="trained evaluators (default: train into OUT/evaluators)"
    )
    bench.add_argument(
        "--evaluator-config", default="default", help="config of evaluators trained here (default: default)"
    )
    bench.add_argument("--out", required=True, help="output folder")
    bench.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N samples")
    bench.add_argument("--num-inference-steps", type=int, default=None, help="denoising steps of the models")
    bench.add_argument(
        "--num-frames",
        choices=["model", "reference"],
        default="model",
        help="output lengths (default: each model's own)",
    )
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--num-examples", type=int, default=3, help="samples rendered to OUT/examples")
    bench.add_argument("--batch-size", type=int, default=16)
    bench.add_argument("--device", default=None, help="device of models and evaluators (default: cuda if available)")
    bench.add_argument("--conventions", default="soke", help="pose-error conventions (see hf-sign evaluate --help)")
    bench.set_defaults(func=cmd_benchmark)

    models = sub.add_parser("models", help="model facts")
    msub = models.add_subparsers(dest="what", required=True)
    params = msub.add_parser("params", help="parameter counts of a system's config (instantiates it)")
    params.add_argument("system", nargs="?", default=None, help="a registered system (default: all with a report)")
    params.add_argument("--config", default=None, help="a config name or YAML path (default: the system's report)")
    models.set_defaults(func=cmd_models)

    plot = sub.add_parser("plot", help="figures of a trained model")
    psub = plot.add_subparsers(dest="what", required=True)
    routing = psub.add_parser(
        "routing", help="heatmap of the active expert frequency per gloss (Sign-MExD's Fig. 3) as a PNG"
    )
    routing.add_argument("--model", required=True, help="pipeline folder or repo id of a mixture-of-experts model")
    routing.add_argument("--gloss", required=True, help="space-separated glosses to sign")
    routing.add_argument("--out", required=True, help="output .png file")
    routing.add_argument("--layer", type=int, default=-1, help="which MoE layer, in block order (default: the last)")
    routing.add_argument("--num-inference-steps", type=int, default=None, help="default: the pipeline's")
    routing.add_argument("--seed", type=int, default=0)
    plot.set_defaults(func=cmd_plot)

    sk = sub.add_parser("skeletons", help="describe the registered skeletons")
    sk.add_argument("name", nargs="?", default=None)
    sk.set_defaults(func=cmd_skeletons)

    from .demo import DEFAULT_GLOSS, DEFAULT_SYSTEM, DEFAULT_TEXT

    demo = sub.add_parser(
        "demo",
        help="text in, signing out: trains a system once (cached as a repo id in the HF cache), then GIF/MP4/.pose",
        description="Sign a sentence with the --system pipeline cached as --repo-id in the Hugging Face cache. "
        "The first run builds SynthSign, trains --config (default: the system's demo config; an interrupted run "
        "continues from its checkpoints) and caches it; later runs load it by repo id, offline, in seconds.",
    )
    demo.add_argument(
        "--text",
        default=None,
        help=f"sentence to sign, or glosses for a gloss-conditioned system (default: {DEFAULT_TEXT!r}; "
        f"{DEFAULT_GLOSS!r} for a gloss-conditioned system)",
    )
    demo.add_argument("--system", default=DEFAULT_SYSTEM, choices=[s.name for s in list_systems(generators_only=True)],
                      help=f"system to sign with (default: {DEFAULT_SYSTEM})")
    demo.add_argument(
        "--config", default=None, help="config to train when nothing is cached (default: the system's demo config)"
    )
    demo.add_argument(
        "--repo-id", default=None, help="repo id to cache the model as and load it by (default: the system's)"
    )
    demo.add_argument(
        "--out", default="outputs/demo", help="output folder for <slug>.gif, .mp4, .pose (default: outputs/demo)"
    )
    demo.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    demo.add_argument("--retrain", action="store_true", help="ignore the cached model and train again from scratch")
    demo.add_argument(
        "--data-dir",
        default="outputs/synthsign",
        help="SynthSign folder, built if missing (default: outputs/synthsign)",
    )
    demo.add_argument("--work-dir", default=None, help="training folder (default: outputs/SYSTEM-CONFIG)")
    demo.set_defaults(func=cmd_demo)

    add_convert_command(sub)  # hf_sign.convert.command
    add_hub_commands(sub)  # hf_sign.cli_hub: publish, hub
    add_evaluate_command(sub)  # hf_sign.evaluation.evaluate_command
    add_finetune_command(sub)  # hf_sign.training.finetune_command
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, ImportError) as err:
        # User errors (bad input, missing or unwritable files, an uncached repo offline, missing extras): one line.
        print(f"hf-sign: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`hf-sign evaluate`: score pose sequences made by any system with the benchmark's own tables.

    hf-sign evaluate --predictions [NAME=]DIR|FILE [--predictions ...] --dataset DIR|REPO [--split test] --out DIR
        [--conventions soke,progressive-transformers,slrtp,pose-evaluation] [--evaluator DIR] [--allow-missing]
        [--no-baselines] [--num-examples N] [--batch-size N] [--device D]

Each `--predictions` source (layouts: `hf_sign.evaluation.predictions_io`) becomes one row of the tables, after the
Ground Truth and baseline rows, scored by `hf_sign.evaluation.harness.run_benchmark` exactly as a pipeline row is:
loading the files replaces the generation step. Back-translation, FID and SiCLIP need the evaluator models of the
corpus (`--evaluator DIR`); without it they are trained into `OUT/evaluators` as `hf-sign benchmark` does.

Missing predictions: by default a sample of the split without a readable prediction stops the run, after the list of
missing ids, extra ids and unreadable files is printed and written to `OUT/predictions_report.json`. With
`--allow-missing` the tables are scored on the samples every source covers (every row, Ground Truth and baselines
included, on the same subset), and the notes under the tables say how many samples were left out.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from .conventions import CONVENTIONS, parse_conventions

__all__ = ["add_evaluate_command", "evaluate_predictions", "parse_prediction_sources"]

REPORT_FILE = "predictions_report.json"


def parse_prediction_sources(specs: Sequence[str]) -> Dict[str, str]:
    """`["NAME=PATH", "PATH", ...]` -> `{NAME: PATH}`; a bare PATH is named after its file or folder (stem)."""
    from .harness import parse_named_paths

    out = parse_named_paths(specs, "--predictions", "a folder, .npz or .parquet file", name_of=lambda path: path.stem)
    if not out:
        raise ValueError("`--predictions` is required: a folder, .npz or .parquet file of generated sequences.")
    return out


def _summary(report) -> str:
    parts = [f"{report.name}: {len(report.matched)} matched"]
    for what, items in (("missing", report.missing), ("extra", report.extra), ("unreadable", report.unreadable)):
        if items:
            shown = ", ".join(list(items)[:5]) + (" ..." if len(items) > 5 else "")
            parts.append(f"{len(items)} {what} ({shown})")
    return "; ".join(parts)


def evaluate_predictions(
    predictions: Dict[str, str],
    dataset,
    out_dir,
    split: str = "test",
    conventions: Sequence[str] = ("soke",),
    evaluator_dir: Optional[str] = None,
    allow_missing: bool = False,
    baselines: bool = True,
    train_evaluators: Optional[Callable[..., Any]] = None,
    **benchmark_kwargs,
) -> Dict[str, Any]:
    """Load every predictions source, report what matched, and score them with `run_benchmark`.

    Args:
        predictions (`Dict[str, str]`): row name -> folder / `.npz` / `.parquet` of generated sequences.
        dataset (`str`): hf-sign corpus folder or Hub id.
        out_dir (`str`): output folder (tables, `predictions_report.json`).
        split (`str`, *optional*, defaults to `"test"`): the split the predictions answer.
        conventions (`Sequence[str]`, *optional*, defaults to `("soke",)`): pose-error conventions.
        evaluator_dir (`str`, *optional*): evaluator models of the corpus (else trained, as in `run_benchmark`).
        allow_missing (`bool`, *optional*, defaults to `False`): score the samples every source covers instead of
            refusing when some are missing or unreadable.
        baselines (`bool`, *optional*, defaults to `True`): include the baseline rows.
        train_evaluators (`Callable`, *optional*): evaluator trainer, passed to `run_benchmark`.
        **benchmark_kwargs: other `run_benchmark` arguments (`batch_size`, `num_examples`, `device`, ...).

    Returns:
        `dict`: the `run_benchmark` results, with the predictions reports under `"predictions"`.
    """
    from .harness import load_eval_data, run_benchmark
    from .predictions_io import load_predictions

    conventions = parse_conventions(conventions)
    data = load_eval_data(dataset, split)
    ids = [str(r["id"]) for r in data["rows"]]
    loaded, reports = {}, []
    for name, source in predictions.items():
        loaded[name], report = load_predictions(source, name, ids, data["spec"], data["fps"])
        reports.append(report)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_FILE).write_text(json.dumps([asdict(r) for r in reports], indent=2, ensure_ascii=False) + "\n")
    for report in reports:
        print(_summary(report))
        for sid, reason in list(report.unreadable.items())[:5]:
            print(f"  unreadable {sid}: {reason}")
    covered = [sid for sid in ids if all(sid in by_id for by_id in loaded.values())]
    if len(covered) < len(ids) and not allow_missing:
        raise ValueError(
            f"{len(ids) - len(covered)} of the {len(ids)} {split!r} samples have no readable prediction ("
            + "; ".join(_summary(r) for r in reports)
            + f"); see {out / REPORT_FILE}. Pass --allow-missing to score the {len(covered)} covered samples."
            + "".join(f" Unreadable {sid}: {why}" for r in reports for sid, why in list(r.unreadable.items())[:3])
        )
    if not covered:
        raise ValueError(f"No {split!r} sample is covered by every predictions source; see {out / REPORT_FILE}.")
    notes = [
        f"{r.name}: predictions read from `{r.source}` ({r.layout}); {len(r.matched)} matched, {len(r.missing)} "
        f"missing, {len(r.unreadable)} unreadable, {len(r.extra)} extra"
        + (f", {len(r.resampled)} resampled to {data['fps']:g} fps" if r.resampled else "")
        + (f", {len(r.converted)} converted to `{data['spec'].name}`" if r.converted else "")
        + (
            f"; {sum(r.filled_keypoints.values())} keypoints never detected or absent in {len(r.filled_keypoints)} "
            "file(s), placed on their nearest detected ancestor"
            if r.filled_keypoints
            else ""
        )
        + "."
        for r in reports
    ]
    if len(covered) < len(ids):
        notes.append(f"--allow-missing: every row is scored on the {len(covered)} of {len(ids)} samples covered.")
    results = run_benchmark(
        dataset,
        split=split,
        baselines=baselines,
        evaluator_dir=evaluator_dir,
        out_dir=out,
        conventions=conventions,
        predictions=loaded,
        sample_ids=covered if len(covered) < len(ids) else None,
        extra_notes=notes,
        train_evaluators=train_evaluators,
        **benchmark_kwargs,
    )
    results["predictions"] = [asdict(r) for r in reports]
    return results


def _train_evaluators(dataset_dir, output_dir, config="default", seed=None):
    """The evaluator trainer, reached through the system registry (evaluation never imports training)."""
    from ..systems import get_system

    return get_system("evaluator").run_training(dataset_dir, output_dir, config=config, seed=seed)


def cmd_evaluate(args: argparse.Namespace) -> int:
    train_evaluators = _train_evaluators if args.evaluator is None else None
    results = evaluate_predictions(
        parse_prediction_sources(args.predictions),
        args.dataset,
        args.out,
        split=args.split,
        conventions=parse_conventions(args.conventions),
        evaluator_dir=args.evaluator,
        allow_missing=args.allow_missing,
        baselines=args.baselines,
        train_evaluators=train_evaluators,
        evaluator_config=args.evaluator_config,
        num_examples=args.num_examples,
        batch_size=args.batch_size,
        device=args.device,
    )
    print((Path(args.out) / "results.md").read_text(encoding="utf-8"))
    print(f"wrote {args.out}/results.md, results.json, per_sample.csv, {REPORT_FILE} ({results['total_seconds']} s)")
    return 0


def add_evaluate_command(sub) -> None:
    """Register `evaluate` on the `hf-sign` subparsers `sub`."""
    ev = sub.add_parser("evaluate", help="score generated sequences from any system with the benchmark's tables")
    ev.add_argument(
        "--predictions",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="folder of ID.pose/ID.npz/ID.npy, or one .npz/.parquet keyed by sample id (repeatable)",
    )
    ev.add_argument("--dataset", required=True, help="hf-sign corpus folder or Hub id")
    ev.add_argument("--split", default="test", help="split the predictions answer (default: test)")
    ev.add_argument("--out", required=True, help="output folder")
    ev.add_argument(
        "--conventions", default="soke", help=f"comma-separated pose-error conventions of {', '.join(CONVENTIONS)}"
    )
    ev.add_argument("--evaluator", default=None, metavar="DIR", help="trained evaluators (default: train into OUT)")
    ev.add_argument("--evaluator-config", default="default", help="config of evaluators trained here")
    ev.add_argument(
        "--allow-missing",
        action="store_true",
        help="score the samples with predictions instead of refusing when some are missing or unreadable",
    )
    ev.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True, help="baseline rows")
    ev.add_argument("--num-examples", type=int, default=3, help="samples rendered to OUT/examples")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--device", default=None, help="device of the evaluators (default: cuda if available)")
    ev.set_defaults(func=cmd_evaluate)

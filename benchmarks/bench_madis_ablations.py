"""MaDiS ablations at an equal budget, as the paper's Tables 2-4: the pretraining levels, the unmasking strategy
(UTC vs none vs contiguous pivots) and the sign embedding (MoP vs average).

Every variant starts from the same trained tokenizers (the `part_vqvae/`, `normalizer/` and `text_tokenizer/` of a
MaDiS run, `--tokenizers`), so their sign tokens, and with them SiBLEU, are comparable, and trains the LM stages with
the same epochs (`--pretrain-epochs`, `--sft-epochs`) through the registry (`hf-sign train madis --stage ...`):

* Table 2, pretraining levels, each followed by the default fine-tuning: `token` (sign tokens masked only),
  `+text` (text masked too), `+latent` (`L_lat`), `+physical` (`L_phy`, the full MaDiS pretraining);
* Table 3, unmasking, fine-tuned from the full pretraining: `uniform` (UTC), `none` (vanilla), `contiguous`;
* Table 4, sign embedding, fine-tuned from the full pretraining: `mop`, `average`.

The paper's default variant (`+physical`, `uniform`, `mop`) is trained once and shared by the three tables. Each
level sets both pretraining weights explicitly, so the rows mean the same whatever `--config` pretrains with. Each
variant is scored by the benchmark harness on `--split` (validation by default: ablations inform choices, and choices
are made on validation) with one evaluator folder. Writes `OUT/ablations.md` and `OUT/ablations.json`.

`--default-run RUN` reuses a full MaDiS run (`hf-sign train madis --config CONFIG`): its pretrained LM is the
pretraining of the level it was trained at (`+physical` for `paper`, `+latent` for `small`) and the run itself is that
level's `uniform` row, so that at the config's own budget one pretraining and fine-tuning fewer are trained. Its config
must be `--config`'s with these epochs, and it supplies the tokenizers (`--tokenizers` may be left out).

    python benchmarks/bench_madis_ablations.py --dataset DATA (--tokenizers RUN | --default-run RUN)
        --evaluators EVALS --out OUT [--config small] [--pretrain-epochs 4] [--sft-epochs 6] [--split validation]
        [--max-samples N] [--tables 2 3 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any, Dict

from hf_sign.evaluation.harness import run_benchmark
from hf_sign.systems import get_system
from hf_sign.training.madis_trainer import full_config

TOKENIZER_OUTPUTS = ("part_vqvae", "normalizer", "text_tokenizer", "madis_metrics.json")
PRETRAINING = {  # (mask_text, latent_loss_weight, physical_loss_weight) of each level, Table 2 top to bottom
    level: {
        "pretraining.mask_text": mask_text,
        "pretraining.latent_loss_weight": latent,
        "pretraining.physical_loss_weight": physical,
    }
    for level, (mask_text, latent, physical) in {
        "token": (False, 0.0, 0.0),
        "+text": (True, 0.0, 0.0),
        "+latent": (True, 1.0, 0.0),
        "+physical": (True, 1.0, 1.0),
    }.items()
}
FINE_TUNING = {
    "uniform": {},
    "none": {"scheduler.pivot_mode": "none"},
    "contiguous": {"scheduler.pivot_mode": "contiguous"},
    "average": {"lm.sign_embedding": "average"},
}
TABLES = {  # rows: (pretraining, fine-tuning, what the row's second column shows)
    2: (
        "Table 2: pretraining levels",
        [("token", "uniform", "UTC, MoP"), ("+text", "uniform", "UTC, MoP"), ("+latent", "uniform", "UTC, MoP"),
         ("+physical", "uniform", "UTC, MoP")],
    ),
    3: (
        "Table 3: unmasking with temporal checkpoints",
        [("+physical", "none", "none (vanilla)"), ("+physical", "contiguous", "contiguous"),
         ("+physical", "uniform", "uniform (UTC)")],
    ),
    4: ("Table 4: sign embedding", [("+physical", "average", "average"), ("+physical", "uniform", "MoP")]),
}
METRICS = (  # (key, header, decimals)
    ("dtw_jpe_body", "DTW-JPE Body ↓ (mm)", 2),
    ("dtw_jpe_hands", "DTW-JPE Hands ↓ (mm)", 2),
    ("sibleu_body", "SiBLEU Body ↑", 2),
    ("sibleu_hands", "SiBLEU Hands ↑", 2),
    ("siclip_r1", "SiCLIP R@1 ↑", 1),
    ("bleu1", "BLEU-1 ↑", 2),
    ("bleu4", "BLEU-4 ↑", 2),
    ("fid", "FID ↓", 3),
)


def seed_folder(tokenizers: Path, folder: Path) -> None:
    """A variant's output folder holding the shared tokenizers (the tokenizer stage's outputs)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_OUTPUTS:
        src, dst = tokenizers / name, folder / name
        if not src.exists():
            raise ValueError(f"`--tokenizers` {tokenizers} has no {name}: pass a MaDiS run's output folder.")
        if dst.exists():
            continue
        if name == "madis_metrics.json":  # the tokenizer stage's metrics only: the LM stages have not run here
            metrics = json.loads(src.read_text(encoding="utf-8"))
            kept = {k: v for k, v in metrics.items() if k.startswith(("tokenizer_", "text_tokenizer_"))}
            dst.write_text(json.dumps(kept, indent=2), encoding="utf-8")
        elif src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)


def _config_differences(a: Any, b: Any, prefix: str = "") -> list:
    """Dotted keys whose values differ between two resolved configs (`train_stages` aside: a stage list, not a
    hyperparameter)."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted((set(a) | set(b)) - {"train_stages"})
        return [d for k in keys for d in _config_differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def adopt_default_run(args) -> str:
    """Seed `OUT` with `--default-run`: its pretrained LM as the pretraining of the level it was trained at and itself
    as that level's `uniform` run; returns the level. Refuses a run whose config is not `--config` at this budget (its
    row would not be comparable) or that lacks a stage's output."""
    run, out = Path(args.default_run), Path(args.out)
    config_file = run / "madis_config.json"
    for needed in (config_file, run / "pretrained_lm" / "config.json", run / "model_index.json"):
        if not needed.is_file():
            raise ValueError(f"`--default-run` {run} has no {needed.relative_to(run)}: pass a full MaDiS run folder.")
    budget = {"pretraining.num_train_epochs": args.pretrain_epochs, "sft.num_train_epochs": args.sft_epochs}
    trained = json.loads(config_file.read_text(encoding="utf-8"))
    differ = _config_differences(trained, full_config(args.config, budget))
    if differ:
        raise ValueError(
            f"`--default-run` {run} was not trained with the {args.config!r} config at {args.pretrain_epochs:g} + "
            f"{args.sft_epochs:g} epochs: {', '.join(differ)} differ(s). Pass the epochs it used, or leave it out."
        )
    pretraining = trained["pretraining"]
    level = next(
        (
            name
            for name, overrides in PRETRAINING.items()
            if all(pretraining[key.split(".", 1)[1]] == value for key, value in overrides.items())
        ),
        None,
    )
    if level is None:
        raise ValueError(f"`--default-run` {run} pretrains at none of Table 2's levels ({', '.join(PRETRAINING)}).")
    folder = level.lstrip("+")
    pre_dir = out / "pretrain" / folder
    seed_folder(run, pre_dir)
    if not (pre_dir / "pretrained_lm").exists():
        shutil.copytree(run / "pretrained_lm", pre_dir / "pretrained_lm")
    default = out / "runs" / f"{folder}-uniform"
    if not default.exists():
        shutil.copytree(run, default, ignore=shutil.ignore_patterns("checkpoints"))
    return level


def train_variants(args, tables) -> Dict[str, Path]:
    """Train what `tables` need; returns `{"<pretraining>/<fine-tuning>": pipeline folder}`."""
    system = get_system("madis")
    out, tokenizers = Path(args.out), Path(args.tokenizers)
    budget = {"pretraining.num_train_epochs": args.pretrain_epochs, "sft.num_train_epochs": args.sft_epochs}
    needed = sorted({(pre, ft) for t in tables for pre, ft, _ in TABLES[t][1]})
    folders = {}
    for pre in sorted({p for p, _ in needed}):
        pre_dir = out / "pretrain" / pre.lstrip("+")
        if not (pre_dir / "pretrained_lm" / "config.json").is_file():
            seed_folder(tokenizers, pre_dir)
            system.run_training(
                args.dataset, pre_dir, config=args.config, stage="pretrain", overrides={**budget, **PRETRAINING[pre]}
            )
        for pre_name, ft in needed:
            if pre_name != pre:
                continue
            run = out / "runs" / f"{pre.lstrip('+')}-{ft}"
            if not (run / "model_index.json").is_file():
                seed_folder(tokenizers, run)
                if not (run / "pretrained_lm").exists():
                    shutil.copytree(pre_dir / "pretrained_lm", run / "pretrained_lm")
                system.run_training(
                    args.dataset,
                    run,
                    config=args.config,
                    stage="sft",
                    overrides={**budget, **PRETRAINING[pre], **FINE_TUNING[ft]},
                )
            folders[f"{pre}/{ft}"] = run
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--tokenizers", help="a MaDiS run folder with the trained tokenizers (default: --default-run)")
    parser.add_argument("--evaluators", required=True, help="trained evaluator folder (hf-sign train evaluator)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", default="small")
    parser.add_argument("--pretrain-epochs", type=float, default=4.0)
    parser.add_argument("--sft-epochs", type=float, default=6.0)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--tables", type=int, nargs="+", default=[2, 3, 4], choices=sorted(TABLES))
    parser.add_argument(
        "--default-run", default=None, help="a full MaDiS run to reuse as its pretraining level's `uniform` row"
    )
    args = parser.parse_args()
    if args.default_run is not None:
        if args.tokenizers is None:
            args.tokenizers = args.default_run
        elif Path(args.tokenizers).resolve() != Path(args.default_run).resolve():
            parser.error("`--default-run` supplies the tokenizers: leave `--tokenizers` out or pass the same folder.")
        adopt_default_run(args)
    elif args.tokenizers is None:
        parser.error("pass `--tokenizers` (a MaDiS run with trained tokenizers) or `--default-run`.")

    folders = train_variants(args, args.tables)
    results = run_benchmark(
        args.dataset,
        split=args.split,
        models={name: str(path) for name, path in folders.items()},
        baselines=False,
        evaluator_dir=args.evaluators,
        out_dir=Path(args.out) / "benchmark",
        max_samples=args.max_samples,
        num_examples=0,
    )
    scores: Dict[str, Dict[str, Any]] = {s["name"]: s["metrics"] for s in results["systems"]}
    lines = [
        f"# MaDiS ablations (`{args.config}` LM, {args.pretrain_epochs:g} pretraining + {args.sft_epochs:g} "
        f"fine-tuning epochs per variant; {args.split} split, {results['num_samples']} samples)",
        "",
    ]
    for t in args.tables:
        title, rows = TABLES[t]
        lines += [
            title,
            "",
            "| pretraining | unmasking / embedding | " + " | ".join(h for _, h, _ in METRICS) + " |",
            "|---|---|" + "---:|" * len(METRICS),
        ]
        for pre, ft, shown in rows:
            m = scores[f"{pre}/{ft}"]
            cells = ["–" if m.get(k) is None else f"{m[k]:.{d}f}" for k, _, d in METRICS]
            lines.append(f"| {pre} | {shown} | " + " | ".join(cells) + " |")
        lines.append("")
    Path(args.out, "ablations.md").write_text("\n".join(lines), encoding="utf-8")
    Path(args.out, "ablations.json").write_text(json.dumps(scores, indent=2), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Sign-SALD ablation study (the paper's Table 3) on SynthSign at small scale, in one script.

Trains one Sign-SALD pipeline per variant (dotted config overrides of `train_sign_sald`), evaluates all of them in
a single `run_benchmark` call (same test samples, seeds and evaluators for every row) and prints a Markdown table in
the paper's Table 3 row order, also written to `OUT/ablations.md` (the harness' own `results.md/json` are in
`OUT/benchmark/`).

    python benchmarks/bench_sign_sald_ablations.py [--config small] [--dataset DIR] [--evaluator DIR]
        [--out outputs/bench_ablations] [--variants full,no_crossattn,j5] [--max-samples N]
        [--num-inference-steps N] [--set ldm_training.num_train_epochs=5 ...] [--seed 0] [--baselines]

Variants: full, no_stlatent, no_crossattn, no_tempattn, no_skelattn, j5, j9, no_stlatent_crossattn (J'=7 is the
full model). Denoiser-only variants reuse the Full model's VAE (stage `vae` runs once in `OUT/full`; its `vae/`,
`normalizer/` and metrics are copied and only stage `ldm` is trained); VAE-changing variants train both stages.
A variant folder with `model_index.json` is not retrained, so an interrupted run resumes where it stopped.
The "train min" column counts both stages, the shared VAE included, i.e. what that model costs to train alone.

Defaults: `--dataset` builds the default SynthSign corpus into `outputs/synthsign` if missing; `--evaluator`
trains the evaluators (config `default`) into `OUT/evaluators` if missing. The full `small` run takes roughly
(number of variants) x 15-20 min on 2 CPU cores (8 variants: 2-2.5 h, less the VAE stages saved by sharing);
`--set ldm_training.num_train_epochs=2` or `--variants` shorten it. Smoke test (tiny corpus, tiny config):

    python benchmarks/bench_sign_sald_ablations.py --config tiny --dataset D --evaluator E --max-samples 2 \\
        --num-inference-steps 2 --variants full,no_crossattn,j5 --out /tmp/ablations
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

from hf_sign.evaluation.harness import run_benchmark
from hf_sign.training.config_utils import parse_overrides
from hf_sign.training.sign_sald_trainer import train_sign_sald

# key -> (row label, overrides, changes the VAE). Dict order is the paper's Table 3 row order.
VARIANTS: Dict[str, tuple] = {
    "no_stlatent": ("w/o ST-Latent", {"vae.skeleton_aware": False}, True),
    # guided cross-attention (on in `small`) has nothing to guide without cross-attention
    "no_crossattn": (
        "w/o CrossAttn",
        {"denoiser.use_cross_attention": False, "ldm_training.attention_guidance_weight": 0.0},
        False,
    ),
    "no_tempattn": ("w/o TempAttn", {"denoiser.use_temporal_attention": False}, False),
    "no_skelattn": ("w/o SkelAttn", {"denoiser.use_skeletal_attention": False}, False),
    "j5": ("J'=5", {"vae.num_atomic_joints": 5}, True),
    "j9": ("J'=9", {"vae.num_atomic_joints": 9}, True),
    "no_stlatent_crossattn": (
        "w/o ST-Latent + CrossAttn",
        {
            "vae.skeleton_aware": False,
            "denoiser.use_cross_attention": False,
            "ldm_training.attention_guidance_weight": 0.0,
        },
        True,
    ),
    "full": ("Full model (J'=7)", {}, False),
}
# What stage `ldm` reads from its output folder besides the config: the trained VAE (with its scaling factor), the
# fitted pose normalizer, and the metrics file (kept so the VAE's time and validation error stay with the variant).
SHARED_VAE_FILES = ("vae", "normalizer", "sign_sald_metrics.json")
COLUMNS = [("bleu4", "BLEU-4 ↑", 2), ("rouge_l", "ROUGE-L ↑", 2), ("fid", "FID ↓", 3),
           ("dtw_jpe_body", "DTW-JPE Body ↓ (mm)", 1), ("dtw_jpe_hands", "DTW-JPE Hands ↓ (mm)", 1)]


def _train_minutes(folder: Path) -> Optional[float]:
    """Both stages' training time (minutes) from the trainer's `sign_sald_metrics.json`."""
    path = folder / "sign_sald_metrics.json"
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    return (m.get("vae_seconds", 0.0) + m.get("ldm_seconds", 0.0)) / 60.0


def train_variants(
    keys: List[str], dataset: str, out: Path, config: str, seed: int, extra: Dict[str, Any]
) -> Dict[str, Path]:
    """Train (or reuse) every variant in `keys`; returns key -> pipeline folder.

    Args:
        keys (`List[str]`): keys of `VARIANTS`.
        dataset (`str`): hf-sign corpus folder.
        out (`Path`): the benchmark's output folder; variant `k` lives in `out / k`.
        config (`str`): Sign-SALD config name or YAML path.
        seed (`int`): training seed (the same for every variant so only the ablated component differs).
        extra (`Dict[str, Any]`): `--set` overrides applied to every variant (after the variant's own).
    """
    full = out / "full"
    folders = {}
    for key in keys:
        label, overrides, changes_vae = VARIANTS[key]
        folder = out / key
        folders[key] = folder
        if (folder / "model_index.json").is_file():
            print(f"[ablations] {label}: reusing {folder}", flush=True)
            continue
        print(f"[ablations] {label}: training in {folder}", flush=True)
        overrides = {**overrides, **extra}
        if changes_vae:
            train_sign_sald(dataset, folder, config, seed=seed, overrides=overrides)
            continue
        # Denoiser-only variant: the VAE is the Full model's, trained once (only the VAE sections of the config
        # matter for it, and those are the same for every denoiser-only variant).
        if not (full / "vae" / "config.json").is_file():
            print(f"[ablations] training the shared Full-model VAE in {full}", flush=True)
            train_sign_sald(dataset, full, config, stage="vae", seed=seed, overrides=extra)
        if folder != full:
            # A previous interrupted ldm run may have left a partial folder: start it again from the shared VAE.
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for name in SHARED_VAE_FILES:
                src = full / name
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, folder / name)
        train_sign_sald(dataset, folder, config, stage="ldm", seed=seed, overrides=overrides)
    return folders


def format_table(results: Dict[str, Any], labels: List[str], minutes: Dict[str, Optional[float]]) -> str:
    """Markdown table of the ablation rows (then any baseline / ground-truth rows) from `run_benchmark`'s result."""
    by_name = {s["name"]: s for s in results["systems"]}
    order = labels + [n for n in by_name if n not in labels]
    lines = ["| Method | " + " | ".join(c[1] for c in COLUMNS) + " | train min |",
             "|---|" + "---:|" * (len(COLUMNS) + 1)]
    for name in order:
        m = by_name[name]["metrics"]
        cells = ["–" if m.get(k) is None else f"{m[k]:.{d}f}" for k, _, d in COLUMNS]
        t = minutes.get(name)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'–' if t is None else f'{t:.2f}'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default=None, help="hf-sign corpus (default: SynthSign in outputs/synthsign)")
    parser.add_argument("--evaluator", default=None, help="evaluator folder (default: trained into OUT/evaluators)")
    parser.add_argument("--config", default="small", help="Sign-SALD config: small, tiny or a YAML path")
    parser.add_argument("--out", default="outputs/bench_ablations")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)}"
    )
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate the first N test samples only")
    parser.add_argument("--num-inference-steps", type=int, default=None, help="DDIM steps (default: the pipeline's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baselines", action="store_true", help="also evaluate the harness' baselines")
    args = parser.parse_args()

    keys = [k.strip() for k in args.variants.split(",") if k.strip()]
    unknown = [k for k in keys if k not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    keys = [k for k in VARIANTS if k in keys]  # paper order, whatever order they were given in
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    dataset = args.dataset
    if dataset is None:
        dataset = "outputs/synthsign"
        if not (Path(dataset) / "data").is_dir():
            from hf_sign.data.synthsign import build_synthsign

            print(f"[ablations] building SynthSign (default sizes) in {dataset}", flush=True)
            build_synthsign(dataset)
    evaluator = args.evaluator
    if evaluator is None:
        evaluator = str(out / "evaluators")
        if not all((Path(evaluator) / d).is_dir() for d in ("recognizer", "contrastive")):
            from hf_sign.training.evaluator_trainer import train_evaluators

            print(f"[ablations] training evaluators (config default) in {evaluator}", flush=True)
            train_evaluators(dataset, evaluator, config="default")

    folders = train_variants(keys, dataset, out, args.config, args.seed, parse_overrides(args.set))
    labels = [VARIANTS[k][0] for k in keys]
    print("[ablations] evaluating", ", ".join(labels), flush=True)
    results = run_benchmark(
        dataset, split="test", models={VARIANTS[k][0]: str(folders[k]) for k in keys}, baselines=args.baselines,
        evaluator_dir=evaluator, out_dir=out / "benchmark", max_samples=args.max_samples,
        num_inference_steps=args.num_inference_steps, seed=args.seed, show_progress=True,
    )
    # Denoiser-only variants carry the shared VAE's time in their copied metrics file (see SHARED_VAE_FILES).
    minutes = {VARIANTS[k][0]: _train_minutes(folders[k]) for k in keys}
    table = format_table(results, labels, minutes)
    header = (f"Sign-SALD ablations (paper Table 3), config '{args.config}', {results['num_samples']} "
              f"{results['split']} samples of {results['dataset_name']}, DDIM steps: "
              f"{args.num_inference_steps or 'pipeline default'}, overrides: {args.set or 'none'}")
    (out / "ablations.md").write_text(header + "\n\n" + table + "\n", encoding="utf-8")
    print()
    print(header)
    print()
    print(table)


if __name__ == "__main__":
    main()

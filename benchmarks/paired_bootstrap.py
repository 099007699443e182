"""Paired bootstrap of a back-translation BLEU difference between two systems of one benchmark run (Koehn, 2004).

Corpus BLEU-4 of a few percent on a hundred sentences hangs on a handful of matching 4-grams, so a difference between
two rows of a results table may be noise. This resamples the sentences with replacement (the same draw for both
systems), recomputes both corpus scores exactly as the harness does (`corpus_bleu`, `tokenize="none"`, on the
recogniser's glosses in `per_sample.csv`) and reports the difference B - A: its mean, its 95% interval and how often B
scores below and above A (the rest are ties, common when both corpus scores are 0).

    python benchmarks/paired_bootstrap.py OUT/per_sample.csv "SYSTEM A" "SYSTEM B" [--order 4] [--samples 1000]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from hf_sign.evaluation.text_metrics import corpus_bleu


def read_glosses(per_sample_csv: Path, system: str) -> Tuple[List[str], List[str]]:
    """`(hypotheses, references)` of `system`, in sample order."""
    with open(per_sample_csv, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["system"] == system]
    if not rows:
        raise ValueError(f"{per_sample_csv} has no rows of system {system!r}.")
    rows.sort(key=lambda r: int(r["index"]))
    return [r["hypothesis_gloss"] for r in rows], [r["reference_gloss"] for r in rows]


def paired_bootstrap(
    hyps_a: List[str], hyps_b: List[str], references: List[str], order: int = 4, samples: int = 1000, seed: int = 0
) -> Dict[str, float]:
    """BLEU-`order` of A and B on all sentences, and the bootstrap distribution of B - A."""
    if not (len(hyps_a) == len(hyps_b) == len(references)) or not references:
        raise ValueError("`hyps_a`, `hyps_b` and `references` must be non-empty and of one length.")

    def bleu(hyps, idx):
        return corpus_bleu([hyps[i] for i in idx], [references[i] for i in idx], order, tokenize="none")

    rng = np.random.default_rng(seed)
    n = len(references)
    diffs = []
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        diffs.append(bleu(hyps_b, idx) - bleu(hyps_a, idx))
    diffs = np.asarray(diffs)
    low, high = np.percentile(diffs, [2.5, 97.5])
    everything = range(n)
    return {
        "a": bleu(hyps_a, everything),
        "b": bleu(hyps_b, everything),
        "mean_difference": float(diffs.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "p_b_below_a": float((diffs < 0).mean()),
        "p_b_above_a": float((diffs > 0).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("per_sample_csv", type=Path)
    parser.add_argument("system_a")
    parser.add_argument("system_b")
    parser.add_argument("--order", type=int, default=4, help="BLEU order (4: BLEU-4)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    hyps_a, refs = read_glosses(args.per_sample_csv, args.system_a)
    hyps_b, refs_b = read_glosses(args.per_sample_csv, args.system_b)
    if refs != refs_b:
        raise ValueError(f"{args.system_a!r} and {args.system_b!r} were not scored on the same references.")
    r = paired_bootstrap(hyps_a, hyps_b, refs, args.order, args.samples, args.seed)
    print(
        f"BLEU-{args.order}: A {r['a']:.2f}, B {r['b']:.2f}; B - A over {args.samples} resamples of "
        f"{len(refs)} sentences: mean {r['mean_difference']:.2f}, 95% interval [{r['ci_low']:.2f}, "
        f"{r['ci_high']:.2f}], B below A in {100 * r['p_b_below_a']:.1f}%, above in {100 * r['p_b_above_a']:.1f}%"
    )


if __name__ == "__main__":
    main()

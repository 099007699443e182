"""A corpus whose train split joins the train splits of several hf-sign corpora (validation and test from the last).

Used to train evaluators that know every signer style a table compares: after `hf-sign finetune` adapts a model to
a new signer, the recogniser and contrastive model that score base and adapted models alike should have seen both
the corpus signers and the new one, or the table partly measures which style the evaluators were trained on.

Rows keep every field; each train row's `id` gets the index of its corpus as a prefix (`0/train-00012`), so that
ids stay unique when the corpora sign the same sentences. The corpora must share their features (representation,
fps).

    python benchmarks/merge_corpora.py --corpus data/synthsign --corpus data/synthsign-slow --out data/synthsign-both
"""

from __future__ import annotations

import argparse
from pathlib import Path

from datasets import concatenate_datasets

from hf_sign.data.io import load_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", action="append", required=True, help="corpus folder (repeat; the last one gives "
                        "validation and test)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if len(args.corpus) < 2:
        parser.error("give at least two --corpus folders")
    corpora = [load_corpus(c) for c in args.corpus]
    features = corpora[-1]["train"].features
    for path, corpus in zip(args.corpus, corpora):
        if corpus["train"].features != features:
            raise SystemExit(f"{path}: its features differ from {args.corpus[-1]}'s; corpora must share them.")
    train = concatenate_datasets(
        [c["train"].map(lambda row, i=i: {"id": f"{i}/{row['id']}"}) for i, c in enumerate(corpora)]
    )
    out = Path(args.out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    train.to_parquet(str(out / "data" / "train-00000-of-00001.parquet"))
    for split in corpora[-1]:
        if split != "train":
            corpora[-1][split].to_parquet(str(out / "data" / f"{split}-00000-of-00001.parquet"))
    sizes = ", ".join(f"{len(c['train'])} from {p}" for p, c in zip(args.corpus, corpora))
    (out / "README.md").write_text(
        f"# Merged corpus\n\nWritten by `benchmarks/merge_corpora.py`. Train: {len(train)} rows ({sizes}). "
        f"Validation and test: those of {args.corpus[-1]}.\n",
        encoding="utf-8",
    )
    print(f"wrote {out}: train {len(train)} rows ({sizes}); validation and test of {args.corpus[-1]}")


if __name__ == "__main__":
    main()

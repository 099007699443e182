"""What a MaDiS tokenizer alone allows: a split's poses through a trained part-wise VQ-VAE (encode, then decode),
written as one `.npz` keyed by sample id for `hf-sign evaluate`. The LM can at best reproduce these tokens, so the
scores of the reconstructions are the ceiling of the system built on that tokenizer.

    python benchmarks/madis_tokenizer_ceiling.py --model runs/madis-small --dataset data/synthsign \
        --split validation --out runs/vq-small.npz
    hf-sign evaluate --predictions "VQ-VAE small=runs/vq-small.npz" --dataset data/synthsign --split validation \
        --evaluator runs/evaluators --out runs/vq-ceiling --no-baselines

`--model` is a MaDiS folder with `part_vqvae/` and `normalizer/` (a full pipeline, or the output of
`hf-sign train madis --stage tokenizer`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hf_sign.data.io import load_corpus
from hf_sign.data.normalization import PoseNormalizer
from hf_sign.models.madis import PartVQVAE


@torch.no_grad()
def reconstruct(model: Path, dataset: Path, split: str) -> dict:
    """`{sample id: (T, F) reconstruction}` of every row of `split`, cropped to the row's own length."""
    vqvae = PartVQVAE.from_pretrained(str(model / "part_vqvae")).eval()
    normalizer = PoseNormalizer.from_pretrained(str(model / "normalizer"))
    rows = load_corpus(dataset)[split]
    out = {}
    for row in tqdm(rows, desc=f"VQ-VAE {split}"):
        poses = torch.as_tensor(np.asarray(row["poses"], dtype=np.float32))
        codes = vqvae.encode(normalizer.normalize(poses).unsqueeze(0))
        decoded = normalizer.denormalize(vqvae.decode(codes)[0].float())
        out[row["id"]] = decoded[: poses.shape[0]].numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="folder with part_vqvae/ and normalizer/")
    parser.add_argument("--dataset", type=Path, required=True, help="hf-sign corpus folder")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arrays = reconstruct(args.model, args.dataset, args.split)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)
    print(f"wrote {len(arrays)} reconstructions to {args.out}")


if __name__ == "__main__":
    main()

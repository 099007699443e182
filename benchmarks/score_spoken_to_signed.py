"""Score another tool's output with `hf-sign evaluate`: `spoken-to-signed`'s fingerspelling on the test words.

For every word of the fingerspelling corpus' test split, the `spoken-to-signed` package's own fingerspelling pipeline
(`FingerspellingPoseLookup.lookup`: letter clips looked up in its lexicon, reduced to its drawing subset of
MediaPipe Holistic, shoulder-normalised, trimmed, smoothly concatenated and scaled to a 512 px frame) writes
`ID.pose`; `hf-sign evaluate` then scores the folder against the split, next to the Ground Truth and baseline rows.
Two rows: the package's default output (`ConcatenationSettings.is_reduce_holistic = True`, which drops the nose, eyes
and ears of POSE_LANDMARKS and most face points) and the same pipeline with `is_reduce_holistic = False`
("full holistic"), which keeps every point our `holistic` skeleton reads.

    python benchmarks/score_spoken_to_signed.py --dataset DATA/fingerspelling --out OUT [--evaluator DIR]
        [--conventions soke,progressive-transformers,slrtp,pose-evaluation]

Words the package cannot spell get no file: `hf-sign evaluate --allow-missing` lists them and scores every row on
the words both outputs cover. `--dataset` is built with `hf-sign data fingerspelling --out DIR` when it does not
exist. Without `--evaluator` the evaluators are trained into `OUT/scores/evaluators` (`hf-sign evaluate` does it,
config `default`, one thread).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
from pathlib import Path

from tqdm.auto import tqdm

from hf_sign.cli import main as hf_sign
from hf_sign.data.fingerspelling_clips import lexicon_root
from hf_sign.data.io import load_corpus


def spoken_language_of() -> dict:
    """Signed language -> the spoken language whose letters its lexicon rows spell."""
    out = {}
    with open(lexicon_root() / "index.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["signed_language"], row["spoken_language"])
    return out


def write_predictions(dataset: Path, split: str, out: Path, reduce_holistic: bool) -> dict:
    """One `ID.pose` per sample of `split`, made by spoken-to-signed's fingerspelling pipeline; returns the samples
    the package cannot spell (id -> its error), which get no file and are listed as missing by `hf-sign evaluate`."""
    from spoken_to_signed.gloss_to_pose.concatenate import ConcatenationSettings
    from spoken_to_signed.gloss_to_pose.lookup.fingerspelling_lookup import FingerspellingPoseLookup

    ConcatenationSettings.is_reduce_holistic = reduce_holistic
    lookup, spoken = FingerspellingPoseLookup(), spoken_language_of()
    out.mkdir(parents=True, exist_ok=True)
    rows, failed = load_corpus(str(dataset))[split], {}
    for row in tqdm(rows, desc=f"spoken-to-signed ({'reduced' if reduce_holistic else 'full'})", unit="word"):
        signed = row["language"]
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # the package prints each step
                pose = lookup.lookup(row["text"], row["text"], spoken[signed], signed).pose
        except (FileNotFoundError, KeyError) as err:  # a letter its lexicon lacks (e.g. accented Greek vowels)
            failed[row["id"]] = f"{type(err).__name__}: {err}"
            continue
        with open(out / f"{row['id']}.pose", "wb") as fh:
            pose.write(fh)
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="fingerspelling corpus folder (built when missing)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", required=True, help="output folder (predictions/ and scores/)")
    parser.add_argument("--evaluator", default=None, help="evaluators of the corpus (default: trained)")
    parser.add_argument("--conventions", default="soke,progressive-transformers,slrtp,pose-evaluation")
    args = parser.parse_args()

    dataset, out = Path(args.dataset), Path(args.out)
    if not dataset.exists():
        hf_sign(["data", "fingerspelling", "--out", str(dataset)])
    sources = []
    for reduce, name in ((True, "spoken-to-signed"), (False, "spoken-to-signed (full holistic)")):
        folder = out / "predictions" / ("reduced" if reduce else "full")
        failed = write_predictions(dataset, args.split, folder, reduce_holistic=reduce)
        print(f"{name}: {len(failed)} word(s) the package cannot spell: {failed}")
        sources += ["--predictions", f"{name}={folder}"]
    command = ["evaluate", *sources, "--dataset", str(dataset), "--split", args.split, "--out", str(out / "scores")]
    command += ["--conventions", args.conventions, "--num-examples", "2", "--allow-missing"]
    if args.evaluator:
        command += ["--evaluator", args.evaluator]
    else:  # held-out words: SiCLIP's text side reads characters
        command += ["--evaluator-config", "fingerspelling"]
    return hf_sign(command)


if __name__ == "__main__":
    raise SystemExit(main())

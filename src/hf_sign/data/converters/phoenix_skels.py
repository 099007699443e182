"""Converter for Progressive Transformers' PHOENIX-2014T skeleton files (`pt50`).

`hf-sign data convert phoenix-skels SRC --out DIR [--skip-invalid]`

Source layout (the `Data/tmp/{train,dev,test}` prefixes of Progressive Transformers'
`Configs/Base.yaml`, github.com/BenSaunders27/ProgressiveTransformersSLP)::

    SRC/train.skels  SRC/train.gloss  SRC/train.text  SRC/train.files
    SRC/dev.skels    SRC/dev.gloss    SRC/dev.text    SRC/dev.files      (-> validation split)
    SRC/test.skels   SRC/test.gloss   SRC/test.text   SRC/test.files

The four files of a split are line-aligned plain UTF-8 text, one sentence per line:

* `.skels`: space-separated floats, all frames of the sentence concatenated. Each frame is 151
  values: the 50 `pt50` joints x (x, y, z) (see `hf_sign.skeletons.pt50`) followed by PT's counter
  (the frame's progress through the sentence, rising from 0 towards 1). hf-sign keeps the 150
  coordinates unchanged (neck-centred, scaled and y-down as PT stores them) and drops the counter,
  which is derived from the frame index and length and so carries no pose information.
* `.gloss`: space-separated glosses (German Sign Language, upper case).
* `.text`: the German sentence.
* `.files`: the sentence id, e.g. `dev/11August_2010_Wednesday_tagesschau-2` (used as `id`).

Frame rate: 25 fps, PHOENIX-2014T's video rate (PT's `plot_videos.py` also writes 25 fps videos;
`skip_frames` > 1 in PT's config would lower it, but the files themselves are stored at full rate).
Language code `gsg`; signer ids are not in these files, so `signer` is empty.

A split whose four files are all absent is written empty (with a warning); at least one split must
exist. Errors name the file and line (and frame where relevant): a line whose number of values is
not a multiple of 151 (naming the incomplete frame), a value that is not a number, NaN/inf values,
an empty `.skels` or `.files` line. Those are per-sentence errors that `skip_invalid=True` skips with a
report in `DIR/skipped.jsonl`. A split with a missing file, or whose four files have different line
counts, cannot be aligned and always stops the conversion.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List

import numpy as np

from ..schema import make_sample
from .base import BuildItem, ConversionError, run_conversion

VALUES_PER_FRAME = 151  # 150 joint coordinates + 1 counter
NUM_COORDS = 150
FPS = 25.0
LANGUAGE = "gsg"
REPRESENTATION = "pt50"
SPLITS = {"train": "train", "dev": "validation", "test": "test"}
EXTENSIONS = ("skels", "gloss", "text", "files")


def _read_lines(path: Path) -> List[str]:
    """Lines of a text file; a final newline does not start an extra (empty) line."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def parse_skels_line(line: str, path: Path | str, line_no: int) -> np.ndarray:
    """Parse one `.skels` line into `(T, 150)` float32 coordinates, dropping each frame's counter.

    Args:
        line (`str`): the line's text.
        path (`Path` or `str`): the `.skels` file, for error messages.
        line_no (`int`): 1-based line number, for error messages.
    """
    where = f"{path} line {line_no}"
    tokens = line.split()
    if not tokens:
        raise ConversionError(f"{where} is empty; expected {VALUES_PER_FRAME} values per frame.")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        bad = next(i for i, tok in enumerate(tokens) if not _is_float(tok))
        raise ConversionError(
            f"{where}: value {bad} ({tokens[bad]!r}, frame {bad // VALUES_PER_FRAME}) is not a number."
        ) from None
    if values.size % VALUES_PER_FRAME:
        full = values.size // VALUES_PER_FRAME
        raise ConversionError(
            f"{where} has {values.size} values, not a multiple of {VALUES_PER_FRAME} "
            f"({NUM_COORDS} coordinates + 1 counter per frame): frame {full} is incomplete "
            f"({values.size - full * VALUES_PER_FRAME} values)."
        )
    bad = ~np.isfinite(values)
    if bad.any():
        frame = int(np.flatnonzero(bad)[0]) // VALUES_PER_FRAME
        raise ConversionError(f"{where}: NaN/inf values in frame {frame}.")
    return values.reshape(-1, VALUES_PER_FRAME)[:, :NUM_COORDS].astype(np.float32)


def _is_float(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _split_items(src: Path, stem: str) -> Iterator[BuildItem]:
    paths = {ext: src / f"{stem}.{ext}" for ext in EXTENSIONS}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise ConversionError(
            f"split {stem!r} is incomplete: missing {missing}; each split needs .skels, .gloss, .text and .files."
        )
    lines = {ext: _read_lines(p) for ext, p in paths.items()}
    counts = {str(paths[ext]): len(v) for ext, v in lines.items()}
    if len(set(counts.values())) != 1:
        raise ConversionError(
            f"split {stem!r}: the files have different line counts {counts}; they must be line-aligned."
        )
    split = SPLITS[stem]
    for i in range(len(lines["skels"])):
        line_no = i + 1
        sample_id = lines["files"][i].strip()
        item = f"{paths['skels']} line {line_no}" + (f" ({sample_id})" if sample_id else "")

        def build(i=i, line_no=line_no, sample_id=sample_id) -> Dict[str, Any]:
            if not sample_id:
                raise ConversionError(f"{paths['files']} line {line_no} is empty; expected the sentence id.")
            poses = parse_skels_line(lines["skels"][i], paths["skels"], line_no)
            return make_sample(
                id=sample_id, text=lines["text"][i].strip(), poses=poses, fps=FPS, representation=REPRESENTATION,
                gloss=lines["gloss"][i].split(), language=LANGUAGE, signer="",
                source=f"{paths['skels']} line {line_no}",
            )

        yield item, split, build


def _items(src: Path) -> Iterator[BuildItem]:
    present = [stem for stem in SPLITS if any((src / f"{stem}.{ext}").exists() for ext in EXTENSIONS)]
    if not present:
        raise ConversionError(
            f"no Progressive Transformers data in {src}; expected {{train,dev,test}}.{{skels,gloss,text,files}}."
        )
    for stem in SPLITS:
        if stem not in present:
            warnings.warn(f"no {stem}.{{skels,gloss,text,files}} in {src}: the {SPLITS[stem]} split stays empty.")
            continue
        yield from _split_items(src, stem)


def convert_phoenix_skels(src: str | Path, out_dir: str | Path, skip_invalid: bool = False):
    """Convert Progressive Transformers' PHOENIX-2014T `.skels` data into an hf-sign dataset (`pt50`).

    Args:
        src (`str` or `Path`): folder holding `{train,dev,test}.{skels,gloss,text,files}`.
        out_dir (`str` or `Path`): output folder; `datasets.load_dataset(out_dir)` loads it.
        skip_invalid (`bool`, *optional*, defaults to `False`): skip bad sentences and list them in
            `out_dir/skipped.jsonl` instead of stopping at the first one.

    Returns:
        `(datasets.DatasetDict, skipped)` where `skipped` lists `{"item", "split", "error"}` dicts.
    """
    src = Path(src)
    if not src.is_dir():
        raise ConversionError(f"source folder {src} does not exist.")
    description = (
        "Representation `pt50` (Progressive Transformers' 50 joints x xyz: 8 upper-body OpenPose joints and "
        "two 21-joint hands, lifted to 3D; neck-centred, y down), 25 fps, PT's per-frame counter dropped. "
        "Sign language code `gsg`."
    )
    return run_conversion(
        _items(src), out_dir=out_dir, feature_dim=NUM_COORDS, format_name="phoenix-skels (Progressive Transformers)",
        source="RWTH-PHOENIX-Weather-2014T skeletons prepared for Progressive Transformers", skip_invalid=skip_invalid,
        description=description,
    )

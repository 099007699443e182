"""Converters for the SMPL-X fittings of How2Sign, CSL-Daily and PHOENIX-2014T (SOKE / Neural Sign Actors release).

`hf-sign data convert how2sign|csl|phoenix-smplx SRC --out DIR [--skip-invalid]`

These sources are Python pickles. Unpickling can run arbitrary code, so hf-sign reads them **only**
here, in converters that a user runs explicitly on files they downloaded themselves; nothing else in
hf-sign (datasets, pipelines, models) ever unpickles data. Point `SRC` at a copy you trust.

Source layouts (as read by SOKE's loaders, `mGPT/data/humanml/load_data.py` and
`mGPT/data/humanml/dataset_*_sign.py` of github.com/2000ZRL/SOKE; `SRC` is SOKE's
`DATASET.H2S.ROOT`, `CSL_ROOT` or `PHOENIX_ROOT` respectively):

How2Sign (`how2sign`, American Sign Language, English text, no glosses)::

    SRC/{train,val,test}/re_aligned/how2sign_realigned_{split}_preprocessed_fps.csv
    SRC/{train,val,test}/poses/<SENTENCE_NAME>/<SENTENCE_NAME>_<i>_3D.pkl      i = 0, 1, ..., N-1

  The CSV is How2Sign's re-aligned sentence table (comma- or tab-separated) with SOKE's extra `fps`
  column; the columns used are `SENTENCE_NAME` (the folder name), `SENTENCE` (text) and `fps`.
  Frame files must be numbered without gaps from 0 (SOKE builds the names from the frame count).

CSL-Daily (`csl`, Chinese Sign Language, Chinese text and glosses, 30 fps unless the annotation has `fps`)::

    SRC/csl_clean.{train,val,test}        gzip-compressed pickle: a list of dicts
    SRC/poses/<name>/<frame>.pkl

PHOENIX-2014T (`phoenix-smplx`, German Sign Language, German text and glosses, 25 fps unless the
annotation has `fps`)::

    SRC/phoenix14t.{train,dev,test}       gzip-compressed pickle: a list of dicts
    SRC/<name>/<frame>.pkl                (`name` already starts with the split, e.g. `train/01April_2010_...`)

  Annotation dicts need `name` and `text`; `gloss` (a space-separated string or a list) and
  `signer` are used when present, other keys are ignored. Frames are ordered by the numbers in their
  file names (`images0001.pkl` < `images0010.pkl`, with or without zero padding), as SOKE's sorted
  listing does for zero-padded names; numbering gaps are kept as SOKE keeps them.

Split names map to hf-sign's: `train` -> train, `val`/`dev` -> validation, `test` -> test. A split
whose annotation file is absent is written empty (with a warning); at least one must exist.

Every frame pickle is a dict with (at least) `smplx_body_pose` (63 = SMPL-X body joints 1..21),
`smplx_lhand_pose` (45), `smplx_rhand_pose` (45), `smplx_jaw_pose` (3) and `smplx_expr` (10)
axis-angle / coefficient arrays; `smplx_root_pose`, `smplx_shape` and extras such as `cam_trans` are
ignored. Each frame becomes the 133-d `smplx133` feature exactly as SOKE builds it::

    body_pose[33:63] (joints 12..21: neck, collars, head, shoulders, elbows, wrists)
    ++ lhand_pose ++ rhand_pose ++ jaw_pose ++ expr

Frame rate: SOKE brings How2Sign clips above 24 fps to 24 fps by picking frames
(`hf_sign.data.resample`, `kind="subsample"`). hf-sign applies the same rule to every corpus whose
rate is above `target_fps` (default 24), so CSL-Daily (30 fps) and PHOENIX (25 fps) also come out at
24 fps; SOKE itself feeds those two at their native rates, which `target_fps=None` reproduces.
Slower clips are never upsampled; each row's `fps` field holds the rate of its `poses`. Frames
dropped by the resampling are not read. SOKE's training-time filters (clips under 4 frames, How2Sign
clips over 30 s, a list of failed How2Sign fittings) are not applied: they are training choices, not
format errors.

Validation (each failure names the file, and the frame where it applies): unreadable or truncated
pickle, a frame that is not a dict, a missing key, an array of the wrong size, NaN/inf values, a
video folder that is missing or has no frame files, a missing frame file in a How2Sign numbering.
With `skip_invalid=True` such videos are skipped and listed in `DIR/skipped.jsonl`; problems with a
whole annotation file (unreadable, wrong structure, missing CSV columns) always stop the conversion.
"""

from __future__ import annotations

import csv
import gzip
import math
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..resample import subsample_indices
from ..schema import make_sample
from .base import BuildItem, ConversionError, run_conversion

FEATURE_DIM = 133
REPRESENTATION = "smplx133"

# Keys of a frame pickle that make up the 133-d feature, with their sizes, in feature order.
FRAME_KEYS: Tuple[Tuple[str, int], ...] = (
    ("smplx_body_pose", 63),
    ("smplx_lhand_pose", 45),
    ("smplx_rhand_pose", 45),
    ("smplx_jaw_pose", 3),
    ("smplx_expr", 10),
)
# body_pose holds SMPL-X joints 1..21; joints 12..21 (neck .. wrists) start at (12 - 1) * 3 = 33.
UPPER_BODY = slice(33, 63)

CORPORA = {
    "how2sign": dict(
        language="ase", fps=None, source="How2Sign (SMPL-X fittings from the SOKE / Neural Sign Actors release)"
    ),
    "csl": dict(language="csl", fps=30.0, source="CSL-Daily (SMPL-X fittings from the SOKE release)"),
    "phoenix-smplx": dict(
        language="gsg", fps=25.0, source="RWTH-PHOENIX-Weather-2014T (SMPL-X fittings from the SOKE release)"
    ),
}
SPLIT_NAMES = {"train": "train", "val": "validation", "dev": "validation", "test": "test"}


# ----------------------------------------------------------------------------------- frame files
# every way a truncated, corrupt or foreign file fails `pickle.load` (gzip's errors are OSErrors)
_UNREADABLE_PICKLE = (
    EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError, IndexError
)


def _unpickle(path: Path) -> Any:
    """Load one pickle, turning every way it can be broken into a `ConversionError` naming it."""
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except FileNotFoundError as err:
        raise ConversionError(f"missing file {path}") from err
    except _UNREADABLE_PICKLE as err:
        raise ConversionError(f"{path} is truncated or not a readable pickle ({type(err).__name__}: {err})") from err


def frame_features(path: Path, frame: int) -> np.ndarray:
    """Read one SMPL-X frame pickle and return its 133-d `smplx133` feature (float64).

    Args:
        path (`Path`): the frame's `.pkl` file.
        frame (`int`): the frame's index in its video, used in error messages.
    """
    data = _unpickle(path)
    where = f"{path} (frame {frame})"
    if not isinstance(data, dict):
        raise ConversionError(f"{where}: expected a dict of SMPL-X parameters, got {type(data).__name__}.")
    parts = []
    for key, size in FRAME_KEYS:
        if key not in data:
            raise ConversionError(f"{where}: missing key {key!r}; expected keys {[k for k, _ in FRAME_KEYS]}.")
        try:
            value = np.asarray(data[key], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ConversionError(f"{where}: {key!r} is not a numeric array ({err}).") from err
        if value.size != size:
            raise ConversionError(
                f"{where}: {key!r} has shape {value.shape} ({value.size} values); expected {size} values."
            )
        value = value.reshape(-1)
        if not np.isfinite(value).all():
            raise ConversionError(f"{where}: {key!r} has NaN/inf values.")
        parts.append(value[UPPER_BODY] if key == "smplx_body_pose" else value)
    return np.concatenate(parts)


def _natural_key(name: str):
    """Sort key comparing digit runs as numbers, so unpadded frame numbers sort correctly."""
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", name) if tok]


def _list_frames_sorted(video_dir: Path) -> List[Path]:
    if not video_dir.is_dir():
        raise ConversionError(f"missing video folder {video_dir} (referenced by the annotation).")
    frames = sorted((p for p in video_dir.iterdir() if p.suffix == ".pkl"), key=lambda p: _natural_key(p.name))
    if not frames:
        raise ConversionError(f"video folder {video_dir} has no frame files (*.pkl): empty video.")
    return frames


def _list_frames_how2sign(video_dir: Path, name: str) -> List[Path]:
    """How2Sign frames `<name>_<i>_3D.pkl`, required to be numbered 0..N-1 without gaps."""
    if not video_dir.is_dir():
        raise ConversionError(f"missing video folder {video_dir} (referenced by the annotation).")
    pattern = re.compile(re.escape(name) + r"_(\d+)_3D\.pkl")
    numbered: Dict[int, Path] = {}
    for p in video_dir.iterdir():
        if p.suffix != ".pkl":
            continue
        m = pattern.fullmatch(p.name)
        if m is None:
            raise ConversionError(f"unexpected frame file {p}; expected names {name}_<i>_3D.pkl.")
        numbered[int(m.group(1))] = p
    if not numbered:
        raise ConversionError(f"video folder {video_dir} has no frame files ({name}_<i>_3D.pkl): empty video.")
    for i in range(len(numbered)):
        if i not in numbered:
            raise ConversionError(
                f"missing frame file {video_dir / f'{name}_{i}_3D.pkl'} (frame {i}); the folder has "
                f"{len(numbered)} frames numbered up to {max(numbered)}."
            )
    return [numbered[i] for i in range(len(numbered))]


def _check_fps(fps: Any, where: str) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise ConversionError(f"{where}: fps must be a positive number; got {fps!r}.")
    return value


def _gloss_list(gloss: Any, where: str) -> List[str]:
    if gloss is None:
        return []
    if isinstance(gloss, str):
        return gloss.split()
    if isinstance(gloss, (list, tuple)):
        return [str(g) for g in gloss]
    raise ConversionError(f"{where}: `gloss` must be a string or a list of strings; got {type(gloss).__name__}.")


def _build_video(
    *,
    frames: Callable[[], List[Path]],
    sample_id: str,
    text: Any,
    gloss: List[str],
    signer: str,
    language: str,
    src_fps: float,
    target_fps: Optional[float],
    source: str,
) -> Dict[str, Any]:
    """Read the frames of one video (only those the resampling keeps) and build its schema row."""
    if not isinstance(text, str):
        raise ConversionError(f"{source}: `text` must be a string; got {type(text).__name__}.")
    paths = frames()
    fps = src_fps
    keep = np.arange(len(paths))
    if target_fps is not None and src_fps > target_fps:
        keep = subsample_indices(len(paths), src_fps, target_fps)
        fps = float(target_fps)
    poses = np.stack([frame_features(paths[i], int(i)) for i in keep]).astype(np.float32)
    return make_sample(
        id=sample_id, text=text, poses=poses, fps=fps, representation=REPRESENTATION,
        gloss=gloss, language=language, signer=signer, source=source,
    )


# ---------------------------------------------------------------------------------- annotations
def _load_annotation_pickle(path: Path) -> List[Any]:
    try:
        with gzip.open(path, "rb") as fh:
            data = pickle.load(fh)
    except _UNREADABLE_PICKLE as err:
        raise ConversionError(
            f"annotation file {path} is truncated or not a gzip-compressed pickle ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(data, (list, tuple)):
        raise ConversionError(f"annotation file {path} must hold a list of dicts; got {type(data).__name__}.")
    return list(data)


def _pickle_items(src: Path, corpus: str, target_fps: Optional[float]) -> Iterator[BuildItem]:
    info = CORPORA[corpus]
    prefix, split_files = (
        ("csl_clean", ("train", "val", "test")) if corpus == "csl" else ("phoenix14t", ("train", "dev", "test"))
    )
    ann_paths = _present_splits(src, {f: Path(f"{prefix}.{f}") for f in split_files})
    for split_file, ann_path in ann_paths.items():
        split = SPLIT_NAMES[split_file]
        for index, ann in enumerate(_load_annotation_pickle(ann_path)):
            where = f"{ann_path} entry {index}"
            if not isinstance(ann, dict) or "name" not in ann:
                yield where, split, _raiser(f"{where}: expected a dict with keys 'name' and 'text'; got {ann!r:.80}.")
                continue
            name = str(ann["name"])
            video_dir = src / "poses" / name if corpus == "csl" else src / name

            def build(ann=ann, name=name, video_dir=video_dir, where=where):
                if "text" not in ann:
                    raise ConversionError(f"{where} ({name}): missing key 'text'.")
                fps = _check_fps(ann["fps"], where) if "fps" in ann else info["fps"]
                return _build_video(
                    frames=lambda: _list_frames_sorted(video_dir), sample_id=name, text=ann["text"],
                    gloss=_gloss_list(ann.get("gloss"), where), signer=str(ann.get("signer", "") or ""),
                    language=info["language"], src_fps=fps, target_fps=target_fps, source=str(video_dir),
                )

            yield str(video_dir.relative_to(src)), split, build


def _read_csv(path: Path) -> List[Dict[str, str]]:
    """Rows of a How2Sign sentence table; the delimiter (tab in How2Sign's release, comma in SOKE's) is sniffed."""
    with open(path, newline="", encoding="utf-8") as fh:
        header = fh.readline()
        fh.seek(0)
        reader = csv.DictReader(fh, delimiter="\t" if "\t" in header else ",")
        reader.fieldnames = [f.strip() for f in (reader.fieldnames or [])]
        missing = [c for c in ("SENTENCE_NAME", "SENTENCE", "fps") if c not in reader.fieldnames]
        if missing:
            raise ConversionError(
                f"annotation file {path} lacks column(s) {missing}; expected SENTENCE_NAME, SENTENCE and fps "
                f"(SOKE's *_preprocessed_fps.csv)."
            )
        return list(reader)


def _how2sign_items(src: Path, target_fps: Optional[float]) -> Iterator[BuildItem]:
    csv_paths = _present_splits(
        src,
        {d: Path(d, "re_aligned", f"how2sign_realigned_{d}_preprocessed_fps.csv") for d in ("train", "val", "test")},
    )
    for split_dir, csv_path in csv_paths.items():
        split = SPLIT_NAMES[split_dir]
        for row_no, row in enumerate(_read_csv(csv_path), start=2):  # row 1 is the header
            name = (row.get("SENTENCE_NAME") or "").strip()
            where = f"{csv_path} row {row_no}"
            if not name:
                yield where, split, _raiser(f"{where}: empty SENTENCE_NAME.")
                continue
            video_dir = src / split_dir / "poses" / name

            def build(row=row, name=name, video_dir=video_dir, where=where):
                return _build_video(
                    frames=lambda: _list_frames_how2sign(video_dir, name), sample_id=name,
                    text=row.get("SENTENCE") or "", gloss=[], signer="", language="ase",
                    src_fps=_check_fps(row.get("fps"), where), target_fps=target_fps, source=str(video_dir),
                )

            yield str(video_dir.relative_to(src)), split, build


def _present_splits(src: Path, relpaths: Dict[str, Path]) -> Dict[str, Path]:
    """Annotation files that exist (split name in the source -> path); warns about the others."""
    present = {k: src / p for k, p in relpaths.items() if (src / p).is_file()}
    if not present:
        raise ConversionError(f"no annotation file found in {src}; expected {[str(p) for p in relpaths.values()]}.")
    for k, p in relpaths.items():
        if k not in present:
            warnings.warn(f"{src / p} not found: the {SPLIT_NAMES[k]} split stays empty.")
    return present


def _raiser(message: str) -> Callable[[], Dict[str, Any]]:
    def build():
        raise ConversionError(message)

    return build


# ------------------------------------------------------------------------------------ entry point
def convert_smplx_corpus(
    corpus: str,
    src: str | Path,
    out_dir: str | Path,
    skip_invalid: bool = False,
    target_fps: Optional[float] = 24.0,
):
    """Convert a local copy of a SOKE-format SMPL-X corpus into an hf-sign dataset (`smplx133`).

    Args:
        corpus (`str`): `"how2sign"`, `"csl"` or `"phoenix-smplx"` (layouts in the module docstring).
        src (`str` or `Path`): the corpus root (SOKE's `H2S.ROOT`, `CSL_ROOT` or `PHOENIX_ROOT`).
        out_dir (`str` or `Path`): output folder; `datasets.load_dataset(out_dir)` loads it.
        skip_invalid (`bool`, *optional*, defaults to `False`): skip bad videos and list them in
            `out_dir/skipped.jsonl` instead of stopping at the first one.
        target_fps (`float`, *optional*, defaults to `24.0`): clips faster than this are brought down
            to it with SOKE's frame picking; `None` keeps every clip at its native rate.

    Returns:
        `(datasets.DatasetDict, skipped)` where `skipped` lists `{"item", "split", "error"}` dicts.
    """
    if corpus not in CORPORA:
        raise ValueError(f"Unknown SMPL-X corpus {corpus!r}; expected one of {sorted(CORPORA)}.")
    if target_fps is not None:
        _check_fps(target_fps, "target_fps")
    src = Path(src)
    if not src.is_dir():
        raise ConversionError(f"source folder {src} does not exist.")
    items = _how2sign_items(src, target_fps) if corpus == "how2sign" else _pickle_items(src, corpus, target_fps)
    rate = (
        f"resampled to {target_fps:g} fps where faster (SOKE's frame picking)"
        if target_fps
        else "at native frame rates"
    )
    description = (
        f"Representation `smplx133` (SOKE's 133-d SMPL-X upper body, hands, jaw and expression, axis-angle), "
        f"{rate}. Sign language code `{CORPORA[corpus]['language']}`."
    )
    return run_conversion(
        items, out_dir=out_dir, feature_dim=FEATURE_DIM, format_name=f"{corpus} (SMPL-X)",
        source=CORPORA[corpus]["source"], skip_invalid=skip_invalid, description=description,
    )

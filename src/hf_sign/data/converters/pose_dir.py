"""`pose-dir`: a folder of pose-format `.pose` files (MediaPipe Holistic) plus a CSV -> hf-sign dataset.

```
SRC/metadata.csv        path,text[,gloss][,split][,language][,signer]
SRC/clips/0001.pose     paths in the CSV are relative to SRC
```

* `path` and `text` are required; `gloss` is space separated; `split` is `train`/`validation`/`test`
  (an absent column or an empty cell gives a deterministic split from a hash of the path, about
  80/10/10); `language` and `signer` fall back to the `language`/`signer` arguments.
* Poses are read with `hf_sign.data.pose_io.pose_to_holistic` (first person, `holistic` or
  `holistic_noface` skeleton, pose-format units: pixels, y down; each row keeps its file's fps).
* A bad file (missing, empty, truncated, 0 frames, NaN/inf, wrong components or dimensionality, a
  joint never detected without `allow_missing`) stops the conversion with an error naming the file
  (and frame), or with `skip_invalid=True` is listed with its reason in `skipped.jsonl`.
* Filled landmarks (interpolated gaps, never-detected joints placed on their nearest detected
  ancestor) are counted in the dataset card.
"""

from __future__ import annotations

import csv as csv_module
import hashlib
from pathlib import Path
from typing import Dict, List, Optional

from ...skeletons.spec import get_skeleton
from ..pose_io import pose_to_holistic, read_pose_file
from ..schema import make_sample
from .base import ConversionError, run_conversion

REQUIRED_COLUMNS = ("path", "text")
DEFAULT_CSV_NAMES = ("metadata.csv", "index.csv")


def hash_split(key: str, fractions=(0.8, 0.1, 0.1)) -> str:
    """Deterministic split of `key` (independent of the CSV's order and of Python's hash seed)."""
    u = int(hashlib.md5(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if u < fractions[0] else "validation" if u < fractions[0] + fractions[1] else "test"


def read_metadata(csv_path: Path) -> List[Dict[str, str]]:
    """Rows of the metadata CSV, with the required columns checked (errors name the column and line)."""
    with csv_path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv_module.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        for col in REQUIRED_COLUMNS:
            if col not in columns:
                raise ConversionError(f"{csv_path}: missing required column {col!r} (found {columns}).")
        rows = []
        seen: Dict[str, int] = {}
        for line, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
            if not row["path"]:
                raise ConversionError(f"{csv_path}, line {line}: empty 'path'.")
            if row["path"] in seen:
                raise ConversionError(
                    f"{csv_path}, line {line}: path {row['path']!r} already listed on line {seen[row['path']]}."
                )
            seen[row["path"]] = line
            rows.append(row)
    if not rows:
        raise ConversionError(f"{csv_path}: no rows.")
    return rows


def convert_pose_dir(
    src_dir: str | Path,
    out_dir: str | Path,
    csv: Optional[str | Path] = None,
    skip_invalid: bool = False,
    face: bool = True,
    allow_missing: bool = False,
    language: str = "",
    signer: str = "",
):
    """Convert a folder of `.pose` files into an hf-sign dataset. Returns `(DatasetDict, skipped)`.

    Args:
        src_dir (`str` or `Path`): folder with the `.pose` files (CSV paths are relative to it).
        out_dir (`str` or `Path`): output dataset folder.
        csv (`str` or `Path`, *optional*): metadata CSV; defaults to `SRC/metadata.csv` or `SRC/index.csv`.
        skip_invalid (`bool`, defaults to `False`): skip bad files and list them in `skipped.jsonl`
            instead of stopping at the first one.
        face (`bool`, defaults to `True`): `holistic` (with the face subset) or `holistic_noface`.
        allow_missing (`bool`, defaults to `False`): place joints never detected in a clip on their nearest
            detected ancestor (an undetected hand on the body wrist) instead of rejecting the file.
        language (`str`, defaults to `""`): sign-language code for rows without a `language` value.
        signer (`str`, defaults to `""`): signer id for rows without a `signer` value.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise ConversionError(f"{src}: source folder not found.")
    if csv is None:
        found = [src / n for n in DEFAULT_CSV_NAMES if (src / n).is_file()]
        if not found:
            raise ConversionError(
                f"{src}: no metadata CSV; expected one of {list(DEFAULT_CSV_NAMES)}, or pass `--csv FILE` (`csv=`)."
            )
        csv_path = found[0]
    else:
        csv_path = Path(csv)
        if not csv_path.is_file():
            raise ConversionError(f"{csv_path}: metadata CSV not found.")
    rows = read_metadata(csv_path)
    spec_name = "holistic" if face else "holistic_noface"
    counts = {"values": 0, "interpolated": 0, "anchored": 0, "files_with_anchors": 0}

    def builder(row: Dict[str, str]):
        def build():
            rel = row["path"]
            pose = read_pose_file(src / rel)
            feats, conf = pose_to_holistic(pose, source=rel, face=face, allow_missing=allow_missing)
            sample = make_sample(
                id=str(Path(rel).with_suffix("")),
                text=row["text"],
                gloss=row.get("gloss", "").split(),
                poses=feats,
                fps=float(pose.body.fps),
                representation=spec_name,
                language=row.get("language") or language,
                signer=row.get("signer") or signer,
                source=rel,
            )
            never = (conf == 0).all(0)
            counts["values"] += conf.size
            counts["interpolated"] += int(((conf == 0) & ~never[None]).sum())
            counts["anchored"] += int(never.sum()) * len(conf)
            counts["files_with_anchors"] += int(never.any())
            return sample

        return build

    items = [(r["path"], r.get("split") or hash_split(r["path"]), builder(r)) for r in rows]
    description = (
        f"Poses: `{spec_name}` skeleton read from MediaPipe Holistic `.pose` files (first person; pose-format "
        "units: x/y in pixels of the source video, z on the same scale, y pointing down; each row keeps its "
        "file's fps). Landmarks with confidence 0 are linearly interpolated over time (held at the clip ends); "
        + ("joints never detected in a clip are placed on their nearest detected ancestor."
           if allow_missing else "clips with a joint that is never detected are rejected.")
        + f" Splits: from the CSV's `split` column where given, else a hash of the path. Metadata: `{csv_path.name}`."
    )
    dd, skipped = run_conversion(
        items,
        out_dir=out_dir,
        feature_dim=get_skeleton(spec_name).feature_dim,
        format_name="pose-dir (MediaPipe Holistic .pose)",
        source=str(src),
        skip_invalid=skip_invalid,
        description=description,
    )
    total = max(counts["values"], 1)
    with (Path(out_dir) / "README.md").open("a", encoding="utf-8") as fh:
        fh.write(
            "\n## Filled landmarks\n\n"
            f"- interpolated over time: {counts['interpolated']} joint-frames ({counts['interpolated'] / total:.2%})\n"
            f"- placed on their nearest detected ancestor (never detected in the clip): {counts['anchored']} "
            f"joint-frames ({counts['anchored'] / total:.2%}) in {counts['files_with_anchors']} file(s)\n"
        )
    return dd, skipped

"""Writing corpora in the layout of a Hub dataset repo, so `datasets.load_dataset(DIR)` loads them offline.

```
DIR/README.md                                  dataset card (YAML metadata + Markdown)
DIR/data/{split}-00000-of-00001.parquet       one Parquet file per split
DIR/skipped.jsonl                              (converters only) one line per skipped input
```
"""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from string import Template
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Union

import numpy as np
from datasets import Dataset, DatasetDict, Features

SPLITS = ("train", "validation", "test")


def hub_cards_dir() -> Path:
    """The card templates, `hf_sign/hub_cards/` (package data, so wheel installs have them too; the repository's
    top-level `hub_cards/` links to this folder)."""
    path = Path(__file__).resolve().parents[1] / "hub_cards"
    if not path.is_dir():
        raise FileNotFoundError(
            f"Card templates not found at {path}; the hf-sign installation is incomplete (the package data "
            "`hf_sign/hub_cards/*.md` is missing): reinstall hf-sign."
        )
    return path


def render_card(template_name: str, **fields: Any) -> str:
    """Fill `hf_sign/hub_cards/<template_name>` with `fields` (`$name` placeholders, `string.Template`)."""
    text = (hub_cards_dir() / template_name).read_text(encoding="utf-8")
    return Template(text).substitute({k: str(v) for k, v in fields.items()})


def _with_dataset_info(card: str, out: Path, counts: Mapping[str, int]) -> str:
    """Add a `dataset_info` block (split sizes in rows and bytes) to the card's YAML front matter.

    Why: `datasets.load_dataset(DIR)` keys its cache on the folder name and the card metadata, not on
    the Parquet contents, so a corpus rebuilt in place (or another corpus in a folder of the same name)
    would silently load the old cached rows. The split sizes change with the contents, so they make
    the cache key follow the data; they are also what the Hub shows for a dataset repo.
    """
    sizes = {name: (out / "data" / f"{name}-00000-of-00001.parquet").stat().st_size for name in counts}
    lines = ["dataset_info:", "  splits:"]
    for name, count in counts.items():
        lines += [f"  - name: {name}", f"    num_bytes: {sizes[name]}", f"    num_examples: {count}"]
    lines += [f"  download_size: {sum(sizes.values())}", f"  dataset_size: {sum(sizes.values())}"]
    block = "\n".join(lines) + "\n"
    if card.startswith("---\n"):
        return "---\n" + block + card[len("---\n") :]
    return "---\n" + block + "---\n\n" + card


def save_corpus(
    splits: Mapping[str, List[Dict[str, Any]]],
    features: Features,
    out_dir: str | Path,
    card: str,
    skipped: Optional[Iterable[Dict[str, Any]]] = None,
) -> DatasetDict:
    """Write `splits` (split name -> list of rows) as Parquet + `README.md` under `out_dir`.

    Splits without rows are not written: `datasets` cannot load an empty Parquet split, and its
    file-name convention (`data/{split}-*.parquet`) lets `load_dataset` find the splits that exist
    without a `configs` block in the card. The card reports every split's count, zeros included.
    Returns the `DatasetDict` that was written.
    """
    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for old in (out / "data").glob("*.parquet"):
        old.unlink()  # a re-run must not leave stale shards that load_dataset would merge
    if not any(splits.values()):
        raise ValueError(f"Nothing to write to {out}: every split is empty.")
    dd = DatasetDict()
    for name, rows in splits.items():
        if not rows:
            continue
        ds = Dataset.from_list(list(rows), features=features)
        ds.to_parquet(str(out / "data" / f"{name}-00000-of-00001.parquet"))
        dd[name] = ds
    (out / "README.md").write_text(_with_dataset_info(card, out, {k: len(v) for k, v in dd.items()}), encoding="utf-8")
    skipped = list(skipped or [])
    report = out / "skipped.jsonl"
    if skipped:
        with report.open("w", encoding="utf-8") as fh:
            for item in skipped:
                fh.write(json.dumps(item) + "\n")
    elif report.exists():
        report.unlink()
    return dd


def save_corpus_streaming(
    splits: Mapping[str, Iterable[Dict[str, Any]]],
    features: Features,
    out_dir: str | Path,
    card: Callable[[], str],
    rows_per_group: int = 256,
) -> Dict[str, int]:
    """Write `splits` (split name -> rows, any iterable) like `save_corpus`, holding `rows_per_group` rows at a time.

    Each split's rows are consumed as they come and appended to its Parquet file one row group at a time (a
    `pyarrow.parquet.ParquetWriter`), so a corpus of any size is written in bounded memory; the stored rows are
    those `save_corpus` writes. `card` is called once every split is written (a card quoting corpus statistics
    gathers them while the rows stream). Returns the rows written per split (splits without rows get no file).
    """
    import pyarrow.parquet as pq

    if rows_per_group < 1:
        raise ValueError(f"`rows_per_group` must be >= 1; got {rows_per_group}.")
    out = Path(out_dir)
    (out / "data").mkdir(parents=True, exist_ok=True)
    for old in (out / "data").glob("*.parquet"):
        old.unlink()  # a re-run must not leave stale shards that load_dataset would merge
    counts: Dict[str, int] = {}
    for name, rows in splits.items():
        path = out / "data" / f"{name}-00000-of-00001.parquet"
        writer, count, chunk = None, 0, []
        for row in itertools.chain(rows, [None]):
            if row is not None:
                chunk.append(row)
            if chunk and (row is None or len(chunk) == rows_per_group):
                table = Dataset.from_list(chunk, features=features).data.table
                writer = writer or pq.ParquetWriter(str(path), table.schema)
                writer.write_table(table)
                count, chunk = count + len(chunk), []
        if writer is not None:
            writer.close()
            counts[name] = count
    if not counts:
        raise ValueError(f"Nothing to write to {out}: every split is empty.")
    (out / "README.md").write_text(_with_dataset_info(card(), out, counts), encoding="utf-8")
    if (out / "skipped.jsonl").exists():
        (out / "skipped.jsonl").unlink()
    return counts


_SHARD_RE = re.compile(r"^(?P<split>[\w.]+?)-\d{5}-of-\d{5}\.parquet$")


def load_corpus(path: Union[str, os.PathLike], memory_map: bool = False) -> DatasetDict:
    """Load an hf-sign corpus as a `DatasetDict`: the one loader the trainers, harness and renderer share.

    A folder written by `save_corpus` (`DIR/data/{split}-NNNNN-of-NNNNN.parquet`) is read straight from its
    Parquet shards into memory (features come from the shards' `huggingface` schema metadata); anything else
    (another local layout, a Hub id) goes through `datasets.load_dataset`. Reading the shards directly skips
    the `datasets` cache, which for a local folder is keyed by folder name and card metadata: corpora written
    before the card carried `dataset_info`, or edited by hand, could otherwise load stale rows.

    With `memory_map=True` the shards go through `datasets`' Parquet builder instead: it converts them once, in
    bounded memory, into Arrow files in the `datasets` cache (`HF_DATASETS_CACHE`) and memory-maps these, so a split
    costs address space, not resident memory (`hf_sign.data.pose_table.PoseTable` reads its rows per access). That
    cache is keyed by the shards' paths and modification times, so a corpus rebuilt in place is converted again.
    """
    from datasets import Dataset, load_dataset
    from datasets.table import InMemoryTable

    root = Path(path)
    shards: Dict[str, List[Path]] = {}
    if (root / "data").is_dir():
        for f in sorted((root / "data").glob("*.parquet")):
            m = _SHARD_RE.match(f.name)
            if m:
                shards.setdefault(m.group("split"), []).append(f)
    if not shards:
        if root.exists() and not root.is_dir():
            raise ValueError(f"`dataset` {str(path)!r} is a file; expected a corpus folder or a Hub dataset id.")
        return load_dataset(str(path))
    if memory_map:
        from pyarrow.dataset import ParquetFragmentScanOptions

        # Without pre-buffering: Arrow would otherwise keep every row group it has read of a shard until the whole
        # shard is converted, so the conversion's memory would grow with the corpus.
        return load_dataset(
            "parquet",
            data_files={split: [str(f) for f in files] for split, files in shards.items()},
            fragment_scan_options=ParquetFragmentScanOptions(pre_buffer=False),
        )
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = DatasetDict()
    for split, files in shards.items():
        table = pa.concat_tables([pq.read_table(f) for f in files]) if len(files) > 1 else pq.read_table(files[0])
        out[split] = Dataset(InMemoryTable(table))
    return out


def split_rows(ds, split: str = "") -> List[Dict[str, Any]]:
    """Rows of a split as dicts with numpy `poses` (float32 `(T, D)`) and plain-Python other fields."""
    where = f" of split {split!r}" if split else ""
    if len(ds) == 0:
        raise ValueError(f"The dataset split{where} is empty.")
    missing = [c for c in ("id", "text", "poses") if c not in ds.column_names]
    if missing:
        raise ValueError(f"The dataset split{where} lacks the column(s) {missing}; expected the hf-sign schema.")
    optional = ("id", "text", "prompt", "gloss", "gloss_spans", "gloss_text_spans", "language", "signer", "fps",
                "representation")
    cols = {c: ds[c] for c in optional if c in ds.column_names}
    poses = _arrow_poses(ds)
    if poses is None:
        poses = []
        for p in ds.with_format("numpy")["poses"]:
            p = np.asarray(p)
            if p.dtype == object:  # variable-length Array2D comes back as an object array of frames
                p = np.stack(list(p))
            poses.append(p)
    rows = []
    for i, p in enumerate(poses):
        row = {c: cols[c][i] for c in cols}
        row["poses"] = np.ascontiguousarray(p, dtype=np.float32)
        if row["poses"].ndim != 2 or row["poses"].shape[0] == 0:
            raise ValueError(
                f"`poses` of sample {row['id']!r}{where} must be (num_frames > 0, feature_dim); got "
                f"{row['poses'].shape}."
            )
        row.setdefault("gloss", [])
        row.setdefault("gloss_spans", [])
        row["gloss"] = [str(g) for g in (row["gloss"] or [])]
        row["gloss_spans"] = [(int(a), int(b)) for a, b in (row["gloss_spans"] or [])]
        rows.append(row)
    return rows


def _arrow_poses(ds) -> Optional[List[np.ndarray]]:
    """`poses` straight from the Arrow buffers (one copy, ~100x faster than row-wise numpy formatting); None
    when the layout is not the plain `list<list<float>>` of an unfiltered Array2D column."""
    try:
        if getattr(ds, "_indices", None) is not None:
            return None
        col = ds.data.table.column("poses").combine_chunks()
        col = getattr(col, "storage", col)
        if col.null_count:
            return None
        inner = col.flatten()
        if inner.null_count:
            return None
        values = np.array(inner.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)  # writable copy
        outer = col.offsets.to_numpy()
        inner_off = inner.offsets.to_numpy()
        outer, inner_off = outer - outer[0], inner_off - inner_off[0]
        widths = np.diff(inner_off)
        if widths.size == 0 or (widths != widths[0]).any() or widths[0] == 0:
            return None
        frames = values.reshape(-1, int(widths[0]))
        return [frames[a:b] for a, b in zip(outer[:-1], outer[1:])]
    except Exception:  # noqa: BLE001 - any unexpected layout takes the generic path
        return None

"""`PoseTable`: a corpus split read row by row from its Arrow table, for corpora too large to hold as numpy arrays.

`hf_sign.data.io.load_corpus(path, memory_map=True)` gives splits backed by memory-mapped Arrow files (the
`datasets` cache), so the operating system pages the pose buffers in and out; a `PoseTable` over such a split turns a
row into the dict `split_rows` gives (numpy `poses`, plain-Python metadata) only when it is asked for, and reads the
sequence lengths from the `num_frames` column without touching `poses`, which is all a length-grouped sampler needs.
Holding a `PoseTable` costs a few bytes per row (its index and length arrays), whatever the corpus size.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

__all__ = ["ConcatenatedRows", "PoseTable"]

_LISTS = ("gloss", "gloss_spans")  # never None in a row: an absent gloss sequence is an empty list
# Columns a row carries besides `poses` and `num_frames` (those of `io.split_rows`, in the same order).
_META = (
    "id",
    "text",
    "prompt",
    "gloss",
    "gloss_spans",
    "gloss_text_spans",
    "language",
    "signer",
    "fps",
    "representation",
)


class PoseTable(Sequence):
    """The rows of an hf-sign corpus split, built on access from the split's Arrow table.

    A row is the dict of `hf_sign.data.io.split_rows` (float32 `poses` `(T, D)`, `gloss` a list of str, `gloss_spans`
    a list of `(start, end)` tuples, the other metadata as plain Python) plus `num_frames`, restricted to `columns`
    when given; a metadata field that is null in the table is left out of the row. Indexing with an int gives one
    row, with a slice a list of rows; iterating reads the rows in chunks.

    Args:
        dataset (`datasets.Dataset`): the split (memory-mapped or in memory).
        split (`str`, *optional*): its name, for error messages.
        indices (`Sequence[int]`, *optional*): the rows of `dataset` this table shows, in order (all by default).
        columns (`Sequence[str]`, *optional*): the metadata columns a row carries (every hf-sign column the split
            has by default); `poses` and `num_frames` are always there.
        chunk_size (`int`, *optional*, defaults to 256): rows read at once while iterating.
    """

    def __init__(
        self,
        dataset,
        split: str = "",
        indices: Optional[Sequence[int]] = None,
        columns: Optional[Sequence[str]] = None,
        chunk_size: int = 256,
    ):
        where = f" of split {split!r}" if split else ""
        missing = [c for c in ("id", "text", "poses") if c not in dataset.column_names]
        if missing:
            raise ValueError(f"The dataset split{where} lacks the column(s) {missing}; expected the hf-sign schema.")
        if chunk_size < 1:
            raise ValueError(f"`chunk_size` must be >= 1; got {chunk_size}.")
        self.dataset, self.split, self.chunk_size = dataset, split, chunk_size
        self.columns = [c for c in (columns if columns is not None else _META) if c in dataset.column_names]
        self._table = dataset.data.table
        # Rows of a filtered `Dataset` live behind its indices mapping; resolve it once into table row numbers.
        mapping = getattr(dataset, "_indices", None)
        self._rows = mapping.column(0).to_numpy() if mapping is not None else np.arange(len(dataset))
        if indices is not None:
            self._rows = self._rows[np.asarray(indices, dtype=np.int64)]
        self._lengths: Optional[np.ndarray] = None

    # ------------------------------------------------------------------------------------------------ lengths
    def _all_lengths(self) -> np.ndarray:
        """Frames per table row, from `num_frames` (or the `poses` list offsets): no pose value is read."""
        if "num_frames" in self._table.column_names:
            return self._table.column("num_frames").to_numpy().astype(np.int64)
        col = self._table.column("poses").combine_chunks()
        return np.diff(getattr(col, "storage", col).offsets.to_numpy()).astype(np.int64)

    @property
    def lengths(self) -> List[int]:
        """The frames of every row of this table, in order (the length-grouped sampler's input)."""
        if self._lengths is None:
            self._lengths = self._all_lengths()[self._rows]
        return self._lengths.tolist()

    def select(self, indices: Sequence[int]) -> "PoseTable":
        """A table of the rows `indices` (positions in this table), sharing the same Arrow data."""
        out = PoseTable.__new__(PoseTable)
        out.__dict__.update(self.__dict__)
        picked = np.asarray(indices, dtype=np.int64)
        out._rows = self._rows[picked]
        out._lengths = None if self._lengths is None else self._lengths[picked]
        return out

    def column(self, name: str) -> List[Any]:
        """A metadata column of this table's rows as a Python list (no pose is read)."""
        if name == "num_frames":
            return self.lengths
        if name not in self.columns:
            raise ValueError(f"`{name}` is not a metadata column of this table; it has {self.columns}.")
        values = self._table.column(name).take(self._rows).to_pylist()
        return [_clean(name, v) for v in values]

    # ------------------------------------------------------------------------------------------------ rows
    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: Union[int, slice]):
        if isinstance(index, slice):
            return self._read(self._rows[index])
        n = len(self._rows)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"row {index} is out of range for a table of {n} rows.")
        return self._read(self._rows[i : i + 1 if i != -1 else None])[0]

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for start in range(0, len(self._rows), self.chunk_size):
            yield from self._read(self._rows[start : start + self.chunk_size])

    def __add__(self, other: Sequence) -> "ConcatenatedRows":
        return ConcatenatedRows([self, other])

    def __radd__(self, other: Sequence) -> "ConcatenatedRows":
        return ConcatenatedRows([other, self])

    def _read(self, rows: np.ndarray) -> List[Dict[str, Any]]:
        """Rows `rows` of the Arrow table as dicts (a contiguous run is sliced, anything else taken)."""
        if len(rows) == 0:
            return []
        lo = int(rows[0])
        if (np.diff(rows) == 1).all():
            part = self._table.slice(lo, len(rows))
        else:
            part = self._table.take(rows)
        meta = {c: part.column(c).to_pylist() for c in self.columns}
        out = []
        for k, poses in enumerate(_poses_of(part)):
            where = f" of split {self.split!r}" if self.split else ""
            if poses.ndim != 2 or poses.shape[0] == 0:
                raise ValueError(
                    f"`poses` of sample {meta['id'][k]!r}{where} must be (num_frames > 0, feature_dim); got "
                    f"{poses.shape}."
                )
            row = {c: _clean(c, meta[c][k]) for c in self.columns if meta[c][k] is not None or c in _LISTS}
            row["poses"] = poses
            row["num_frames"] = int(poses.shape[0])
            out.append(row)
        return out


class ConcatenatedRows(Sequence):
    """Row sequences one after the other (`table + other`), read through: nothing is copied."""

    def __init__(self, parts: Sequence[Sequence]):
        self.parts = list(parts)

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def __getitem__(self, index: Union[int, slice]):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = int(index) + (len(self) if int(index) < 0 else 0)
        for part in self.parts:
            if 0 <= i < len(part):
                return part[i]
            i -= len(part)
        raise IndexError(f"row {index} is out of range for {len(self)} rows.")

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for part in self.parts:
            yield from part


def _clean(name: str, value: Any) -> Any:
    """A metadata value as `io.split_rows` gives it (gloss a list of str, gloss spans a list of int tuples)."""
    if name == "gloss":
        return [str(g) for g in (value or [])]
    if name == "gloss_spans":
        return [(int(a), int(b)) for a, b in (value or [])]
    return value


def _poses_of(table) -> List[np.ndarray]:
    """Writable float32 `(T, D)` copies of the `poses` of every row of a (small) Arrow table."""
    col = table.column("poses").combine_chunks()
    col = getattr(col, "storage", col)  # Array2D is an extension type over list<list<float>>
    inner = col.flatten()
    values = inner.flatten().to_numpy(zero_copy_only=False)
    outer, inner_off = col.offsets.to_numpy(), inner.offsets.to_numpy()
    outer, inner_off = outer - outer[0], inner_off - inner_off[0]
    widths = np.diff(inner_off)
    if col.null_count or inner.null_count or widths.size == 0 or (widths != widths[0]).any():
        raise ValueError("`poses` must be non-null (num_frames, feature_dim) arrays of one feature_dim per split.")
    frames = np.array(values, dtype=np.float32).reshape(-1, int(widths[0]))  # one copy, owned by the rows
    return [frames[a:b] for a, b in zip(outer[:-1], outer[1:])]

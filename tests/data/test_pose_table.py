"""The memory-mapped training data path (`PoseTable`, `load_pose_splits`) and the streamed SynthSign build."""

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers.trainer_pt_utils import LengthGroupedSampler

from hf_sign.data import pose_table, synthsign
from hf_sign.data.collator import PoseCollator
from hf_sign.data.io import load_corpus, save_corpus, split_rows
from hf_sign.data.pose_table import PoseTable
from hf_sign.data.schema import sign_features
from hf_sign.training.trainer_utils import PoseRows, load_pose_splits

_OPTIONAL = ("gloss", "prompt", "language", "signer", "gloss_spans", "gloss_text_spans")


def _in_memory_splits(path, max_frames):
    """The rows as the training data held them before the memory-mapped path: lists of dicts of numpy arrays."""
    dd = load_corpus(path)
    out = {}
    for split in ("train", "validation"):
        rows = []
        for item in split_rows(dd[split], split):
            if len(item["poses"]) <= max_frames:
                row = {
                    "id": item["id"],
                    "text": item["text"],
                    "poses": item["poses"],
                    "num_frames": len(item["poses"]),
                }
                row.update({k: item[k] for k in _OPTIONAL if item.get(k) is not None})
                rows.append(row)
        out[split] = rows
    return out


def _batches(rows, seed, batch_size=3):
    sampler = LengthGroupedSampler(
        batch_size, lengths=PoseRows(rows, "num_frames").lengths, generator=torch.Generator().manual_seed(seed)
    )
    loader = torch.utils.data.DataLoader(
        PoseRows(rows, "num_frames"),
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=PoseCollator(pad_to_multiple_of=4),
    )
    return list(loader)


def test_memory_mapped_rows_and_batches_equal_the_in_memory_ones(tiny_synthsign):
    max_frames = int(np.median(load_corpus(tiny_synthsign)["train"]["num_frames"]))  # some rows left out
    old = _in_memory_splits(tiny_synthsign, max_frames)
    new = load_pose_splits(str(tiny_synthsign), max_frames)
    assert isinstance(new["train"], PoseTable)
    assert new["skipped"] == 12 - len(old["train"]) > 0
    assert new["representation"] == "smplx133" and new["fps"] == 24.0
    for split in ("train", "validation"):
        assert len(new[split]) == len(old[split])
        for a, b in zip(old[split], new[split]):
            assert a.keys() == b.keys()
            for key in a:
                if key == "poses":
                    assert b[key].dtype == np.float32 and np.array_equal(a[key], b[key])
                else:
                    assert a[key] == b[key] and type(a[key]) is type(b[key]), key
    for seed in (0, 1):
        old_batches, new_batches = _batches(old["train"], seed), _batches(new["train"], seed)
        assert len(old_batches) == len(new_batches) > 1
        for a, b in zip(old_batches, new_batches):
            assert a["id"] == b["id"]
            assert torch.equal(a["poses"], b["poses"]) and torch.equal(a["attention_mask"], b["attention_mask"])


def test_sampler_lengths_come_from_the_lengths_column(tiny_synthsign, monkeypatch):
    table = load_pose_splits(str(tiny_synthsign), 10_000)["train"]
    expected = [len(r["poses"]) for r in table]

    def no_pose_reads(*args, **kwargs):
        raise AssertionError("a pose was read")

    monkeypatch.setattr(pose_table, "_poses_of", no_pose_reads)
    rows = PoseRows(table, "num_frames")
    assert rows.lengths == expected
    order = list(LengthGroupedSampler(4, lengths=rows.lengths, generator=torch.Generator().manual_seed(0)))
    assert sorted(order) == list(range(len(table)))
    picked = table.select([5, 0, 3])
    assert picked.lengths == [expected[5], expected[0], expected[3]]
    assert picked.column("id") == [f"synthsign-train-{i:06d}" for i in (5, 0, 3)]


def test_pose_table_indexing_and_bad_input(tiny_synthsign):
    ds = load_corpus(tiny_synthsign, memory_map=True)["train"]
    table = PoseTable(ds, "train")
    rows = split_rows(load_corpus(tiny_synthsign)["train"])
    assert [r["id"] for r in table[2:5]] == [r["id"] for r in rows[2:5]]
    assert np.array_equal(table[-1]["poses"], rows[-1]["poses"]) and table[-2]["id"] == rows[-2]["id"]
    assert [r["id"] for r in table.select([4, 1])[::-1]] == [rows[1]["id"], rows[4]["id"]]
    with pytest.raises(IndexError, match="out of range"):
        table[12]
    both = table + table.select([0])  # e.g. train + validation: read through, nothing copied
    assert len(both) == 13 and both[12]["id"] == both[-1]["id"] == rows[0]["id"] and both[11]["id"] == rows[11]["id"]
    assert [r["id"] for r in both] == [r["id"] for r in rows] + [rows[0]["id"]]
    assert [r["id"] for r in [] + table] == [r["id"] for r in rows]
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['poses'\]"):
        PoseTable(ds.remove_columns("poses"), "train")
    with pytest.raises(ValueError, match="not a metadata column"):
        table.column("poses")


def test_rebuilt_corpus_loads_the_new_rows(tmp_path):
    folder = tmp_path / "corpus"
    synthsign.build_synthsign(folder, seed=0, num_train=4, num_validation=1, num_test=1, show_progress=False)
    first = load_pose_splits(str(folder), 10_000)["train"].column("text")
    synthsign.build_synthsign(folder, seed=1, num_train=5, num_validation=1, num_test=1, show_progress=False)
    second = load_pose_splits(str(folder), 10_000)["train"]
    assert len(second) == 5 and second.column("text") != first[:5]


def test_streamed_build_writes_the_rows_of_the_in_memory_build(tmp_path, monkeypatch):
    sizes = dict(seed=2, num_train=10, num_validation=3, num_test=2, show_progress=False)
    monkeypatch.setattr(synthsign, "_ROWS_PER_GROUP", 4)  # several row groups, the last one partial
    dd = synthsign.build_synthsign(tmp_path / "streamed", **sizes)
    assert {k: len(v) for k, v in dd.items()} == {"train": 10, "validation": 3, "test": 2}
    save_corpus(synthsign.generate_synthsign(**sizes), sign_features(133), tmp_path / "in_memory", "card")
    for split in ("train", "validation", "test"):
        name = f"data/{split}-00000-of-00001.parquet"
        streamed, in_memory = pq.read_table(tmp_path / "streamed" / name), pq.read_table(tmp_path / "in_memory" / name)
        assert streamed.equals(in_memory) and streamed.schema.equals(in_memory.schema, check_metadata=True)
    assert pq.ParquetFile(tmp_path / "streamed" / "data/train-00000-of-00001.parquet").num_row_groups == 3
    card = (tmp_path / "streamed" / "README.md").read_text()
    assert "num_examples: 10" in card and "| test | 2 |" in card

"""`hf-sign hub cache-add`: a pipeline or corpus folder placed in the HF caches loads by repo id, offline.

In-process tests pass the cache folders explicitly; one test runs the command line in a fresh process with
`HF_HOME` pointing at a temporary folder and `HF_HUB_OFFLINE=1`, and loads both repo ids there with no cache
argument at all, exactly as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline
from huggingface_hub import snapshot_download

from hf_sign.data.synthsign import build_synthsign
from hf_sign.pipelines.hub_cache import (
    cache_dataset_as_repo,
    cache_folder_as_repo,
    cache_pipeline_as_repo,
    cached_repo_path,
)
from hf_sign.pipelines.pipeline_sign_sald import SignSALDPipeline

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "sign_sald_tiny"
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus") / "synthsign"
    build_synthsign(folder, seed=0, num_train=6, num_validation=2, num_test=2, show_progress=False)
    return folder


def _poses(pipe):
    out = pipe(
        "my sister is tall",
        num_inference_steps=2,
        num_frames=12,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    return np.asarray(out.poses[0])


def test_pipeline_loads_by_repo_id_offline(tmp_path):
    cache = tmp_path / "hub"
    snapshot = cache_folder_as_repo(FIXTURE, "test-org/sald-tiny", cache_dir=cache)
    assert snapshot.parent.parent == cache / "models--test-org--sald-tiny"
    assert (cache / "models--test-org--sald-tiny" / "refs" / "main").read_text() == snapshot.name
    assert cached_repo_path("test-org/sald-tiny", cache_dir=cache) == snapshot
    pipe = DiffusionPipeline.from_pretrained("test-org/sald-tiny", trust_remote_code=True, cache_dir=cache)
    assert type(pipe).__name__ == "SignSALDPipeline"
    np.testing.assert_array_equal(_poses(pipe), _poses(SignSALDPipeline.from_pretrained(str(FIXTURE))))


def test_checkpoints_stay_out_of_the_snapshot(tmp_path):
    folder = tmp_path / "trained"
    shutil.copytree(FIXTURE, folder)
    (folder / "checkpoints" / "vae" / "checkpoint-6").mkdir(parents=True)
    (folder / "checkpoints" / "vae" / "checkpoint-6" / "optimizer.pt").write_bytes(b"x")
    snapshot = cache_pipeline_as_repo(folder, "test-org/trained", cache_dir=tmp_path / "hub")
    assert not (snapshot / "checkpoints").exists() and (snapshot / "vae" / "config.json").is_file()


def test_dataset_loads_by_repo_id_offline(corpus, tmp_path):
    hub, ds_cache = tmp_path / "hub", tmp_path / "datasets"
    snapshot = cache_dataset_as_repo(corpus, "test-org/SynthTiny", cache_dir=hub, datasets_cache_dir=ds_cache)
    # the hub layout, as a download leaves it
    assert snapshot.parent.parent == hub / "datasets--test-org--SynthTiny" and (snapshot / "README.md").is_file()
    found = snapshot_download("test-org/SynthTiny", repo_type="dataset", cache_dir=hub, local_files_only=True)
    assert Path(found) == snapshot
    # the datasets library's own cache entry, where offline `load_dataset` looks (name in snake case)
    assert (ds_cache / "test-org___synth_tiny").is_dir()
    dd = datasets.load_dataset("test-org/SynthTiny", cache_dir=str(ds_cache))
    source = datasets.load_dataset(str(corpus), cache_dir=str(tmp_path / "local"))
    assert sorted(dd) == sorted(source)
    for split in source:
        assert dd[split]["id"] == source[split]["id"]
        np.testing.assert_array_equal(np.asarray(dd[split][0]["poses"]), np.asarray(source[split][0]["poses"]))


def test_adding_a_changed_corpus_again_loads_the_new_rows(tmp_path):
    ds_cache = tmp_path / "datasets"
    folder = tmp_path / "corpus"
    build_synthsign(folder, seed=0, num_train=4, num_validation=2, num_test=2, show_progress=False)
    cache_folder_as_repo(folder, "test-org/c", cache_dir=tmp_path / "hub", datasets_cache_dir=ds_cache)
    build_synthsign(folder, seed=1, num_train=5, num_validation=2, num_test=2, show_progress=False)
    cache_folder_as_repo(folder, "test-org/c", cache_dir=tmp_path / "hub", datasets_cache_dir=ds_cache)
    dd = datasets.load_dataset("test-org/c", cache_dir=str(ds_cache))
    assert len(dd["train"]) == 5
    assert dd["train"]["id"] == datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "l"))["train"]["id"]


def test_bad_input(corpus, tmp_path):
    with pytest.raises(ValueError, match="`repo_id`"):
        cache_folder_as_repo(FIXTURE, "no-namespace", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="`repo_id`"):
        cache_folder_as_repo(FIXTURE, "org/bad name", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="`repo_type` is 'dataset'"):
        cache_folder_as_repo(FIXTURE, "test-org/x", repo_type="dataset", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="`repo_type` is 'model'"):
        cache_folder_as_repo(corpus, "test-org/x", repo_type="model", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="neither a pipeline folder"):
        cache_folder_as_repo(tmp_path, "test-org/x", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        cache_folder_as_repo(tmp_path / "absent", "test-org/x", cache_dir=tmp_path)
    assert not list(tmp_path.glob("*--test-org--x"))


def test_cache_add_command_then_offline_loads_in_a_fresh_process(corpus, tmp_path):
    """The user's path: `hf-sign hub cache-add` twice, then both repo ids load with HF_HUB_OFFLINE=1."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(SRC)}
    for key in ("HF_HUB_CACHE", "HF_DATASETS_CACHE", "HUGGINGFACE_HUB_CACHE"):
        env.pop(key, None)
    script = f"""
import json, sys
from hf_sign.cli import main
assert main(["hub", "cache-add", {str(FIXTURE)!r}, "--repo-id", "test-org/sald"]) == 0
assert main(["hub", "cache-add", {str(corpus)!r}, "--repo-id", "test-org/synthsign", "--repo-type", "dataset"]) == 0
import datasets
from diffusers import DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained("test-org/sald", trust_remote_code=True)
dd = datasets.load_dataset("test-org/synthsign")
print(json.dumps({{"pipeline": type(pipe).__name__, "rows": {{k: len(v) for k, v in dd.items()}}}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert 'load it offline: DiffusionPipeline.from_pretrained("test-org/sald", trust_remote_code=True)' in lines
    assert json.loads(lines[-1]) == {"pipeline": "SignSALDPipeline", "rows": {"train": 6, "validation": 2, "test": 2}}
    assert (tmp_path / "hf" / "hub" / "models--test-org--sald").is_dir()
    assert (tmp_path / "hf" / "hub" / "datasets--test-org--synthsign").is_dir()
    assert (tmp_path / "hf" / "datasets" / "test-org___synthsign").is_dir()

"""Putting a local pipeline or corpus folder into the Hugging Face caches so it loads by repo id, offline.

`make demo` trains the small default once and stores it as if it had been downloaded from
`hf-sign/sign-sald-synthsign`; `hf-sign hub cache-add DIR --repo-id ORG/NAME` does the same for any pipeline or
corpus folder. Afterwards, with no network (`HF_HUB_OFFLINE=1`),

```python
DiffusionPipeline.from_pretrained("ORG/NAME", trust_remote_code=True)   # a pipeline folder
datasets.load_dataset("ORG/NAME")                                       # a corpus folder
```

work exactly as they would after a real download. Where each library looks:

* models: the hub cache (`HF_HUB_CACHE`, `~/.cache/huggingface/hub`) in its download layout,
  `models--ORG--NAME/{refs/main, snapshots/<revision>/...}`; diffusers resolves `refs/main` to the snapshot.
* datasets: the same hub layout (`datasets--ORG--NAME/...`, what `huggingface_hub.snapshot_download` and
  `hf_hub_download(..., repo_type="dataset")` find) **and** the `datasets` library's own Arrow cache
  (`HF_DATASETS_CACHE`, `~/.cache/huggingface/datasets`). Offline, `datasets.load_dataset("ORG/NAME")` (datasets
  3 to 5) never reads the hub cache: it raises `OfflineModeIsEnabled` before the Hub lookup and falls back to
  `CachedDatasetModuleFactory`, which loads `ORG___<name in snake case>/<config>/<version>/<hash>/`
  (`dataset_info.json` + one `<name>-<split>.arrow` per split) with the `cache` builder. `cache_dataset_as_repo`
  writes that entry by preparing the folder's Parquet files with the same builder `load_dataset` uses for a folder.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Union

from huggingface_hub import constants, try_to_load_from_cache

__all__ = [
    "REPO_TYPES",
    "cache_dataset_as_repo",
    "cache_folder_as_repo",
    "cache_pipeline_as_repo",
    "cached_repo_path",
    "check_repo_id",
    "detect_repo_type",
]

REPO_TYPES = ("model", "dataset")
# never part of a snapshot: Python byte code and training checkpoints (optimizer states are pickles)
_IGNORED = ("__pycache__", "checkpoint-*", "checkpoints")


def check_repo_id(repo_id: str, name: str = "repo_id") -> str:
    """`repo_id` if it is a valid `org/name` Hub id, else a `ValueError` naming the field `name`."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or any(not part for part in repo_id.split("/")):
        raise ValueError(f"`{name}` must look like 'org/name'; got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ValueError(f"`{name}` {repo_id!r} is not a valid Hub repo id: {err}") from None
    return repo_id


def detect_repo_type(folder: Union[str, Path], name: str = "folder") -> str:
    """`"model"` for a saved pipeline (`model_index.json`), `"dataset"` for an hf-sign corpus (`data/*.parquet`);
    otherwise a `ValueError` naming the field `name`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"`{name}` {str(folder)!r} does not exist or is not a folder.")
    if (folder / "model_index.json").is_file():
        return "model"
    if (folder / "data").is_dir() and any((folder / "data").glob("*.parquet")):
        return "dataset"
    raise ValueError(
        f"`{name}` {str(folder)!r} is neither a pipeline folder (no model_index.json) nor a corpus folder "
        "(no data/*.parquet as written by `hf-sign data`)."
    )


def _repo_folder(repo_id: str, cache_dir: Optional[Union[str, Path]] = None, repo_type: str = "model") -> Path:
    check_repo_id(repo_id)
    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    return cache / (f"{repo_type}s--" + repo_id.replace("/", "--"))


def _folder_revision(folder: Path) -> str:
    """A content hash of `folder` standing in for a commit sha (40 hex digits, like the Hub's)."""
    h = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _snapshot(folder: Path, repo_id: str, repo_type: str, cache_dir) -> Path:
    """Copy `folder` into the hub cache as the `main` revision of `repo_id`; return the snapshot path."""
    repo = _repo_folder(repo_id, cache_dir, repo_type)
    revision = _folder_revision(folder)
    snapshot = repo / "snapshots" / revision
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(folder, snapshot, ignore=shutil.ignore_patterns(*_IGNORED))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def cache_pipeline_as_repo(
    folder: Union[str, Path], repo_id: str, cache_dir: Optional[Union[str, Path]] = None
) -> Path:
    """Copy a saved pipeline `folder` into the hub cache as the `main` revision of `repo_id`; return the snapshot
    path. Training checkpoints (`checkpoints/`, `checkpoint-*`) are left out."""
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ValueError(f"`folder` {folder} is not a saved pipeline (no model_index.json).")
    return _snapshot(folder, repo_id, "model", cache_dir)


def cache_dataset_as_repo(
    folder: Union[str, Path],
    repo_id: str,
    cache_dir: Optional[Union[str, Path]] = None,
    datasets_cache_dir: Optional[Union[str, Path]] = None,
) -> Path:
    """Make the corpus `folder` load as `datasets.load_dataset(repo_id)` offline; return the hub-cache snapshot.

    Args:
        folder (`str` or `Path`): a corpus folder (`README.md` card + `data/<split>-*.parquet`, as `hf-sign data`
            or `hf-sign publish --repo-type dataset` writes it).
        repo_id (`str`): the dataset repo id, `org/name`.
        cache_dir (`str` or `Path`, *optional*): the hub cache; defaults to huggingface_hub's `HF_HUB_CACHE`.
        datasets_cache_dir (`str` or `Path`, *optional*): the `datasets` cache; defaults to `HF_DATASETS_CACHE`.
    """
    import datasets
    from datasets.load import LocalDatasetModuleFactory, get_dataset_builder_class
    from datasets.naming import camelcase_to_snakecase

    folder = Path(folder)
    if detect_repo_type(folder) != "dataset":
        raise ValueError(f"`folder` {folder} is not a corpus folder (no data/*.parquet).")
    snapshot = _snapshot(folder, repo_id, "dataset", cache_dir)
    # 1. prepare the Arrow cache from the snapshot, as `load_dataset(folder)` does, under the repo's dataset name
    org, name = repo_id.split("/")
    module = LocalDatasetModuleFactory(str(snapshot)).get_module()
    builder_kwargs = {**module.builder_kwargs, "dataset_name": name}
    builder_cls = get_dataset_builder_class(module, dataset_name=name)
    target_root = Path(datasets_cache_dir or datasets.config.HF_DATASETS_CACHE)
    with tempfile.TemporaryDirectory(prefix="hf-sign-datasets-") as tmp:
        builder = builder_cls(cache_dir=tmp, hash=module.hash, **builder_kwargs)
        builder.download_and_prepare()
        # 2. move it to `ORG___<name>/<config>/<version>/<hash>`, where the offline `cache` builder looks
        relative = Path(builder.cache_dir).relative_to(tmp)
        target = target_root / f"{org}___{camelcase_to_snakecase(name)}" / Path(*relative.parts[1:])
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(builder.cache_dir, target, ignore=shutil.ignore_patterns("*.lock"))
    return snapshot


def cache_folder_as_repo(
    folder: Union[str, Path],
    repo_id: str,
    repo_type: Optional[str] = None,
    cache_dir: Optional[Union[str, Path]] = None,
    datasets_cache_dir: Optional[Union[str, Path]] = None,
) -> Path:
    """`cache_pipeline_as_repo` or `cache_dataset_as_repo`, after `repo_type` (default: what the folder holds).

    Raises a `ValueError` naming `repo_type` when it is not `"model"`/`"dataset"` or does not match the folder.
    """
    check_repo_id(repo_id)
    found = detect_repo_type(folder, "DIR")
    if repo_type is not None and repo_type not in REPO_TYPES:
        raise ValueError(f"`repo_type` must be one of {REPO_TYPES}; got {repo_type!r}.")
    if repo_type is not None and repo_type != found:
        raise ValueError(f"`repo_type` is {repo_type!r} but {str(folder)!r} holds a {found} folder.")
    if found == "model":
        return cache_pipeline_as_repo(folder, repo_id, cache_dir=cache_dir)
    return cache_dataset_as_repo(folder, repo_id, cache_dir=cache_dir, datasets_cache_dir=datasets_cache_dir)


def cached_repo_path(repo_id: str, cache_dir: Optional[Union[str, Path]] = None) -> Optional[Path]:
    """The local snapshot of `repo_id` if a pipeline for it is in the hub cache, else None."""
    if repo_id.count("/") != 1:
        return None
    found = try_to_load_from_cache(repo_id, "model_index.json", cache_dir=cache_dir)
    return Path(found).parent if isinstance(found, str) else None

"""Putting a locally trained pipeline into the Hugging Face cache so it loads by repo id, offline.

`make demo` trains the small default once and stores it as if it had been downloaded from
`hf-sign/sign-sald-synthsign`; afterwards

```python
DiffusionPipeline.from_pretrained("hf-sign/sign-sald-synthsign", trust_remote_code=True)
```

works with no network, exactly as it would after a real download (same folder layout:
`models--ORG--NAME/{refs/main, snapshots/<revision>/...}` under the hub cache).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Optional, Union

from huggingface_hub import constants, try_to_load_from_cache


def _repo_folder(repo_id: str, cache_dir: Optional[Union[str, Path]] = None) -> Path:
    if repo_id.count("/") != 1 or any(not part for part in repo_id.split("/")):
        raise ValueError(f"`repo_id` must look like 'org/name'; got {repo_id!r}.")
    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    return cache / ("models--" + repo_id.replace("/", "--"))


def _folder_revision(folder: Path) -> str:
    """A content hash of `folder` standing in for a commit sha (40 hex digits, like the Hub's)."""
    h = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def cache_pipeline_as_repo(
    folder: Union[str, Path], repo_id: str, cache_dir: Optional[Union[str, Path]] = None
) -> Path:
    """Copy a saved pipeline `folder` into the hub cache as the `main` revision of `repo_id`; return the snapshot
    path."""
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ValueError(f"`folder` {folder} is not a saved pipeline (no model_index.json).")
    repo = _repo_folder(repo_id, cache_dir)
    revision = _folder_revision(folder)
    snapshot = repo / "snapshots" / revision
    if snapshot.exists():
        shutil.rmtree(snapshot)
    shutil.copytree(folder, snapshot, ignore=shutil.ignore_patterns("__pycache__", "checkpoint-*"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def cached_repo_path(repo_id: str, cache_dir: Optional[Union[str, Path]] = None) -> Optional[Path]:
    """The local snapshot of `repo_id` if a pipeline for it is in the hub cache, else None."""
    if repo_id.count("/") != 1:
        return None
    found = try_to_load_from_cache(repo_id, "model_index.json", cache_dir=cache_dir)
    return Path(found).parent if isinstance(found, str) else None

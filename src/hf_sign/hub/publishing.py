"""`hf-sign publish`: build a Hub repository folder from a pipeline or corpus folder, check it, upload it.

1. Stage the repository folder (`hf_sign.hub.folders`): for a model, `model_index.json`, the remote-code entry file,
   the component folders (safetensors weights and configs) and the training config/metrics; for a dataset, the card
   and the Parquet shards. Checkpoints and other files stay out and are listed.
2. Render the card (`hf_sign.hub.cards`), for a model with the `model-index` of its `results.json` row.
3. Check the folder offline (`hf_sign.hub.checks`), plus `RepoCard.validate()` when the Hub is reachable.
4. Unless `dry_run` (or a check failed): `HfApi().create_repo(..., exist_ok=True, private=...)` and
   `HfApi().upload_folder(...)`. The token is whatever huggingface_hub finds in the usual places (`HF_TOKEN`,
   `hf auth login`); this module never reads, passes or prints it.

```python
>>> from hf_sign.hub import publish
>>> result = publish("outputs/sign-sald-small", "my-org/sign-sald-synthsign", results="outputs/benchmark",
...                  dry_run=True)
>>> result.ok, result.staged.path
(True, PosixPath('outputs/hub/my-org--sign-sald-synthsign'))
```
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from ..pipelines.hub_cache import REPO_TYPES, check_repo_id, detect_repo_type
from .cards import render_dataset_card, render_model_card
from .checks import (
    Check,
    check_dataset_folder,
    check_model_folder,
    format_report,
    quiet_progress_bars,
    validate_online,
)
from .folders import StagedFolder, prepare_out_dir, stage_dataset_folder, stage_model_folder
from .results import find_results, load_results, reported_metrics, select_row

__all__ = ["DEFAULT_LICENSE", "PublishResult", "build_repo_folder", "default_out_dir", "publish"]

DEFAULT_LICENSE = "apache-2.0"  # the project's licence: a model's default
PathLike = Union[str, Path]


@dataclass
class PublishResult:
    """What `publish` did.

    Args:
        staged (`StagedFolder`): the repository folder and what was (not) copied into it.
        checks (`List[Check]`): the report, one line each.
        notes (`List[str]`): where the card's facts came from (results row, dataset id).
        uploaded (`bool`): whether the folder was uploaded.
        url (`str`, *optional*): the commit URL of the upload.
    """

    staged: StagedFolder
    checks: List[Check]
    notes: List[str] = field(default_factory=list)
    uploaded: bool = False
    url: Optional[str] = None

    @property
    def ok(self) -> bool:
        return not any(c.failed for c in self.checks)

    def print_report(self, repo_id: str) -> int:
        """Print what was built, the notes, one line per check and what happened to the upload; returns the command's
        exit code (1 when a check failed, so nothing was uploaded)."""
        staged = self.staged
        what = f"{staged.system.name} pipeline" if staged.system is not None else "corpus"
        print(
            f"built {staged.repo_type} repository {repo_id} ({what}) in {staged.path}: README.md + "
            f"{len(staged.files)} files"
        )
        for line in self.notes + [f"left out: {item}" for item in staged.left_out]:
            print(f"  {line}")
        print(format_report(self.checks))
        if not self.ok:
            print("hf-sign publish: a check failed; nothing was uploaded.", file=sys.stderr)
            return 1
        if self.uploaded:
            prefix = "datasets/" if staged.repo_type == "dataset" else ""
            print(f"uploaded to https://huggingface.co/{prefix}{repo_id} ({self.url})")
        else:
            print(
                f"dry run: nothing uploaded. Load it offline by repo id with: hf-sign hub cache-add {staged.path} "
                f"--repo-id {repo_id}"
            )
        return 0


def default_out_dir(repo_id: str) -> Path:
    """`outputs/hub/ORG--NAME`: where the repository folder is built unless `out` is given (rebuilt on each run)."""
    return Path("outputs") / "hub" / repo_id.replace("/", "--")


def _model_sources(
    folder: Path, repo_id: str, results: Optional[PathLike], results_row: Optional[str], dataset_id: Optional[str]
) -> Tuple[Optional[Dict[str, Any]], Optional[Dict[str, Any]], Optional[str], List[str]]:
    """The results, the published row, the training corpus' repo id, and notes saying where each came from."""
    notes = []
    path = find_results(folder, results)
    parsed = row = None
    if path is None:
        if results_row is not None:
            raise ValueError("`--results-row` needs a results.json (`--results`).")
        notes.append("model-index: none (no results.json in DIR; give one with --results)")
    else:
        parsed = load_results(path)
        row = select_row(parsed, folder, results_row)
        notes.append(f"model-index: row {row['name']!r} of {path} ({len(reported_metrics(row))} metrics)")
    if dataset_id is None and parsed is not None:
        guess = f"{repo_id.split('/')[0]}/{parsed['dataset_name']}"
        try:
            dataset_id = check_repo_id(guess, "--dataset-id")
            notes.append(f"datasets: {dataset_id} (the evaluated corpus under the model's org; --dataset-id sets it)")
        except ValueError:
            notes.append(f"datasets: none ({guess!r} is no repo id; give --dataset-id)")
    elif dataset_id is not None:
        notes.append(f"datasets: {dataset_id}")
    return parsed, row, dataset_id, notes


def build_repo_folder(
    folder: PathLike,
    repo_id: str,
    repo_type: Optional[str] = None,
    out: Optional[PathLike] = None,
    results: Optional[PathLike] = None,
    results_row: Optional[str] = None,
    dataset_id: Optional[str] = None,
    license: Optional[str] = None,
) -> Tuple[StagedFolder, Optional[Dict[str, Any]], List[str]]:
    """Stage the repository folder of `folder` with its card; returns it, the results row used and notes.

    Args:
        folder (`str` or `Path`): a trained pipeline folder of a registered system, or an hf-sign corpus folder.
        repo_id (`str`): the target repo id, `org/name`.
        repo_type (`str`, *optional*): `"model"` or `"dataset"`; defaults to what `folder` holds.
        out (`str` or `Path`, *optional*): where to build the folder (new or empty); defaults to
            `outputs/hub/ORG--NAME`, rebuilt on each run.
        results (`str` or `Path`, *optional*): the benchmark's `results.json` (or its folder); defaults to
            `folder/results.json` when there is one. Models only.
        results_row (`str`, *optional*): the row of the published model in `results.json` (default: the row whose
            `source` is `folder`, else the only model row).
        dataset_id (`str`, *optional*): the training corpus' repo id for the card's `datasets`; defaults to
            `ORG/<dataset_name of results.json>`.
        license (`str`, *optional*): the Hub licence id; a model defaults to `"apache-2.0"`, a dataset to its
            card's.

    Raises:
        ValueError: naming the field: `DIR` (missing, not a pipeline of a registered system or a corpus, pickled
            weights), `--repo-id`, `--repo-type`, `--out`, `--results`, `--results-row`, `--dataset-id`, `--license`.
    """
    folder = Path(folder)
    check_repo_id(repo_id, "--repo-id")
    found = detect_repo_type(folder, "DIR")
    if repo_type is not None and repo_type not in REPO_TYPES:
        raise ValueError(f"`--repo-type` must be one of {REPO_TYPES}; got {repo_type!r}.")
    if repo_type is not None and repo_type != found:
        raise ValueError(f"`--repo-type` is {repo_type!r} but DIR {str(folder)!r} holds a {found} folder.")
    if dataset_id is not None:
        check_repo_id(dataset_id, "--dataset-id")
    if found == "dataset":
        given = [
            flag
            for flag, v in (("--results", results), ("--results-row", results_row), ("--dataset-id", dataset_id))
            if v is not None
        ]
        if given:
            raise ValueError(f"`{given[0]}` applies to model repositories only.")
    out_dir = prepare_out_dir(Path(out) if out is not None else default_out_dir(repo_id), folder, replace=out is None)
    if found == "dataset":
        staged = stage_dataset_folder(folder, out_dir)
        render_dataset_card(staged, repo_id, license)
        return staged, None, []
    staged = stage_model_folder(folder, out_dir)
    parsed, row, dataset_id, notes = _model_sources(folder, repo_id, results, results_row, dataset_id)
    from ..pipelines.loading import load_sign_pipeline

    try:  # the card describes the poses from the loaded pipeline (skeleton, fps, normaliser)
        pipe = load_sign_pipeline(str(folder))
    except Exception as err:  # noqa: BLE001 - re-raised naming the field
        raise ValueError(f"`DIR` {str(folder)!r} does not load as a {staged.system.name} pipeline: {err}") from err
    render_model_card(staged, repo_id, pipe, parsed, row, dataset_id, license or DEFAULT_LICENSE)
    return staged, row, notes


def publish(
    folder: PathLike,
    repo_id: str,
    repo_type: Optional[str] = None,
    dry_run: bool = False,
    private: bool = False,
    out: Optional[PathLike] = None,
    results: Optional[PathLike] = None,
    results_row: Optional[str] = None,
    dataset_id: Optional[str] = None,
    license: Optional[str] = None,
) -> PublishResult:
    """Build, check and (unless `dry_run` or a check fails) upload the repository folder of `folder`.

    Args:
        dry_run (`bool`, defaults to `False`): build and check only; nothing is uploaded.
        private (`bool`, defaults to `False`): create the repository as private (an existing one keeps its setting).
        folder, repo_id, repo_type, out, results, results_row, dataset_id, license: as in [`build_repo_folder`].

    Returns:
        [`PublishResult`]: the staged folder, the check report, notes, and the upload's commit URL.
    """
    with quiet_progress_bars():
        staged, row, notes = build_repo_folder(
            folder, repo_id, repo_type, out, results, results_row, dataset_id, license
        )
        if staged.repo_type == "model":
            checks = check_model_folder(staged.path, staged.system, row)
        else:
            checks = check_dataset_folder(staged.path)
    checks.append(validate_online(staged.path / "README.md", staged.repo_type))
    result = PublishResult(staged, checks, notes)
    if dry_run or not result.ok:
        return result
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type=staged.repo_type, private=bool(private), exist_ok=True)
    what = f"{staged.system.name} pipeline" if staged.system is not None else "corpus"
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(staged.path),
        repo_type=staged.repo_type,
        commit_message=f"Upload {what} with hf-sign publish",
    )
    result.uploaded, result.url = True, getattr(info, "commit_url", None) or str(info)
    return result

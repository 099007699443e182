"""The repository folder `hf-sign publish` uploads: what is copied from a pipeline or corpus folder, and what is not.

A **model** repository holds exactly what loading needs, as `save_pretrained` wrote it:

```
README.md                       the model card (written by `hf_sign.hub.cards`)
model_index.json                names the remote-code entry file: "_class_name": ["pipeline_x", "XPipeline"]
pipeline_x.py                   the entry file (a copy of the repository's top-level pipelines/pipeline_x.py)
<component>/...                 each component of model_index.json: configs, safetensors weights, shims
<prefix>_config.json            the resolved training config      } when the training run left them: the card's
<prefix>_metrics.json           the training metrics              } training budget is read from them
```

Anything else in the folder (training `checkpoints/`, benchmark outputs, notes) stays out and is listed in the
report, never dropped silently. Pickle-based weight files (`.bin`, `.pt`, `.pkl`, ...) are refused, never opened.

A **dataset** repository holds the corpus card (`README.md`) and its Parquet shards (`data/*.parquet`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

from ..pipelines.hub_cache import detect_repo_type
from ..systems import SignSystem, list_systems, system_for_pipeline

__all__ = [
    "PICKLE_SUFFIXES",
    "StagedFolder",
    "model_components",
    "prepare_out_dir",
    "stage_dataset_folder",
    "stage_model_folder",
    "training_files",
]

# Weight or data formats that `torch.load` / `pickle` would have to unpickle: never published.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
_WHY_LEFT_OUT = {
    "checkpoints": "training checkpoints: optimizer states; the weights are in the component folders",
    "README.md": "replaced by the card rendered for the Hub",
    "results.json": "benchmark results (the card's model-index carries this model's row)",
    "results.md": "benchmark table",
    "skipped.jsonl": "converter report of skipped source items",
}


@dataclass
class StagedFolder:
    """A repository folder ready for the Hub.

    Args:
        path (`Path`): the folder.
        repo_type (`str`): `"model"` or `"dataset"`.
        source (`Path`): the pipeline or corpus folder it was built from.
        files (`List[str]`): the files copied, relative to `path` (the card excluded).
        left_out (`List[str]`): top-level entries of `source` not copied, each with the reason.
        system (`SignSystem`, *optional*): the registered system of a model folder.
    """

    path: Path
    repo_type: str
    source: Path
    files: List[str] = field(default_factory=list)
    left_out: List[str] = field(default_factory=list)
    system: Optional[SignSystem] = None


def training_files(system: SignSystem) -> Tuple[Optional[str], str]:
    """`(config file, metrics file)` a training run of `system` leaves in its output folder (the stage runner writes
    `<prefix>_config.json` beside `<prefix>_metrics.json`); the config is `None` for a differently named metrics
    file."""
    metrics = system.metrics_file
    config = metrics[: -len("_metrics.json")] + "_config.json" if metrics.endswith("_metrics.json") else None
    return config, metrics


def model_components(index: dict) -> List[Tuple[str, str, str]]:
    """`(component, library or module, class)` of every saved component in a `model_index.json` dict."""
    out = []
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[0] is None:
            continue
        out.append((name, str(value[0]), str(value[1])))
    return out


def prepare_out_dir(out: Path, source: Path, replace: bool) -> Path:
    """Create the empty folder `out` for a repository built from `source`.

    `replace` (the default location of `hf-sign publish`) empties an existing `out`; a folder given by the user must
    be new or empty, so nothing of theirs is ever deleted. Raises a `ValueError` naming `--out` otherwise, and when
    `out` and `source` contain one another.
    """
    out_r, src_r = out.resolve(), source.resolve()
    if out_r == src_r or src_r in out_r.parents or out_r in src_r.parents:
        raise ValueError(f"`--out` {str(out)!r} must lie outside the folder being published ({str(source)!r}).")
    if out.exists() and not out.is_dir():
        raise ValueError(f"`--out` {str(out)!r} is a file; expected a new or empty folder.")
    if out.is_dir() and any(out.iterdir()):
        if not replace:
            raise ValueError(
                f"`--out` {str(out)!r} exists and is not empty; give a new or empty folder (or remove it)."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _refuse_pickles(files: List[Path], root: Path) -> None:
    bad = [str(f.relative_to(root)) for f in files if f.suffix.lower() in PICKLE_SUFFIXES]
    if bad:
        raise ValueError(
            f"`DIR` {str(root)!r} holds pickle-based file(s) {bad}: hf-sign publishes safetensors weights only and "
            "never unpickles. Save the pipeline again with `save_pretrained` (safe_serialization) and publish that."
        )


def _files_under(path: Path) -> List[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _copy(files: List[Path], source: Path, out: Path) -> List[str]:
    copied = []
    for f in files:
        rel = f.relative_to(source)
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, out / rel)
        copied.append(rel.as_posix())
    return copied


def _left_out(source: Path, kept: set) -> List[str]:
    out = []
    for entry in sorted(source.iterdir()):
        if entry.name in kept or entry.name == "__pycache__":
            continue
        label = entry.name + ("/" if entry.is_dir() else "")
        out.append(f"{label} ({_WHY_LEFT_OUT.get(entry.name, 'not part of the repository')})")
    return out


def stage_model_folder(source: Path, out: Path) -> StagedFolder:
    """Copy what the pipeline folder `source` needs on the Hub into the empty folder `out` (see the module doc).

    Raises a `ValueError` naming `DIR` when `source` is not a pipeline folder of a registered system, lacks its entry
    file or a component folder, or holds a pickle-based file among what would be published.
    """
    source = Path(source)
    if detect_repo_type(source) != "model":
        raise ValueError(f"`DIR` {str(source)!r} is a corpus folder; publish it with `--repo-type dataset`.")
    system = system_for_pipeline(source)
    index = json.loads((source / "model_index.json").read_text(encoding="utf-8"))
    class_name = index.get("_class_name")
    if system is None:
        known = [
            s.pipeline.rpartition(":")[2] if isinstance(s.pipeline, str) else s.pipeline.__name__
            for s in list_systems(generators_only=True)
        ]
        raise ValueError(
            f"`DIR` {str(source)!r} is not a pipeline folder of a registered system: its model_index.json names "
            f"{class_name!r}; registered pipelines: {known}."
        )
    if not (isinstance(class_name, list) and len(class_name) == 2 and class_name[0]):
        raise ValueError(
            f"`DIR` {str(source)!r}: model_index.json `_class_name` is {class_name!r}; expected [entry file, class] "
            "as the pipeline's `save_pretrained` writes it (the Hub entry file names the remote code)."
        )
    entry = f"{class_name[0]}.py"
    components = [name for name, _, _ in model_components(index)]
    required = ["model_index.json", entry] + components
    missing = [name for name in required if not (source / name).exists()]
    if missing:
        raise ValueError(f"`DIR` {str(source)!r} lacks {missing}, which its model_index.json names.")
    optional = [name for name in training_files(system) if name and (source / name).is_file()]
    files = [f for name in required + optional for f in _files_under(source / name)]
    _refuse_pickles(files, source)
    copied = _copy(files, source, out)
    return StagedFolder(out, "model", source, copied, _left_out(source, set(required + optional)), system)


def stage_dataset_folder(source: Path, out: Path) -> StagedFolder:
    """Copy the corpus folder's card and Parquet shards into the empty folder `out`.

    Raises a `ValueError` naming `DIR` when `source` is not a corpus folder (a `README.md` card and `data/*.parquet`).
    """
    source = Path(source)
    if detect_repo_type(source) != "dataset":
        raise ValueError(f"`DIR` {str(source)!r} is a pipeline folder; publish it with `--repo-type model`.")
    if not (source / "README.md").is_file():
        raise ValueError(f"`DIR` {str(source)!r} has no README.md dataset card (as `hf-sign data` writes it).")
    shards = sorted((source / "data").glob("*.parquet"))
    others = sorted(p for p in _files_under(source / "data") if p not in shards)
    _refuse_pickles(shards, source)
    copied = _copy([source / "README.md"] + shards, source, out)
    left_out = _left_out(source, {"README.md", "data"})
    left_out += [f"{p.relative_to(source).as_posix()} (not a Parquet shard)" for p in others]
    return StagedFolder(out, "dataset", source, [c for c in copied if c != "README.md"], left_out)

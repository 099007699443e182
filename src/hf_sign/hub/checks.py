"""The offline checks of a repository folder (`hf-sign publish --dry-run`, and before every upload).

Model folder:

1. the card loads with `ModelCard.load`;
2. its metadata round-trips through `ModelCardData` (front matter -> `ModelCardData` -> dict, unchanged);
3. its `model-index` goes through the Hub's own parser, `model_index_to_eval_results`, and back through
   `eval_results_to_model_index` unchanged;
4. the model-index numbers equal the `results.json` row they came from, metric by metric (and no reported metric
   is missing);
5. the metadata the Hub needs: `library_name: diffusers`, the system's `pipeline_tag`, the tags (sign-language, the
   system, a skeleton), a `license`, `datasets`;
6. every file that `model_index.json` (entry file, component folders, remote-code modules) or the card (relative
   links) references exists;
7. weights are safetensors only;
8. the folder loads with `hf_sign.pipelines.loading.load_sign_pipeline` and with plain
   `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`, both as the system's pipeline class.

Dataset folder: 1-2 with `DatasetCard` / `DatasetCardData`, the metadata (licence, tags), the referenced files, and
`datasets.load_dataset(folder)` with the card's split sizes.

`RepoCard.validate()` posts the card to the Hub, so `validate_online` runs it only when the Hub answers; otherwise it
is one `skip` line. A check that raises is one `fail` line with the error's first line, never a traceback.
"""

from __future__ import annotations

import contextlib
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional
from urllib.parse import urlparse

import yaml

from .folders import PICKLE_SUFFIXES, model_components

__all__ = [
    "Check",
    "check_dataset_folder",
    "check_model_folder",
    "format_report",
    "quiet_progress_bars",
    "validate_online",
]

_LINK_RE = re.compile(r"\]\(([^)\s]+)\)")


@dataclass
class Check:
    """One line of the report: `status` is `"ok"`, `"fail"`, `"warn"` or `"skip"`."""

    name: str
    status: str
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


@contextlib.contextmanager
def quiet_progress_bars():
    """Hide the loading bars of diffusers, transformers and datasets (the checks load whole folders; the report is
    the output), restoring each library's setting afterwards."""
    import datasets
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    libraries = [diffusers_logging, transformers_logging, datasets]
    before = [lib.is_progress_bar_enabled() for lib in libraries]
    for lib in libraries:
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, enabled in zip(libraries, before):
            if enabled:
                lib.enable_progress_bar()


def _one_line(text: Any) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _run(checks: List[Check], name: str, fn: Callable[[], Any]) -> Any:
    """Run one check; `fn` returns a detail string (or `(status, detail)`) and raises on failure."""
    try:
        out = fn()
    except Exception as err:  # noqa: BLE001 - every failure becomes one report line
        checks.append(Check(name, "fail", f"{type(err).__name__}: {_one_line(err)}"))
        return None
    status, detail = out if isinstance(out, tuple) else ("ok", out or "")
    checks.append(Check(name, status, _one_line(detail)))
    return out


def format_report(checks: List[Check]) -> str:
    return "\n".join(f"[{c.status:>4}] {c.name}" + (f": {c.detail}" if c.detail else "") for c in checks)


def _load_card(card_class, folder: Path, raw: Dict[str, Any]) -> str:
    """Load the card with `card_class.load` and put its YAML front matter, as parsed by `yaml`, into `raw`."""
    card = card_class.load(str(folder / "README.md"))
    text = (folder / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.DOTALL)
    if not match:
        raise ValueError("README.md has no YAML front matter")
    raw.update(yaml.safe_load(match.group(1)) or {})
    if not raw or not card.data.to_dict():
        raise ValueError("the card's metadata block is empty or was not found")
    return f"{len(raw)} metadata fields, {len(card.text)} characters of text"


def _missing_links(folder: Path) -> List[str]:
    text = (folder / "README.md").read_text(encoding="utf-8")
    targets = [t.split("#")[0] for t in _LINK_RE.findall(text)]
    local = [t for t in targets if t and not re.match(r"^[a-z]+:", t) and not t.startswith("/")]
    return sorted({t for t in local if not (folder / t).exists()})


def _round_trip(card_data_class, raw: Dict[str, Any]) -> str:
    again = card_data_class(**raw).to_dict()
    if again != raw:
        changed = sorted(k for k in set(raw) | set(again) if raw.get(k) != again.get(k))
        raise ValueError(f"the metadata changed through {card_data_class.__name__}: {changed}")
    return f"{len(raw)} fields"


def _require_tags(tags: List[str], required: List[str], skeleton_names: List[str]) -> None:
    missing = [t for t in required if t not in tags]
    if missing:
        raise ValueError(f"`tags` lacks {missing}")
    if not any(t in skeleton_names for t in tags):
        raise ValueError(f"`tags` names no skeleton (one of {skeleton_names})")


# ------------------------------------------------------------------------------------------------ model
def check_model_folder(folder: Path, system, row: Optional[Dict[str, Any]] = None) -> List[Check]:
    """The offline checks of a model repository folder of `system` (see the module doc); `row` is the results.json
    row its model-index came from."""
    import json

    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import eval_results_to_model_index, model_index_to_eval_results

    from ..skeletons import list_skeletons
    from .results import reported_metrics

    folder = Path(folder)
    checks: List[Check] = []
    raw: Dict[str, Any] = {}
    _run(checks, "card loads (ModelCard.load)", lambda: _load_card(ModelCard, folder, raw))
    _run(checks, "metadata round-trips (ModelCardData)", lambda: _round_trip(ModelCardData, raw))

    def parse_model_index():
        if "model-index" not in raw:
            return "skip", "no model-index (no results.json given)"
        name, results = model_index_to_eval_results(raw["model-index"])
        back = eval_results_to_model_index(name, results)
        if back != raw["model-index"]:
            raise ValueError("eval_results_to_model_index does not give the card's model-index back")
        return f"{len(results)} metrics of {name!r}, back through eval_results_to_model_index unchanged"

    _run(checks, "model-index parses (model_index_to_eval_results)", parse_model_index)

    def equals_results():
        if row is None:
            return "skip", "no results.json given (--results)"
        _, results = model_index_to_eval_results(raw.get("model-index") or [])
        card = {r.metric_type: r.metric_value for r in results}
        expected = {key: value for key, _, value, _ in reported_metrics(row)}
        if card != expected:
            diff = sorted(k for k in set(card) | set(expected) if card.get(k) != expected.get(k))
            raise ValueError(f"model-index differs from results.json row {row['name']!r} in {diff}")
        return f"{len(card)} metrics equal row {row['name']!r}"

    _run(checks, "model-index equals results.json", equals_results)

    def metadata():
        expected = {"library_name": "diffusers", "pipeline_tag": system.pipeline_tag}
        wrong = {k: raw.get(k) for k, v in expected.items() if raw.get(k) != v}
        if wrong:
            raise ValueError(f"expected {expected}; got {wrong}")
        _require_tags(raw.get("tags") or [], ["sign-language", system.name], list_skeletons())
        if not raw.get("license"):
            raise ValueError("no `license`")
        if not raw.get("datasets"):
            return "warn", "no `datasets` (pass --dataset-id ORG/NAME)"
        return (
            f"library_name, pipeline_tag {system.pipeline_tag!r}, tags, license {raw['license']!r}, "
            f"datasets {raw['datasets']}"
        )

    _run(checks, "card metadata", metadata)

    def references():
        index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
        wanted = [f"{index['_class_name'][0]}.py"]
        from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES

        for name, library, _ in model_components(index):
            wanted.append(name)
            if library not in LOADABLE_CLASSES and library not in ("diffusers", "transformers"):
                wanted.append(f"{name}/{library}.py")  # a remote-code component module
        missing = [w for w in wanted if not (folder / w).exists()] + _missing_links(folder)
        if missing:
            raise ValueError(f"missing {missing}")
        return f"{len(wanted)} from model_index.json, the card's links"

    _run(checks, "referenced files exist", references)
    _run(checks, "weights are safetensors", lambda: _safetensors_only(folder))

    def own_loader():
        from ..pipelines.loading import load_sign_pipeline

        pipe = load_sign_pipeline(str(folder))
        if type(pipe) is not system.pipeline_class():
            raise ValueError(f"loaded a {type(pipe).__name__}, expected {system.pipeline_class().__name__}")
        return type(pipe).__name__

    def remote_code():
        from diffusers import DiffusionPipeline

        pipe = DiffusionPipeline.from_pretrained(str(folder), trust_remote_code=True)
        if type(pipe).__name__ != system.pipeline_class().__name__:
            raise ValueError(f"loaded a {type(pipe).__name__}, expected {system.pipeline_class().__name__}")
        return f"{type(pipe).__name__} from the entry file"

    _run(checks, "loads with load_sign_pipeline", own_loader)
    _run(checks, "loads with DiffusionPipeline.from_pretrained(trust_remote_code=True)", remote_code)
    return checks


def _safetensors_only(folder: Path) -> str:
    files = [p for p in folder.rglob("*") if p.is_file()]
    pickles = [str(p.relative_to(folder)) for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise ValueError(f"pickle-based files {pickles}")
    count = sum(p.suffix == ".safetensors" for p in files)
    if not count:
        raise ValueError("no .safetensors weights")
    return f"{count} .safetensors files, no pickles"


# ------------------------------------------------------------------------------------------------ dataset
def check_dataset_folder(folder: Path) -> List[Check]:
    """The offline checks of a dataset repository folder (see the module doc)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from ..skeletons import list_skeletons

    folder = Path(folder)
    checks: List[Check] = []
    raw: Dict[str, Any] = {}
    _run(checks, "card loads (DatasetCard.load)", lambda: _load_card(DatasetCard, folder, raw))
    _run(checks, "metadata round-trips (DatasetCardData)", lambda: _round_trip(DatasetCardData, raw))

    def metadata():
        if not raw.get("license"):
            raise ValueError("no `license`")
        _require_tags(raw.get("tags") or [], ["sign-language"], list_skeletons())
        if raw["license"] == "other":
            return "warn", "license 'other': check the source corpus' terms before uploading"
        return f"license {raw['license']!r}, tags"

    _run(checks, "card metadata", metadata)

    def references():
        shards = sorted((folder / "data").glob("*.parquet"))
        if not shards:
            raise ValueError("no data/*.parquet")
        missing = _missing_links(folder)
        for config in raw.get("configs") or []:
            files = config.get("data_files") or []
            patterns = [files] if isinstance(files, str) else [f["path"] if isinstance(f, dict) else f for f in files]
            flat = [p for pat in patterns for p in ([pat] if isinstance(pat, str) else pat)]
            missing += [p for p in flat if not list(folder.glob(p))]
        if missing:
            raise ValueError(f"missing {missing}")
        return f"{len(shards)} Parquet shards, the card's links"

    _run(checks, "referenced files exist", references)

    def loads():
        import datasets

        with tempfile.TemporaryDirectory(prefix="hf-sign-check-") as cache:  # never a stale cached copy
            dd = datasets.load_dataset(str(folder), cache_dir=cache)
            sizes = {name: len(ds) for name, ds in dd.items()}
        info = raw.get("dataset_info") or {}
        stated = {s["name"]: s["num_examples"] for s in info.get("splits", []) if "num_examples" in s}
        if stated and stated != sizes:
            raise ValueError(f"split sizes {sizes} differ from the card's dataset_info {stated}")
        return ", ".join(f"{k}={v}" for k, v in sizes.items())

    _run(checks, "loads with datasets.load_dataset", loads)
    return checks


# ------------------------------------------------------------------------------------------------ online
def validate_online(readme: Path, repo_type: str, timeout: float = 3.0) -> Check:
    """`RepoCard.validate()` when the Hub is reachable; one `skip` line otherwise (it posts the card to the Hub)."""
    from huggingface_hub import RepoCard, constants

    name = "RepoCard.validate() on the Hub"
    if constants.HF_HUB_OFFLINE:
        return Check(name, "skip", "skipped: offline mode (HF_HUB_OFFLINE is set)")
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return Check(name, "skip", f"skipped: the Hub ({host}) is not reachable from here")
    try:
        RepoCard.load(str(readme)).validate(repo_type=repo_type)
    except ValueError as err:
        return Check(name, "fail", _one_line(err))
    except Exception as err:  # noqa: BLE001 - a network failure is not a verdict on the card
        return Check(name, "skip", f"skipped: the validation request failed ({type(err).__name__})")
    return Check(name, "ok", "the Hub accepts the card")

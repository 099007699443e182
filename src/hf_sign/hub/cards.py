"""Model and dataset cards for `hf-sign publish`, rendered through huggingface_hub's `ModelCard` / `DatasetCard`.

The model card comes from the Jinja template `hf_sign/hub_cards/model_card.md` (`ModelCard.from_template`); its
metadata is a `ModelCardData`: `library_name: diffusers`, the system's `pipeline_tag`, `tags` (sign-language, the
system, the skeleton), `license`, `datasets` and a `model-index` built from the benchmark's `results.json`
(`hf_sign.hub.results`). The text states what a user of the poses needs: the pose layout (from the pipeline's
`SkeletonSpec`), units and fps, the normalisation, the training budget (from the folder's `<prefix>_config.json` and
`<prefix>_metrics.json`) and the back-translation evaluator (from the results' metadata).

A corpus keeps the card `hf-sign data` wrote; `DatasetCard` reloads it, its metadata gains the tags the Hub search
needs, and the section `## Loading from the Hub` (template `dataset_card_hub.md`) is appended (or replaced).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

from huggingface_hub import DatasetCard, ModelCard, ModelCardData

from ..data.io import hub_cards_dir
from ..skeletons.spec import SkeletonSpec, get_skeleton
from .folders import StagedFolder, model_components, training_files
from .results import eval_results_from_row, evaluator_summary, reported_metrics

__all__ = [
    "HUB_SECTION",
    "pose_layout",
    "pose_units",
    "render_dataset_card",
    "render_model_card",
    "training_budget",
]

HUB_SECTION = "## Loading from the Hub"
BASE_TAGS = ("sign-language", "sign-language-production", "hf-sign")
_SHARD_RE = re.compile(r"^(?P<split>[\w.]+?)-\d{5}-of-\d{5}\.parquet$")


# ------------------------------------------------------------------------------------------ pose facts
def pose_layout(spec: SkeletonSpec) -> List[Dict[str, str]]:
    """Rows `part / features / joints` of the feature vector: one per part, or one per joint for parts of at most
    two joints (so smplx133 reads body `0:30`, hands `30:75` and `75:120`, jaw `120:123`, expression `123:133`)."""
    slices = spec.joint_slices
    rows = []
    for part, joints in spec.parts.items():
        if not joints:
            continue
        groups = [[j] for j in joints] if len(joints) <= 2 else [list(joints)]
        for group in groups:
            spans: List[List[int]] = []
            for j in group:
                s = slices[j]
                if spans and spans[-1][1] == s.start:
                    spans[-1][1] = s.stop
                else:
                    spans.append([s.start, s.stop])
            names = [spec.joint_names[j] for j in group]
            widths = sorted({spec.joint_dims[j] for j in group})
            width = f"{widths[0]} each" if len(widths) == 1 else "widths " + "/".join(map(str, widths))
            label = part if len(groups) == 1 else f"{part}: {names[0]}"
            joints_text = (
                f"{len(names)} joints ({width}): {names[0]} ... {names[-1]}"
                if len(names) > 2
                else ", ".join(f"{n} ({spec.joint_dims[j]})" for n, j in zip(names, group))
            )
            rows.append({"part": label, "features": ", ".join(f"{a}:{b}" for a, b in spans), "joints": joints_text})
    return rows


def pose_units(spec: SkeletonSpec) -> str:
    if spec.feature_kind == "axis_angle":
        other = [n for n, d in zip(spec.joint_names, spec.joint_dims) if d != 3]
        tail = f"; {', '.join(other)}: coefficients" if other else ""
        return f"axis-angle rotations in radians, 3 per joint, in the skeleton's joint frames{tail}"
    frame = "image coordinates (y points down)" if spec.y_down else "3D coordinates"
    return f"xyz joint positions ({spec.num_joints} joints x 3) in the corpus' {frame}"


def _normalisation(pipe: Any) -> str:
    from ..data.normalization import PoseNormalizer

    found = [(name, c) for name, c in pipe.components.items() if isinstance(c, PoseNormalizer)]
    if not found:
        return (
            "The pipeline has no feature-normalisation component (`PoseNormalizer`): what it returns is in the "
            "training corpus' units as stored."
        )
    name, norm = found[0]
    return (
        f"`{name}/` is a `PoseNormalizer`: per-feature standardisation `(x - mean) / std` over the "
        f"{norm.config.feature_dim} features, with statistics fitted on {int(norm.num_frames_fitted)} frames of the "
        f"training split (std floored at {norm.config.eps:g}). The model works on standardised features; the "
        "pipeline de-normalises its output, so poses come back in the corpus' units."
    )


# ------------------------------------------------------------------------------------------ training budget
def _duration(seconds: Optional[float]) -> str:
    if not isinstance(seconds, (int, float)):
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "–" if value is None else str(value)


def training_budget(folder: Path, system) -> Optional[Dict[str, Any]]:
    """Per training stage of `system`: epochs and batch size (the saved config's `<stage>_training`), optimizer
    steps and wall time (the metrics' `<stage>_global_step`, `<stage>_seconds`); None without a metrics file."""
    config_name, metrics_name = training_files(system)
    metrics_path = Path(folder) / metrics_name
    if not metrics_path.is_file():
        return None
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    config_path = Path(folder) / config_name if config_name else None
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path and config_path.is_file() else {}
    stages, total = [], 0.0
    for stage in system.stages:
        if not any(key.startswith(f"{stage}_") for key in metrics):
            continue
        section = config.get(f"{stage}_training") or {}
        seconds = metrics.get(f"{stage}_seconds")
        total += seconds if isinstance(seconds, (int, float)) else 0.0
        stages.append(
            {
                "name": stage,
                "epochs": _number(section.get("num_train_epochs")),
                "steps": _number(metrics.get(f"{stage}_global_step")),
                "batch_size": _number(section.get("per_device_train_batch_size")),
                "wall_time": _duration(seconds),
            }
        )
    return {
        "num_train": metrics.get("num_train"),
        "seed": config.get("seed"),
        "num_threads": config.get("num_threads"),
        "stages": stages,
        "total_wall_time": _duration(total) if total else None,
        "config_file": config_name if config else None,
        "metrics_file": metrics_name,
    }


# ------------------------------------------------------------------------------------------ model card
def _files(staged: StagedFolder, index: Dict[str, Any]) -> List[Dict[str, str]]:
    entry = f"{index['_class_name'][0]}.py"
    files = [
        {"label": "model_index.json", "target": "model_index.json", "about": "the pipeline's components"},
        {"label": entry, "target": entry, "about": "remote-code entry file"},
    ]
    for name, library, cls in model_components(index):
        files.append({"label": f"{name}/", "target": name, "about": f"`{cls}` (`{library}`)"})
    for name in training_files(staged.system):
        if name and name in staged.files:
            files.append(
                {"label": name, "target": name, "about": "training config" if "config" in name else "training metrics"}
            )
    return files


def _evaluation(results: Dict[str, Any], row: Dict[str, Any]) -> Dict[str, Any]:
    truth = [s for s in results["systems"] if s["kind"] == "ground_truth"]
    gt_bleu4 = truth[0]["metrics"].get("bleu4") if truth else None
    bleu4 = row["metrics"].get("bleu4")
    numbers = isinstance(gt_bleu4, (int, float)) and isinstance(bleu4, (int, float))
    return {
        "bleu4_fraction": f"{100.0 * bleu4 / gt_bleu4:.1f}" if numbers and gt_bleu4 > 0 else None,
        "split": results["split"],
        "dataset": results["dataset_name"],
        "num_samples": results.get("num_samples", "?"),
        "evaluator": evaluator_summary(results),
        "ground_truth_bleu4": f"{gt_bleu4:.2f}" if isinstance(gt_bleu4, (int, float)) else None,
        "metrics": [
            {"name": header, "value": f"{value:.{decimals}f}"} for _, header, value, decimals in reported_metrics(row)
        ],
    }


def render_model_card(
    staged: StagedFolder,
    repo_id: str,
    pipe: Any,
    results: Optional[Dict[str, Any]] = None,
    row: Optional[Dict[str, Any]] = None,
    dataset_id: Optional[str] = None,
    license: str = "apache-2.0",
) -> ModelCard:
    """Render the model card of the staged pipeline folder, save it as its `README.md` and return it.

    Args:
        staged (`StagedFolder`): the repository folder (`hf_sign.hub.folders.stage_model_folder`).
        repo_id (`str`): the Hub repo id, `org/name` (the usage example loads it; `name` names the model-index).
        pipe (`DiffusionPipeline`): the loaded pipeline (its skeleton, fps and normaliser describe the poses).
        results (`dict`, *optional*): the parsed `results.json`; with `row`, fills the `model-index`.
        row (`dict`, *optional*): the published model's row of `results["systems"]`.
        dataset_id (`str`, *optional*): Hub id of the training corpus (`datasets` metadata, model-index dataset).
        license (`str`, defaults to `"apache-2.0"`): the Hub licence id.
    """
    from ..demo import DEFAULT_TEXT

    system, spec = staged.system, pipe.skeleton
    index = json.loads((staged.path / "model_index.json").read_text(encoding="utf-8"))
    name = repo_id.split("/")[1]
    eval_results = eval_results_from_row(results, row, system.pipeline_tag, dataset_id) if row else None
    card_data = ModelCardData(
        library_name="diffusers",
        pipeline_tag=system.pipeline_tag,
        tags=list(dict.fromkeys([*BASE_TAGS[:2], system.name, spec.name, BASE_TAGS[2]])),
        license=license,
        datasets=[dataset_id] if dataset_id else None,
        model_name=name if eval_results else None,
        eval_results=eval_results or None,
    )
    text_input = system.input_name == "prompt"
    example = DEFAULT_TEXT if text_input else " ".join(DEFAULT_TEXT.upper().split())
    budget = training_budget(staged.source, system)
    _, metrics_file = training_files(system)
    card = ModelCard.from_template(
        card_data,
        template_path=str(hub_cards_dir() / "model_card.md"),
        title=name,
        description=(system.description or system.name).rstrip("."),
        pipeline_class=index["_class_name"][1],
        system=system.name,
        input_description="text" if text_input else "a gloss sequence",
        skeleton=spec.name,
        entry_file=f"{index['_class_name'][0]}.py",
        repo_id=repo_id,
        input_name=system.input_name,
        example_input=json.dumps(example if text_input else [example.split()]),
        cli_input="text" if text_input else "gloss",
        example_cli=json.dumps(example),
        feature_dim=spec.feature_dim,
        fps=f"{float(pipe.fps):g}",
        units=pose_units(spec),
        layout=pose_layout(spec),
        normalisation=_normalisation(pipe),
        budget=budget,
        metrics_file=metrics_file,
        evaluation=_evaluation(results, row) if row else None,
        files=_files(staged, index),
    )
    card.save(str(staged.path / "README.md"))
    return card


# ------------------------------------------------------------------------------------------ dataset card
def _corpus_facts(folder: Path) -> Dict[str, Any]:
    """Split sizes, representation and fps of a corpus from its Parquet shards (metadata and two columns)."""
    import pyarrow.parquet as pq

    sizes: Dict[str, int] = {}
    shards = sorted((folder / "data").glob("*.parquet"))
    for shard in shards:
        match = _SHARD_RE.match(shard.name)
        split = match.group("split") if match else shard.stem
        sizes[split] = sizes.get(split, 0) + pq.ParquetFile(shard).metadata.num_rows
    columns = pq.ParquetFile(shards[0]).schema_arrow.names
    if "representation" not in columns:
        raise ValueError(f"`DIR` {str(folder)!r}: the corpus has no `representation` column (the hf-sign schema).")
    table = pq.read_table(shards[0], columns=[c for c in ("representation", "fps") if c in columns])
    representation = str(table.column("representation")[0])
    spec = get_skeleton(representation)
    fps = float(table.column("fps")[0].as_py()) if "fps" in columns else spec.fps
    order = {"train": 0, "validation": 1, "test": 2}
    splits = [{"name": k, "rows": v} for k, v in sorted(sizes.items(), key=lambda kv: (order.get(kv[0], 3), kv[0]))]
    return {"spec": spec, "fps": fps, "splits": splits}


def render_dataset_card(staged: StagedFolder, repo_id: str, license: Optional[str] = None) -> DatasetCard:
    """Reload the corpus card, add the Hub tags (and `license` when given), append the loading section, save it as
    the staged `README.md` and return it. A `ValueError` names `--license` when neither the card nor the caller
    gives a licence."""
    from jinja2 import Template

    card = DatasetCard.load(str(staged.path / "README.md"))
    data = card.data
    if license:
        data.license = license
    if not data.get("license"):
        raise ValueError(f"`--license`: the corpus card of {str(staged.source)!r} states no licence; give one.")
    facts = _corpus_facts(staged.path)
    spec = facts["spec"]
    tags = list(data.get("tags") or [])
    data.tags = tags + [t for t in (*BASE_TAGS, spec.name) if t not in tags]
    body = card.text.split(HUB_SECTION)[0].rstrip() + "\n\n"
    section = Template((hub_cards_dir() / "dataset_card_hub.md").read_text(encoding="utf-8")).render(
        repo_id=repo_id,
        first_split=facts["splits"][0]["name"],
        feature_dim=spec.feature_dim,
        fps=f"{facts['fps']:g}",
        splits=facts["splits"],
        skeleton=spec.name,
        units=pose_units(spec),
        layout=pose_layout(spec),
    )
    card = DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}{section.strip()}\n")
    card.save(str(staged.path / "README.md"))
    return card

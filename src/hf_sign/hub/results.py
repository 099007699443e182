"""A model card's `model-index` from the benchmark harness' `results.json`: the published row, no typed numbers.

`results.json` (written by `hf_sign.evaluation.harness.run_benchmark`) holds one entry per evaluated system under
`systems` (`name`, `kind`, `source`, `metrics`) and the run's metadata (`dataset_name`, `split`, `num_samples`,
`evaluators`, `units`). The published model's row is the `kind == "model"` row whose `source` is the published
folder, else the only model row, else the one named with `--results-row`. Its metrics become one `EvalResult` each
(`metric_type` = the results key, e.g. `bleu4`, `metric_value` = the number as stored), in the order and with the
headers of the harness' own tables (`hf_sign.evaluation.report.TABLES`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from huggingface_hub import EvalResult

from ..evaluation.report import TABLES

__all__ = [
    "TASK_NAME",
    "eval_results_from_row",
    "evaluator_summary",
    "find_results",
    "load_results",
    "reported_metrics",
    "select_row",
]

TASK_NAME = "Sign language production"
_NOT_SCORES = ("mean_num_frames",)  # a length statistic of the table, not a score


def find_results(folder: Path, results: Optional[Union[str, Path]] = None) -> Optional[Path]:
    """`results` (a `results.json` or a benchmark folder holding one), else `folder/results.json`, else None.

    Raises a `ValueError` naming `--results` when the given path has no results.json.
    """
    if results is not None:
        path = Path(results)
        path = path / "results.json" if path.is_dir() else path
        if not path.is_file():
            raise ValueError(f"`--results` {str(results)!r} is not a results.json (nor a folder holding one).")
        return path
    own = Path(folder) / "results.json"
    return own if own.is_file() else None


def load_results(path: Path) -> Dict[str, Any]:
    """The parsed `results.json`; a `ValueError` naming `--results` when it lacks the harness layout."""
    try:
        results = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"`--results` {str(path)!r} is not valid JSON: {err}") from None
    systems = results.get("systems") if isinstance(results, dict) else None
    if not isinstance(systems, list) or not all(
        isinstance(s, dict) and {"name", "kind", "metrics"} <= set(s) for s in systems
    ):
        raise ValueError(
            f"`--results` {str(path)!r} lacks the benchmark layout: expected a `systems` list of rows with `name`, "
            "`kind` and `metrics` (as `hf-sign benchmark` writes it)."
        )
    for key in ("dataset_name", "split"):
        if not results.get(key):
            raise ValueError(f"`--results` {str(path)!r} lacks `{key}` (as `hf-sign benchmark` writes it).")
    return results


def _same_folder(source: Any, folder: Path) -> bool:
    try:
        return isinstance(source, str) and Path(source).resolve() == Path(folder).resolve()
    except OSError:
        return False


def select_row(results: Dict[str, Any], folder: Path, row_name: Optional[str] = None) -> Dict[str, Any]:
    """The results row of the model published from `folder` (see the module doc); a `ValueError` naming
    `--results-row` when it is not one row."""
    rows = [s for s in results["systems"] if s["kind"] == "model"]
    names = [s["name"] for s in rows]
    if row_name is not None:
        found = [s for s in rows if s["name"] == row_name]
        if not found:
            raise ValueError(f"`--results-row` {row_name!r} is not a model row of results.json; its models: {names}.")
        return found[0]
    same = [s for s in rows if _same_folder(s.get("source"), folder)]
    if len(same) == 1:
        return same[0]
    if len(rows) == 1:
        return rows[0]
    raise ValueError(
        f"results.json has {len(rows)} model rows ({names}) and none was evaluated from {str(folder)!r}; "
        "name the published model's row with `--results-row NAME`."
    )


def reported_metrics(row: Dict[str, Any]) -> List[Tuple[str, str, float, int]]:
    """`(key, header, value, decimals)` of every score of `row` that the harness tables report and that has a finite
    value (metrics that do not apply to the system, e.g. SiBLEU without sign tokens, are `null` and left out)."""
    out = []
    for _, title, columns in TABLES:
        for key, header, decimals in columns:
            value = row["metrics"].get(key)
            if key in _NOT_SCORES or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                out.append((key, f"{header} ({title})", value, decimals))
    return out


def eval_results_from_row(
    results: Dict[str, Any], row: Dict[str, Any], task_type: str, dataset_id: Optional[str]
) -> List[EvalResult]:
    """One `EvalResult` per reported metric of `row`, on the results' dataset and split."""
    return [
        EvalResult(
            task_type=task_type,
            task_name=TASK_NAME,
            dataset_type=dataset_id or results["dataset_name"],
            dataset_name=results["dataset_name"],
            dataset_split=results["split"],
            metric_type=key,
            metric_name=header,
            metric_value=value,
        )
        for key, header, value, _ in reported_metrics(row)
    ]


def evaluator_summary(results: Dict[str, Any]) -> str:
    """How back-translation was measured, from the results' metadata (no local paths)."""
    ev = results.get("evaluators") or {}
    target = "gloss sequences" if ev.get("recognizer_target", "gloss") == "gloss" else "lower-cased words of the text"
    trained_on = Path(str(ev["trained_on"])).name if ev.get("trained_on") else results["dataset_name"]
    provenance = ", ".join(
        f"{k} {ev[k]!r}" if isinstance(ev[k], str) else f"{k} {ev[k]}"
        for k in ("config", "seed")
        if ev.get(k) is not None
    )
    return (
        f"the hf-sign CTC recogniser (`hf-sign train evaluator`{', ' + provenance if provenance else ''}) trained on "
        f"the ground-truth train poses of `{trained_on}` only; it transcribes each generated sequence into {target}, "
        f"scored against the references of the `{results['split']}` split ({results.get('num_samples', '?')} samples) "
        "with corpus BLEU-1..4 (sacrebleu, whitespace tokens, no smoothing) and mean sentence ROUGE-L F1, on a 0-100 "
        "scale"
    )

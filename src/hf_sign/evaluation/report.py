"""Writing benchmark results: `results.md` (tables in the papers' layout), `results.json`, `per_sample.csv`.

The Markdown follows the result tables of the seed papers: one row per method (Ground Truth first, then
the baselines, then the models), one column per metric with an arrow saying which direction is better
(↑ higher, ↓ lower), "–" where a metric does not apply (SiBLEU of systems without sign tokens, FID with
fewer than two samples). Three tables:

1. back-translation BLEU-1..4 and ROUGE-L (Sign-MExD Table II / Stable Signer Table 1 layout);
2. pose errors: DTW-JPE Body/Hands (MaDiS / SOKE; per aligned frame pair and summed along the DTW path)
   and MPJPE Body/Hands (Sign-SALD);
3. distribution and semantics: FID (Sign-SALD), SiCLIP R@1/R@5 and SiBLEU (MaDiS), plus the mean length.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .conventions import convention_columns, convention_notes

__all__ = [
    "PER_SAMPLE_COLUMNS",
    "TABLES",
    "UNITS",
    "format_markdown",
    "format_value",
    "standard_notes",
    "write_per_sample_csv",
    "write_results_json",
]

# (result key, header, decimals); headers carry the arrow and, where it applies, the unit.
TABLES: List[Tuple[str, str, List[Tuple[str, str, int]]]] = [
    (
        "back_translation",
        "Back-translation",
        [
            ("bleu1", "BLEU-1 ↑", 2),
            ("bleu2", "BLEU-2 ↑", 2),
            ("bleu3", "BLEU-3 ↑", 2),
            ("bleu4", "BLEU-4 ↑", 2),
            ("rouge_l", "ROUGE-L ↑", 2),
        ],
    ),
    (
        "pose_error",
        "Pose error",
        [
            ("dtw_jpe_body", "SOKE DTW-JPE Body ↓ (mm)", 2),
            ("dtw_jpe_hands", "SOKE DTW-JPE Hands ↓ (mm)", 2),
            ("dtw_jpe_body_sum", "SOKE DTW-JPE Σ Body ↓ (m)", 2),
            ("dtw_jpe_hands_sum", "SOKE DTW-JPE Σ Hands ↓ (m)", 2),
            ("mpjpe_body", "MPJPE Body ↓ (mm)", 2),
            ("mpjpe_hands", "MPJPE Hands ↓ (mm)", 2),
        ],
    ),
    (
        "distribution",
        "Distribution and semantics",
        [
            ("fid", "FID ↓", 3),
            ("siclip_r1", "SiCLIP R@1 ↑", 2),
            ("siclip_r5", "SiCLIP R@5 ↑", 2),
            ("sibleu", "SiBLEU-4 ↑", 2),
            ("mean_num_frames", "Frames (gen / ref)", 1),
        ],
    ),
]

PER_SAMPLE_COLUMNS = [
    "system",
    "index",
    "id",
    "text",
    "reference_gloss",
    "hypothesis_gloss",
    "dtw_jpe_body_mm",
    "dtw_jpe_hands_mm",
    "dtw_jpe_body_sum_m",
    "dtw_jpe_hands_sum_m",
    "mpjpe_body_mm",
    "mpjpe_hands_mm",
    "num_frames_generated",
    "num_frames_reference",
    "unknown_glosses",
    "pt_dtw",
    "slrtp_dtw_mje",
    "pose_eval_dtw",
]
_SOKE_KEYS = ("dtw_jpe_body", "dtw_jpe_hands", "dtw_jpe_body_sum", "dtw_jpe_hands_sum")


UNITS = {
    "dtw_jpe_body": "mm per aligned frame pair",
    "dtw_jpe_hands": "mm per aligned frame pair",
    "dtw_jpe_body_sum": "m (sum along the DTW path)",
    "dtw_jpe_hands_sum": "m (sum along the DTW path)",
    "mpjpe_body": "mm",
    "mpjpe_hands": "mm",
    "bleu1-4, rouge_l, siclip_r1/r5, sibleu": "0-100",
    "fid": "squared contrastive-embedding units",
}


def standard_notes(results: Dict[str, Any], num_candidates: int) -> List[str]:
    """The notes under the tables: how each metric was computed, from the result metadata."""
    ev, split = results["evaluators"], results["split"]
    units = results.get("position_units") or ["m", "mm"]
    oracle = any(s.get("oracle_gloss") for s in results["systems"])
    reference = (
        "the reference gloss sequences"
        if ev["recognizer_target"] == "gloss"
        else "the lowercased words of the reference text"
    )
    provenance = (
        f" (config {ev['config']!r}, seed {ev['seed']}{', trained by this run' if ev['trained_here'] else ''})"
        if ev.get("config")
        else ""
    )
    return (["† reads the reference (oracle) gloss sequence of each sample."] if oracle else []) + [
        f"Back-translation: the recogniser ({ev['recognizer']}) transcribes each sequence; hypotheses are scored "
        f"against {reference} "
        "(corpus BLEU-n cumulative, whitespace tokens, no smoothing; ROUGE-L = mean sentence LCS F1; 0-100).",
        "DTW-JPE: exact DTW over joint positions (body relative to the root, each hand relative to its wrist); the "
        f"'({units[1]})' columns are the mean joint error per aligned frame pair (path-normalised), the "
        f"'Σ ({units[0]})' columns the sum along the DTW path (SOKE).",
        f"MPJPE: mean joint error in {units[1]} after linearly resampling the generated sequence to the reference "
        "length.",
        f"FID: Fréchet distance between contrastive-evaluator pose embeddings ({ev['contrastive']}) of the generated "
        "and the "
        f"reference {split} sequences.",
        f"SiCLIP R@k: % of generated sequences whose own text is among the top k of the {num_candidates} distinct "
        f"{split} texts "
        "(ties count against).",
        "SiBLEU-4: '–' for systems without part-wise sign tokens.",
        *convention_notes(results.get("conventions", ["soke"]), results.get("fps")),
        *(
            [f"Positions of `{results['representation']}` are in {units[0]}: the length columns hold {units[0]}."]
            if units[0] != "m"
            else []
        ),
        *_positions_only_notes(results),
        f"Evaluators were trained on ground-truth train poses only{provenance}.",
        "Baselines are fitted on the train split; gloss concatenation joins one typical training clip per gloss with "
        "minimum-jerk transitions.",
    ]


def _positions_only_notes(results: Dict[str, Any]) -> List[str]:
    """The note of rows read as joint positions (`.pose` files on a skeleton whose features are not positions)."""
    rows = [s for s in results["systems"] if s["metrics"].get("positions_only")]
    if not rows:
        return []
    rep = results["representation"]
    counts = ", ".join(f"{s['name']}: {s['metrics'].get('num_position_joints')}" for s in rows)
    return [
        f"‡ read from .pose joint positions, not `{rep}` features: scored on the pose-error columns only, over the "
        f"joints the files have ({counts} joints; for `{rep}` no pelvis, spine, neck, collars or head), against the "
        "references' forward-kinematics positions of the same joints. DTW-JPE and MPJPE Body: relative to the "
        "shoulders' midpoint (the pelvis, the other rows' root, has no MediaPipe point), hands relative to their "
        "wrists as in the other rows; the unaligned conventions (PT, SLRTP, pose-evaluation) use the same joints. "
        "Its Body and convention columns cover fewer joints than the other rows'. Back-translation, FID, SiCLIP and "
        f"SiBLEU read `{rep}` features (the evaluators' input), which joint positions cannot give without inverse "
        "kinematics: '–'."
    ]


def format_value(value: Any, decimals: int = 2) -> str:
    """A table cell: fixed decimals, "–" for missing or non-finite values."""
    if value is None or isinstance(value, str):
        return "–" if value in (None, "") else value
    if isinstance(value, float) and not math.isfinite(value):
        return "–"
    return f"{value:.{decimals}f}"


def _cell(system: Dict[str, Any], key: str, decimals: int, results: Dict[str, Any]) -> str:
    metrics = system["metrics"]
    if key == "mean_num_frames":
        gen, ref = metrics.get("mean_num_frames"), results.get("mean_num_frames_reference")
        return f"{format_value(gen, decimals)} / {format_value(ref, decimals)}"
    return format_value(metrics.get(key), decimals)


def _label(system: Dict[str, Any]) -> str:
    return (
        system["name"]
        + (" †" if system.get("oracle_gloss") else "")
        + (" ‡" if system["metrics"].get("positions_only") else "")
    )


def _tables(results: Dict[str, Any]) -> List[Tuple[str, str, List[Tuple[str, str, int]]]]:
    """The tables of `results`: SOKE columns only when `soke` is selected, units of the positions in the headers
    (mm / m for metric skeletons, px for MediaPipe pixels) and a table for the other selected conventions."""
    conventions = results.get("conventions", ["soke"])
    big, small = (results.get("position_units") or ["m", "mm"])[:2]
    tables = []
    for key, title, columns in TABLES:
        columns = [
            (k, h.replace("(mm)", f"({small})").replace("(m)", f"({big})"), d)
            for k, h, d in columns
            if "soke" in conventions or k not in _SOKE_KEYS
        ]
        tables.append((key, title, columns))
    others = convention_columns(conventions, big)
    if others:
        tables.append(("conventions", "Pose error in other conventions", others))
    return tables


def format_markdown(results: Dict[str, Any]) -> str:
    """The `results.md` text for a `run_benchmark` result dict."""
    systems = results["systems"]
    lines = [
        f"# Benchmark: {results['dataset_name']} ({results['split']} split, {results['num_samples']} samples)",
        "",
        f"Dataset `{results['dataset']}`, split `{results['split']}`, {results['num_samples']} samples"
        f" (representation `{results['representation']}`, {results['fps']:g} fps). Seed {results['seed']};"
        f" lengths: {results['num_frames_policy']}; inference steps: "
        f"{results['num_inference_steps'] or 'model default'}.",
        "",
    ]
    for number, (_, title, columns) in enumerate(_tables(results), start=1):
        lines.append(f"Table {number}: {title} on {results['dataset_name']} ({results['split']}).")
        lines.append("")
        lines.append("| Method | " + " | ".join(h for _, h, _ in columns) + " |")
        lines.append("|---|" + "|".join("---:" for _ in columns) + "|")
        for system in systems:
            cells = [_cell(system, key, dec, results) for key, _, dec in columns]
            lines.append(f"| {_label(system)} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Notes:")
    lines.append("")
    for note in results.get("notes", []):
        lines.append(f"- {note}")
    lines.append("")
    return "\n".join(lines)


def write_results_json(path: Path, results: Dict[str, Any]) -> Path:
    """`results.json`: every number and the metadata, non-finite floats written as null."""

    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    path.write_text(json.dumps(clean(results), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_per_sample_csv(path: Path, rows: Sequence[Dict[str, Any]]) -> Path:
    """`per_sample.csv`: one row per system x sample, columns `PER_SAMPLE_COLUMNS`."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=PER_SAMPLE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(row.get(k)) for k in PER_SAMPLE_COLUMNS})
    return path


def _csv_value(v: Optional[Any]) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if not math.isfinite(v) else round(v, 4)
    if isinstance(v, (list, tuple)):
        return " ".join(map(str, v))
    return v

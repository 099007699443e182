"""The benchmark harness: one evaluation for every system (DESIGN.md, "Evaluation contract").

`run_benchmark` generates a pose sequence for every sample of a split with every system and scores them
all with the same metrics and evaluator models:

* **Rows**: "Ground Truth" first (the reference poses themselves: the back-translation and retrieval
  ceiling, DTW-JPE/MPJPE/FID 0), then the baselines of `hf_sign.evaluation.baselines` fitted on the
  corpus' `train` split ("Mean pose", "Nearest sentence", "Gloss concatenation (oracle gloss)", marked †
  because it reads the reference glosses), then the models in the order given.
* **Inputs**: each system gets the sample's `text` as prompt; systems whose `__call__` has a `gloss`
  parameter also get the reference gloss list (oracle glosses). Every sample `i` gets its own
  `torch.Generator` seeded with `seed + i`, so a sample's output does not depend on the batching.
  Lengths: by default each system chooses its own (`num_frames=None`, e.g. a length predictor);
  `num_frames="reference"` passes every sample's reference length instead (an oracle-length setting).
* **Evaluators** (trained on ground-truth *train* poses only, never used to condition a generator):
  `evaluator_dir` holds `recognizer/` and `contrastive/` from
  `hf_sign.training.evaluator_trainer.train_evaluators`. Without `evaluator_dir` they are reused from
  `out_dir/evaluators` when a previous run on the same dataset left them, or trained there by the
  `train_evaluators` callable the caller passes, with `evaluator_config` (default `"default"`) and the fixed
  `evaluator_seed` (0). The harness takes the trainer as an argument instead of importing it because evaluation
  sits beside training in the layer order and never imports it (DESIGN.md); `hf-sign benchmark` passes it.
* **Metrics** (columns of `results.md`, every one also in `results.json`):
  - back-translation: the recogniser's greedy CTC output on the generated poses vs the reference gloss
    sequence (or the lowercased words of the text when the recogniser was trained on text), corpus BLEU-1..4
    (sacrebleu, whitespace tokens, no smoothing) and mean sentence ROUGE-L F1, 0-100;
  - DTW-JPE Body / Hands (SOKE): positions from `spec.to_positions` (smplx133: forward kinematics, metres),
    body joints relative to the root, hand joints relative to their wrist; exact DTW. Reported as the mean
    joint error per aligned frame pair in millimetres (length-normalised, comparable across corpora) and as
    the path sum in metres (SOKE's un-normalised value, grows with length);
  - MPJPE Body / Hands in millimetres, the generated sequence linearly resampled to the reference length;
  - FID between the contrastive evaluator's pose embeddings of generated and reference test sequences
    (unit-norm embeddings, so values are small; "–" with fewer than 2 samples);
  - SiCLIP R@1 / R@5: each generated sequence ranks the split's distinct texts by cosine similarity in the
    contrastive evaluator's space; ties count against it (constant output scores chance level);
  - SiBLEU-4: only for systems exposing part-wise sign tokens (their output has `sign_tokens`, one dict
    part -> token ids per sample, and the system has `tokenize_poses(list_of_poses)` giving the reference
    tokens in the same form); "–" otherwise.
* **Files** in `out_dir`: `results.md`, `results.json`, `per_sample.csv`, `examples/*.gif` (the first
  `num_examples` samples, all systems side by side, reference first) and `evaluators/` when trained here.

This module puts the benchmark together; its parts live beside it: `hf_sign.evaluation.systems_io` loads the systems
and generates with them (`load_system`, `conditioning_of`), `hf_sign.evaluation.scoring` finds or trains and loads the
evaluators (`prepare_evaluators`, `load_evaluators`) and computes every metric (`PoseScorer`), and
`hf_sign.evaluation.report` writes the tables.

```python
>>> from hf_sign.evaluation.harness import run_benchmark
>>> results = run_benchmark("outputs/synthsign", models={"Sign-SALD": "outputs/sign-sald-small"},
...                         evaluator_dir="outputs/evaluators", out_dir="outputs/benchmark")
>>> [s["name"] for s in results["systems"]]
['Ground Truth', 'Mean pose', 'Nearest sentence', 'Gloss concatenation (oracle gloss)', 'Sign-SALD']
```
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.io import load_corpus, split_rows
from ..skeletons.spec import get_skeleton
from .baseline_utils import load_split
from .baselines import GlossConcatenationBaseline, MeanPoseBaseline, NearestSentenceBaseline
from .conventions import DEFAULT_CONVENTIONS, parse_conventions, position_units
from .report import UNITS, format_markdown, standard_notes, write_per_sample_csv, write_results_json
from .scoring import Evaluators, PoseScorer, load_evaluators, prepare_evaluators
from .systems_io import _HUB_ID, _generate, _System, _to_numpy_poses, conditioning_of, load_system

__all__ = [
    "BASELINE_KEYS",
    "GROUND_TRUTH",
    "load_eval_data",
    "parse_model_specs",
    "run_benchmark",
]

GROUND_TRUTH = "Ground Truth"
# key -> (row name, short panel title, class)
BASELINE_KEYS = {
    "mean": ("Mean pose", "Mean pose", MeanPoseBaseline),
    "nearest": ("Nearest sentence", "Nearest sent.", NearestSentenceBaseline),
    "concat": ("Gloss concatenation (oracle gloss)", "Gloss concat.", GlossConcatenationBaseline),
}
NUM_FRAMES_POLICIES = (None, "reference")


def _version() -> str:
    from .. import __version__

    return __version__


# ------------------------------------------------------------------------------------------- examples
def _render_examples(
    out_dir: Path,
    systems: List[_System],
    positions: Dict[str, List[np.ndarray]],
    rows,
    spec,
    fps,
    num_examples,
    show_progress,
):
    from ..render import render_panels, save_video

    paths = []
    indices = range(min(num_examples, len(rows)))
    for i in tqdm(indices, desc="rendering examples", disable=not show_progress):
        sid = re.sub(r"[^\w.-]+", "_", str(rows[i]["id"]))[:80]
        frames = render_panels(
            [positions[s.name][i] for s in systems], spec, titles=[s.short or s.name for s in systems],
            size=(200, 200), caption=str(rows[i]["text"]), show_progress=False,
        )
        paths.append(save_video(frames, out_dir / f"{i:02d}_{sid}.gif", fps, show_progress=False))
    return paths


# ---------------------------------------------------------------------------------------- entry point
def _check_arguments(split, max_samples, batch_size, num_examples, num_frames, baselines) -> List[str]:
    if not isinstance(split, str) or not split:
        raise ValueError(f"`split` must be a split name such as 'test'; got {split!r}.")
    if max_samples is not None and (not isinstance(max_samples, (int, np.integer)) or max_samples < 1):
        raise ValueError(f"`max_samples` must be a positive int or None; got {max_samples!r}.")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int; got {batch_size!r}.")
    if not isinstance(num_examples, (int, np.integer)) or num_examples < 0:
        raise ValueError(f"`num_examples` must be a non-negative int; got {num_examples!r}.")
    if num_frames not in NUM_FRAMES_POLICIES:
        raise ValueError(f"`num_frames` must be None (each system's own length) or 'reference'; got {num_frames!r}.")
    if baselines is True:
        return list(BASELINE_KEYS)
    if baselines is False or baselines is None:
        return []
    keys = [baselines] if isinstance(baselines, str) else list(baselines)
    bad = [k for k in keys if k not in BASELINE_KEYS]
    if bad:
        raise ValueError(
            f"`baselines` has unknown entries {bad}; expected True/False or keys of {list(BASELINE_KEYS)}."
        )
    return keys


def run_benchmark(
    dataset_dir: Union[str, os.PathLike, Any],
    split: str = "test",
    models: Optional[Mapping[str, Any]] = None,
    baselines: Union[bool, Sequence[str]] = True,
    evaluator_dir: Optional[Union[str, os.PathLike]] = None,
    out_dir: Union[str, os.PathLike] = "benchmark",
    max_samples: Optional[int] = None,
    num_inference_steps: Optional[int] = None,
    seed: int = 0,
    num_examples: int = 3,
    batch_size: int = 16,
    num_frames: Optional[str] = None,
    evaluator_config: str = "default",
    evaluator_seed: int = 0,
    device: Optional[Union[str, torch.device]] = None,
    show_progress: bool = True,
    train_evaluators: Optional[Callable[..., Any]] = None,
    conventions: Sequence[str] = DEFAULT_CONVENTIONS,
    predictions: Optional[Mapping[str, Mapping[str, np.ndarray]]] = None,
    sample_ids: Optional[Sequence[str]] = None,
    extra_notes: Sequence[str] = (),
) -> Dict[str, Any]:
    """Generate with every system on `split` of `dataset_dir`, score them all, write the tables.

    Args:
        dataset_dir (`str`, `os.PathLike` or `DatasetDict`): hf-sign corpus folder (or Hub id, or a loaded
            `DatasetDict`; then `evaluator_dir` is required). Baselines fit on its `train` split.
        split (`str`, *optional*, defaults to `"test"`): the split to evaluate.
        models (`Dict[str, str | object]`, *optional*): row name -> pipeline folder / Hub id (loaded with
            `DiffusionPipeline.from_pretrained(path, trust_remote_code=True)`), saved baseline folder, or a
            callable with the pipelines' `__call__` interface. Rows appear in this order after the baselines.
        baselines (`bool` or `Sequence[str]`, *optional*, defaults to `True`): all baselines, none, or some of
            `"mean"`, `"nearest"`, `"concat"`. The concatenation baseline is left out (with a note) when the
            train split has no `gloss_spans` or the evaluated samples have no glosses.
        evaluator_dir (`str`, *optional*): folder with `recognizer/` and `contrastive/` (see the module docstring
            for what happens without it).
        out_dir (`str`, *optional*, defaults to `"benchmark"`): output folder (created).
        max_samples (`int`, *optional*): evaluate only the first `max_samples` samples of the split (quick runs).
        num_inference_steps (`int`, *optional*): passed to systems that take it; default: each system's own.
        seed (`int`, *optional*, defaults to 0): sample `i` is generated with
            `torch.Generator().manual_seed(seed + i)`.
        num_examples (`int`, *optional*, defaults to 3): samples rendered to `examples/` (0: none).
        batch_size (`int`, *optional*, defaults to 16): prompts per generation call and sequences per evaluator pass.
        num_frames (`str`, *optional*): `None` (each system's own length) or `"reference"` (every system is asked
            for the reference length of each sample).
        evaluator_config (`str`, *optional*, defaults to `"default"`): config for evaluators trained here.
        evaluator_seed (`int`, *optional*, defaults to 0): fixed seed of evaluators trained here.
        device (`str` or `torch.device`, *optional*): device of pipelines and evaluators (default: CUDA if
            available, else CPU). Metrics run on CPU.
        show_progress (`bool`, *optional*, defaults to `True`): tqdm progress bars.
        train_evaluators (`Callable`, *optional*): trains the evaluators when there is no `evaluator_dir` and
            `out_dir/evaluators` holds none, called as `train_evaluators(dataset_dir, out_dir/evaluators,
            config=evaluator_config, seed=evaluator_seed)`; pass `hf_sign.training.evaluator_trainer.train_evaluators`.
            Without it, `evaluator_dir` (or evaluators left in `out_dir/evaluators`) is required.
        conventions (`Sequence[str]`, *optional*, defaults to `("soke",)`): pose-error conventions of
            `hf_sign.evaluation.conventions` (`soke`, `progressive-transformers`, `slrtp`, `pose-evaluation`).
        predictions (`Dict[str, Dict[str, np.ndarray]]`, *optional*): rows of outputs made elsewhere, row name ->
            sample id -> `(T, D)` features in the split's skeleton and frame rate (what `hf-sign evaluate` loads).
            They replace the generation step of a model row and are scored by the same code; rows appear after
            the models. Every evaluated sample needs one. A row may instead hold `(T, J, 3)` positions of the
            skeleton's position joints, NaN at joints it lacks (`.pose` files on a skeleton whose features are not
            positions, `hf_sign.evaluation.predictions_io`): it is scored on the position metrics only
            (`PoseScorer.score(..., positions_only=True)`), the feature metrics are "–" with a note.
        sample_ids (`Sequence[str]`, *optional*): evaluate only these samples of the split (in split order; every
            id must exist); applied before `max_samples`.
        extra_notes (`Sequence[str]`, *optional*): notes appended under the tables.

    Returns:
        `dict`: the content of `results.json` (metadata, `systems` with their `metrics`, `notes`, timings).
    """
    t_start = time.time()
    baseline_keys = _check_arguments(split, max_samples, batch_size, num_examples, num_frames, baselines)
    models = dict(models or {})
    predictions = dict(predictions or {})
    conventions = parse_conventions(conventions)
    reserved = {GROUND_TRUTH} | {v[0] for v in BASELINE_KEYS.values()}
    clash = [n for n in list(models) + list(predictions) if n in reserved or (n in models and n in predictions)]
    if clash:
        raise ValueError(
            f"`models`/`predictions` names {clash} are reserved for the Ground Truth and baseline rows or given "
            "twice; rename them."
        )
    device = (
        torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    data = load_eval_data(dataset_dir, split, max_samples, sample_ids)
    rows, spec = data["rows"], data["spec"]
    ev_path, trained_here = prepare_evaluators(
        dataset_dir, evaluator_dir, out, evaluator_config, evaluator_seed, train_evaluators=train_evaluators
    )
    ev = load_evaluators(ev_path, device)
    ev.trained_here = trained_here
    _check_evaluators(ev, data, split)
    systems, notes = _build_systems(data, split, baseline_keys, models, device)
    systems += [
        _predictions_system(name, by_id, rows, data["feature_dim"], spec) for name, by_id in predictions.items()
    ]

    scorer = PoseScorer(
        [r["poses"] for r in rows], [str(r["text"]) for r in rows], [r["gloss"] for r in rows], spec, ev,
        batch_size=batch_size, ids=[str(r["id"]) for r in rows], fps=data["fps"], conventions=conventions,
    )
    results_systems, per_sample_rows, positions = [], [], {}
    for system in tqdm(systems, desc="systems", unit="system", disable=not show_progress):
        t0 = time.time()
        tokens = ref_tokens = None
        if system.kind == "ground_truth":
            preds, infos = [r["poses"] for r in rows], [{} for _ in rows]
        elif system.kind in ("predictions", "positions"):  # made elsewhere: loading replaces the generation step
            preds, infos = system.obj, [{} for _ in rows]
        else:
            preds, infos, tokens = _generate(
                system, rows, seed=seed, batch_size=batch_size, num_inference_steps=num_inference_steps,
                num_frames_policy=num_frames, feature_dim=data["feature_dim"], show_progress=show_progress,
            )
            if tokens is not None and hasattr(system.obj, "tokenize_poses"):
                ref_tokens = system.obj.tokenize_poses([r["poses"] for r in rows])
        t_gen = time.time() - t0
        metrics, per_sample, positions[system.name] = scorer.score(
            preds, tokens, ref_tokens, positions_only=system.kind == "positions"
        )
        unknown = [list(i.get("unknown_glosses", [])) for i in infos]
        metrics["num_unknown_glosses"] = sum(len(u) for u in unknown)
        for i, (row, ps) in enumerate(zip(rows, per_sample)):
            per_sample_rows.append(
                {"system": system.name, "index": i, "text": row["text"], "unknown_glosses": unknown[i], **ps}
            )
        results_systems.append(
            {
                "name": system.name,
                "kind": system.kind,
                "source": system.source,
                "oracle_gloss": system.oracle_gloss,
                "metrics": metrics,
                "generation_seconds": round(t_gen, 2),
                "scoring_seconds": round(time.time() - t0 - t_gen, 2),
            }
        )
        if metrics["num_unknown_glosses"]:
            notes.append(
                f"{system.name}: {metrics['num_unknown_glosses']} gloss(es) not in its lexicon were held "
                "(unknown_gloss='hold')."
            )
        replaced = sum(len(i.get("replaced_glosses", [])) for i in infos)
        if replaced:  # a system that substitutes glosses it cannot sign says so (Stable Signer's pose bank)
            metrics["num_replaced_glosses"] = replaced
            notes.append(
                f"{system.name}: {replaced} gloss(es) missing from its pose bank were replaced by the nearest one."
            )

    examples = []
    if num_examples:
        examples = _render_examples(
            out / "examples", systems, positions, rows, spec, data["fps"], num_examples, show_progress
        )
    ev_args_file = ev_path / "evaluator_training_args.json"
    ev_args = json.loads(ev_args_file.read_text(encoding="utf-8")) if ev_args_file.is_file() else {}
    target = getattr(ev.recognizer.config, "target", "gloss")
    results: Dict[str, Any] = {
        "dataset": str(dataset_dir) if isinstance(dataset_dir, (str, os.PathLike)) else "<in-memory DatasetDict>",
        "dataset_name": data["name"],
        "split": split,
        "num_samples": len(rows),
        "max_samples": max_samples,
        "representation": data["representation"],
        "fps": data["fps"],
        "seed": seed,
        "num_inference_steps": num_inference_steps,
        "num_frames_policy": "each system's own length" if num_frames is None else "reference length of each sample",
        "mean_num_frames_reference": float(np.mean([r["poses"].shape[0] for r in rows])),
        "evaluators": {
            "dir": str(ev_path),
            "recognizer": str(ev_path / "recognizer"),
            "contrastive": str(ev_path / "contrastive"),
            "trained_here": trained_here,
            "recognizer_target": target,
            "config": ev_args.get("config"),
            "seed": ev_args.get("seed"),
            "trained_on": ev_args.get("dataset_dir"),
        },
        "hf_sign_version": _version(),
        "units": dict(UNITS),
        "position_units": list(position_units(spec)[:2]),
        "conventions": list(conventions),
        "systems": results_systems,
        "notes": [],
        "examples": [str(p.relative_to(out)) for p in examples],
    }
    results["notes"] = standard_notes(results, num_candidates=len(scorer.candidate_texts)) + notes + list(extra_notes)
    results["total_seconds"] = round(time.time() - t_start, 1)
    (out / "results.md").write_text(format_markdown(results), encoding="utf-8")
    write_results_json(out / "results.json", results)
    write_per_sample_csv(out / "per_sample.csv", per_sample_rows)
    return results


def load_eval_data(
    dataset_dir, split: str, max_samples: Optional[int] = None, sample_ids: Optional[Sequence[str]] = None
) -> Dict[str, Any]:
    """The corpus, the evaluated rows (those in `sample_ids`, then the first `max_samples`), their skeleton, feature
    dim and fps, as a dict with keys `dataset`, `name`, `rows`, `spec`, `representation`, `feature_dim`, `fps`."""
    if isinstance(dataset_dir, (str, os.PathLike)):
        path = str(dataset_dir)
        if not os.path.isdir(path) and (os.path.isabs(path) or not _HUB_ID.match(path)):
            raise ValueError(f"`dataset_dir` {path!r} does not exist.")
        try:
            dataset = load_corpus(path)
        except Exception as err:  # noqa: BLE001 - re-raised naming the field
            raise ValueError(f"`dataset_dir` {path!r} could not be loaded: {err}") from err
        name = Path(path).name or path
    else:
        dataset, name = dataset_dir, "dataset"
    rows = split_rows(load_split(dataset, split), split)
    if sample_ids is not None:
        wanted = {str(i) for i in sample_ids}
        unknown = sorted(wanted - {str(r["id"]) for r in rows})
        if unknown or not wanted:
            raise ValueError(
                f"`sample_ids` has ids that split {split!r} does not have: {unknown[:5]}"
                if unknown
                else "`sample_ids` is empty; expected at least one sample id."
            )
        rows = [r for r in rows if str(r["id"]) in wanted]
    if max_samples is not None:
        rows = rows[: int(max_samples)]
    reps = {r.get("representation", "") for r in rows}
    dims = {r["poses"].shape[1] for r in rows}
    if len(reps) != 1 or len(dims) != 1:
        raise ValueError(f"Split {split!r} mixes representations {sorted(reps)} / feature dims {sorted(dims)}.")
    representation, feature_dim = reps.pop(), dims.pop()
    try:
        spec = get_skeleton(representation)
    except Exception as err:  # noqa: BLE001
        raise ValueError(
            f"`representation` {representation!r} of split {split!r} has no registered skeleton: {err}"
        ) from err
    if spec.feature_dim != feature_dim:
        raise ValueError(
            f"Split {split!r} has {feature_dim} features per frame but skeleton {spec.name!r} has {spec.feature_dim}."
        )
    fps = float(np.median([float(r.get("fps", spec.fps)) for r in rows]))
    return {"dataset": dataset, "name": name, "rows": rows, "spec": spec, "representation": representation,
            "feature_dim": feature_dim, "fps": fps}


def _check_evaluators(ev: Evaluators, data: Dict[str, Any], split: str) -> None:
    for sub, model in (("recognizer", ev.recognizer), ("contrastive", ev.contrastive)):
        if int(model.config.feature_dim) != data["feature_dim"]:
            raise ValueError(
                f"Evaluator {ev.directory / sub} reads {model.config.feature_dim} features; split {split!r} has "
                f"{data['feature_dim']}."
            )
        rep = getattr(model.config, "representation", "")
        if rep and data["representation"] and rep != data["representation"]:
            raise ValueError(
                f"Evaluator {ev.directory / sub} was trained on {rep!r} poses; split {split!r} is "
                f"{data['representation']!r}."
            )


def _build_systems(
    data: Dict[str, Any], split: str, baseline_keys: List[str], models: Dict[str, Any], device
) -> tuple:
    """Ground Truth, the baselines (fitted on the train split) and the models, in table order; plus notes."""
    systems: List[_System] = [_System(GROUND_TRUTH, "ground_truth", short="Ground truth", source="reference poses")]
    notes: List[str] = []
    if baseline_keys:
        train_rows = split_rows(load_split(data["dataset"], "train"), "train")
        for key in baseline_keys:
            name, short, cls = BASELINE_KEYS[key]
            if key == "concat" and not all(r["gloss"] for r in data["rows"]):
                notes.append(f"{name} left out: some {split} samples have no gloss sequence to concatenate.")
                continue
            try:
                obj = cls.from_rows(train_rows, split="train")
            except ValueError as err:
                if key != "concat":
                    raise
                notes.append(f"{name} left out: {err}")
                continue
            reads = conditioning_of(obj)
            systems.append(_System(name, "baseline", obj, source=f"{cls.__name__} fitted on train", short=short,
                                   oracle_gloss="gloss" in reads, reads_text="text" in reads))
    for name, model_spec in models.items():
        obj = load_system(name, model_spec, device)
        source = str(model_spec) if isinstance(model_spec, (str, os.PathLike)) else type(model_spec).__name__
        reads = conditioning_of(obj)
        systems.append(_System(str(name), "model", obj, source=source, short=str(name)[:24],
                               oracle_gloss="gloss" in reads, reads_text="text" in reads))
    return systems, notes


def _predictions_system(name: str, by_id: Mapping[str, np.ndarray], rows, feature_dim: int, spec) -> _System:
    """A row of outputs made elsewhere: the sequences of the evaluated samples, checked like generated ones; a row of
    `(T, J, 3)` joint positions (kind `"positions"`) is checked against the skeleton's position joints."""
    ids = [str(r["id"]) for r in rows]
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(
            f"`predictions[{name!r}]` has no sequence for {len(missing)} evaluated sample(s), e.g. {missing[:5]}."
        )
    arrays = [np.asarray(by_id[i], dtype=np.float32) for i in ids]
    if not any(a.ndim == 3 for a in arrays):
        poses = _to_numpy_poses(arrays, name, ids, feature_dim)
        return _System(str(name), "predictions", poses, source="predictions made elsewhere", short=str(name)[:24])
    for a, sid in zip(arrays, ids):
        if a.ndim != 3 or a.shape[0] < 1 or a.shape[1:] != (spec.num_position_joints, 3):
            raise ValueError(
                f"`predictions[{name!r}]` sample {sid!r} has shape {a.shape}; a row of joint positions needs "
                f"(num_frames >= 1, {spec.num_position_joints}, 3) for every sample (skeleton {spec.name!r})."
            )
    return _System(str(name), "positions", arrays, source="joint positions made elsewhere", short=str(name)[:24])


# ------------------------------------------------------------------------------------ command line
def parse_named_paths(specs: Optional[Sequence[str]], flag: str, what: str, name_of=lambda path: path.name):
    """`["NAME=PATH", "PATH", ...]` (a repeatable `flag`) -> `{NAME: PATH}`; a bare PATH is named `name_of(Path)`.

    `what` says what PATH may be, for the error message."""
    out: Dict[str, str] = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = name_of(Path(spec.rstrip("/"))), spec
        name, path = name.strip(), path.strip()
        if not name or not path:
            raise ValueError(f"`{flag}` {spec!r} must be PATH or NAME=PATH ({what}).")
        if name in out:
            raise ValueError(f"`{flag}` name {name!r} is given twice; name them with NAME=PATH.")
        out[name] = path
    return out


def parse_model_specs(specs: Optional[Sequence[str]]) -> Dict[str, str]:
    """`["NAME=PATH", ...]` (the `--model` flags) -> `{NAME: PATH}`; a bare PATH is named after its folder."""
    return parse_named_paths(specs, "--model", "a pipeline folder, Hub id or saved baseline")

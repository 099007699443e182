"""The systems of the benchmark (`hf_sign.evaluation.harness`): loading them and generating with them.

* [`load_system`]: a system from a saved baseline folder, a pipeline folder or Hub id (through the system registry),
  or any callable object.
* [`conditioning_of`]: what a system reads (`text`, `gloss`), which decides whether the harness passes it the
  reference (oracle) glosses.
* `_generate`: every evaluated sample through one system, in batches, with one seeded generator per sample, the
  outputs checked and converted to float32 `(T, D)` arrays.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .baselines import is_baseline_dir, load_baseline

__all__ = [
    "conditioning_of",
    "load_system",
]


# --------------------------------------------------------------------------------------------- systems
@dataclass
class _System:
    name: str
    kind: str  # "ground_truth" | "baseline" | "model"
    obj: Any = None
    source: str = ""
    short: str = ""
    oracle_gloss: bool = False
    reads_text: bool = True


_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def load_system(name: str, spec: Any, device: Optional[Union[str, torch.device]] = None) -> Any:
    """A generation system from a path or an object: a saved baseline folder, a pipeline folder (or Hub id) loaded
    through the system registry (`hf_sign.pipelines.loading.load_sign_pipeline`: the registered pipeline class, else
    `DiffusionPipeline.from_pretrained(path, trust_remote_code=True)`), a LoRA adapter folder of `hf-sign finetune`
    (its base model with the adapter), or any callable object."""
    if not isinstance(spec, (str, os.PathLike)):
        if not callable(spec):
            raise ValueError(f"`models[{name!r}]` must be a path or a callable system; got {type(spec).__name__}.")
        return spec
    from ..pipelines.lora import ADAPTER_INFO_NAME

    path = str(spec)
    if os.path.isdir(path):
        if is_baseline_dir(path):
            return load_baseline(path)
        if not any(os.path.isfile(os.path.join(path, f)) for f in ("model_index.json", ADAPTER_INFO_NAME)):
            raise ValueError(
                f"`models[{name!r}]` = {path!r} is neither a pipeline folder (model_index.json), a LoRA adapter "
                f"folder ({ADAPTER_INFO_NAME}) nor a saved baseline (baseline_config.json)."
            )
    elif os.path.isabs(path) or path.startswith(".") or not _HUB_ID.match(path):
        raise ValueError(
            f"`models[{name!r}]` = {path!r} does not exist (expected a pipeline folder or a Hub repo id)."
        )
    from ..pipelines.loading import load_sign_pipeline

    try:
        pipe = load_sign_pipeline(path)
    except Exception as err:  # noqa: BLE001 - re-raised naming the model
        raise ValueError(f"`models[{name!r}]` = {path!r} could not be loaded as a pipeline: {err}") from err
    if device is not None:
        pipe.to(device)
    if hasattr(pipe, "set_progress_bar_config"):
        pipe.set_progress_bar_config(disable=True)
    return pipe


def conditioning_of(system: Any) -> tuple:
    """What a system object reads: the registry's entry for a registered pipeline, else its `conditioning` attribute
    (the baselines define it), else `("text",)` plus `"gloss"` when its `__call__` names a `gloss`."""
    from ..systems import system_for_pipeline

    registered = system_for_pipeline(system)
    if registered is not None:
        return tuple(registered.conditioning)
    if hasattr(system, "conditioning"):
        return tuple(system.conditioning)
    return ("text", "gloss") if "gloss" in _call_parameters(system) else ("text",)


def _call_parameters(system: Any) -> set:
    try:
        params = inspect.signature(system.__call__ if not inspect.isfunction(system) else system).parameters
    except (TypeError, ValueError):
        return set()
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return set(params) | {"**"}
    return set(params)


def _to_numpy_poses(poses: Any, name: str, ids: Sequence[str], feature_dim: int) -> List[np.ndarray]:
    if isinstance(poses, (np.ndarray, torch.Tensor)) and poses.ndim == 3:
        poses = list(poses)
    if not isinstance(poses, (list, tuple)):
        raise ValueError(
            f"System {name!r} returned `poses` of type {type(poses).__name__}; expected a list of (T, D) arrays."
        )
    if len(poses) != len(ids):
        raise ValueError(
            f"System {name!r} returned {len(poses)} `poses` for {len(ids)} prompts; expected one sequence per prompt."
        )
    out = []
    for p, sid in zip(poses, ids):
        arr = p.detach().float().cpu().numpy() if isinstance(p, torch.Tensor) else np.asarray(p, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != feature_dim:
            raise ValueError(
                f"System {name!r} returned `poses` of shape {arr.shape} for sample {sid!r}; "
                f"expected (num_frames >= 1, {feature_dim})."
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"System {name!r} returned NaN/inf `poses` for sample {sid!r}.")
        out.append(np.ascontiguousarray(arr, dtype=np.float32))
    return out


def _generate(
    system: _System,
    rows,
    *,
    seed: int,
    batch_size: int,
    num_inference_steps,
    num_frames_policy,
    feature_dim,
    show_progress,
):
    """All of `rows` through `system`: poses, per-sample info dicts, sign tokens (or None)."""
    params = _call_parameters(system.obj)
    accepts = lambda k: k in params or "**" in params  # noqa: E731
    poses, infos, tokens = [], [], []
    bar = tqdm(total=len(rows), desc=f"generating: {system.name}", unit="sample", disable=not show_progress)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        ids = [str(r["id"]) for r in chunk]
        kwargs: Dict[str, Any] = {"output_type": "np", "return_dict": True}
        if accepts("generator"):
            kwargs["generator"] = [torch.Generator().manual_seed(seed + start + k) for k in range(len(chunk))]
        if num_inference_steps is not None and accepts("num_inference_steps"):
            kwargs["num_inference_steps"] = int(num_inference_steps)
        if system.oracle_gloss:  # only systems conditioned on glosses get the reference (oracle) glosses
            kwargs["gloss"] = [list(r["gloss"]) for r in chunk]
        if num_frames_policy == "reference":
            if not accepts("num_frames"):
                raise ValueError(f"System {system.name!r} takes no `num_frames`; num_frames='reference' needs it.")
            kwargs["num_frames"] = [int(r["poses"].shape[0]) for r in chunk]
        if system.reads_text:
            out = system.obj([str(r["text"]) for r in chunk], **kwargs)
        else:
            out = system.obj(**kwargs)
        out_poses = out[0] if isinstance(out, tuple) else getattr(out, "poses", None)
        if out_poses is None:
            raise ValueError(f"System {system.name!r} returned no `poses` (got {type(out).__name__}).")
        poses += _to_numpy_poses(out_poses, system.name, ids, feature_dim)
        info = getattr(out, "info", None)
        infos += list(info) if info is not None else [{} for _ in chunk]
        tok = getattr(out, "sign_tokens", None)
        tokens = None if tok is None or tokens is None else tokens + list(tok)
        bar.update(len(chunk))
    bar.close()
    return poses, infos, tokens

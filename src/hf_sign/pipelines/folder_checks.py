"""Checks of a saved pipeline folder before anything in it is loaded, so a broken folder gets one clear `ValueError`
naming the component, instead of an error from deep inside diffusers, transformers or safetensors.

[`check_pipeline_folder`] runs on every local load of an hf-sign pipeline: `Pipeline.from_pretrained(folder)`,
`load_sign_pipeline` (the CLI) and `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` (see
`RemoteCodePipelineMixin`). It refuses:

* a folder whose `model_index.json` names another pipeline class than the one loading it (another system's folder);
* a component listed in `model_index.json` without its folder (`vae/`, `normalizer/`, `tokenizer/`, ...), or
  whose folder lacks its config (`config.json`, `scheduler_config.json`, `tokenizer.json`/`tokenizer_config.json`);
  a component the pipeline needs that `model_index.json` does not list at all;
* a component whose saved config belongs to another class (`_class_name` of a diffusers model or scheduler,
  `model_type` of a transformers model): diffusers would otherwise build the recorded class with library defaults
  and ignore the saved settings (a DDIM folder read as Euler drops the trained schedule);
* a `.safetensors` file that is truncated or corrupted (its header is read and checked against the file size; the
  tensors are not loaded).
"""

from __future__ import annotations

import json
import os
import struct
import typing
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Union

__all__ = ["check_pipeline_folder", "check_safetensors_file"]

# config file of each kind of component (first match wins)
_MODEL_CONFIG = "config.json"
_SCHEDULER_CONFIG = "scheduler_config.json"
_FAST_TOKENIZERS = ("PreTrainedTokenizerFast", "TokenizersBackend")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model", "vocab.txt")


def _read_json(path: Path, what: str) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{what} `{path}` is not valid JSON ({err}); re-save or re-download the pipeline.") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} `{path}` must hold a JSON object; got {type(data).__name__}.")
    return data


def check_safetensors_file(path: Union[str, os.PathLike]) -> None:
    """Raise a `ValueError` naming `path` when it is not a complete safetensors file: an 8-byte header length, a
    JSON header, and tensor data that ends exactly at the end of the file (a truncated download fails here)."""
    path = Path(path)
    size = path.stat().st_size
    problem = None
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            problem = f"{size} bytes, shorter than the 8-byte header length"
        else:
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                problem = f"its header claims {n} bytes but the file has {size}"
            else:
                try:
                    header = json.loads(f.read(n).decode("utf-8"))
                    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
                except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                    problem = "its header is not a safetensors header"
                else:
                    expected = 8 + n + max(ends, default=0)
                    if expected != size:
                        problem = f"the tensors need {expected} bytes but the file has {size}"
    if problem is not None:
        raise ValueError(
            f"`{path}` is truncated or corrupted ({problem}); re-download or re-save the pipeline (or train again)."
        )


def _expected_types(pipeline_class: type) -> Dict[str, Any]:
    try:
        hints = typing.get_type_hints(pipeline_class.__init__)
    except Exception:  # unresolvable annotations: nothing to compare against
        return {}
    out = {}
    for name, hint in hints.items():
        if typing.get_origin(hint) is typing.Union:  # Optional[X]
            hint = next((a for a in typing.get_args(hint) if a is not type(None)), None)
        out[name] = hint
    return out


def _transformers_model_type(class_name: str, expected: Any) -> Optional[str]:
    """The `model_type` a transformers model class reads (`None` when it has none or is unknown here)."""
    cls = expected if isinstance(expected, type) and expected.__name__ == class_name else None
    if cls is None:
        import transformers

        cls = getattr(transformers, class_name, None)
    config_class = getattr(cls, "config_class", None)
    return getattr(config_class, "model_type", None) or None


def check_pipeline_folder(
    folder: Union[str, os.PathLike], pipeline_class: Optional[type] = None, provided: Iterable[str] = ()
) -> None:
    """Raise a `ValueError` naming the component for a pipeline folder that cannot load correctly (see the module
    docstring). `pipeline_class` is the class about to load it (`None` checks the folder on its own terms);
    `provided` names components passed to `from_pretrained` as objects, which the folder need not hold."""
    provided = set(provided)
    folder = Path(folder)
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise ValueError(f"`{folder}` has no `model_index.json`: it is not a saved pipeline folder.")
    index = _read_json(index_path, "The pipeline index")
    saved = index.get("_class_name")
    saved = saved[-1] if isinstance(saved, (list, tuple)) and saved else saved
    expected_types: Dict[str, Any] = {}
    if pipeline_class is not None:
        if saved and saved != pipeline_class.__name__:
            from ..systems import system_for_pipeline

            system = system_for_pipeline(saved)
            owner = f" (system {system.name!r})" if system is not None else ""
            raise ValueError(
                f"`{folder}` holds a pipeline of class {saved}{owner}, not {pipeline_class.__name__}; load it with "
                f"`{saved}.from_pretrained` or `hf_sign.pipelines.loading.load_sign_pipeline`."
            )
        expected_types = _expected_types(pipeline_class)
        optional = set(getattr(pipeline_class, "_optional_components", []) or [])
        modules, _ = pipeline_class._get_signature_keys(pipeline_class)
        missing = sorted(m for m in modules if m not in optional and m not in index and m not in provided)
        if missing:
            raise ValueError(
                f"`{index_path}` lists no {', '.join(f'`{m}`' for m in missing)}, which {pipeline_class.__name__} "
                "needs (a pipeline folder of another system, or an edited index)."
            )
    for name, value in sorted(index.items()):
        if name.startswith("_") or not isinstance(value, (list, tuple)) or len(value) != 2 or value[0] is None:
            continue
        if name in provided:
            continue
        library, class_name = value
        sub = folder / name
        what = f"component `{name}` ({class_name})"
        if not sub.is_dir():
            raise ValueError(
                f"`{folder}` has no `{name}/` folder: the {what} listed in `model_index.json` is missing. Copy the "
                "whole pipeline folder (or save it again with `save_pretrained`)."
            )
        is_scheduler = class_name.endswith("Scheduler") or name.endswith("scheduler")
        is_tokenizer = "Tokenizer" in class_name or name.endswith("tokenizer")
        if is_scheduler:
            config = sub / _SCHEDULER_CONFIG
            if not config.is_file():
                raise ValueError(f"`{sub}` has no `{_SCHEDULER_CONFIG}`: the {what} cannot be built.")
            found = _read_json(config, f"The {name} config").get("_class_name")
            if found and found != class_name:
                raise ValueError(
                    f"`{config}` holds the config of {found} but `model_index.json` records `{name}` as {class_name}; "
                    f"loading would build a {class_name} with library defaults instead of the saved schedule. Save "
                    f"the scheduler with the pipeline (`pipe.scheduler = {found}.from_config(...)`, then "
                    "`save_pretrained`), or fix the index."
                )
            continue
        if is_tokenizer:
            # a fast tokenizer is its `tokenizer.json`; without it transformers tries to convert a slow one
            needed = ("tokenizer.json",) if class_name in _FAST_TOKENIZERS else _TOKENIZER_FILES
            if not any((sub / f).is_file() for f in needed):
                raise ValueError(
                    f"`{sub}` has no {' or '.join(f'`{f}`' for f in needed[:2])}: the tokenizer folder of the {what} "
                    "is incomplete. Copy the whole pipeline folder (or save it again with `save_pretrained`)."
                )
            continue
        config = sub / _MODEL_CONFIG
        if not config.is_file():
            raise ValueError(f"`{sub}` has no `{_MODEL_CONFIG}`: the {what} cannot be built.")
        data = _read_json(config, f"The {name} config")
        found_class = data.get("_class_name")
        if found_class and found_class != class_name:
            raise ValueError(
                f"`{config}` is the config of {found_class}, but `model_index.json` records `{name}` as "
                f"{class_name}; the folder mixes components of different models."
            )
        model_type = _transformers_model_type(class_name, expected_types.get(name))
        if model_type and data.get("model_type") and data["model_type"] != model_type:
            raise ValueError(
                f"`{config}` has model_type {data['model_type']!r}, but `{name}` is a {class_name} "
                f"(model_type {model_type!r}); the folder mixes components of different models."
            )
        for weights in sorted(sub.glob("*.safetensors")):
            check_safetensors_file(weights)

"""Loading any hf-sign pipeline from a folder or a repo id, through the system registry.

A folder (or a repo id in the local hub cache) whose `model_index.json` names a registered system's pipeline class is
loaded with that class's own `from_pretrained`: nothing from the folder is executed, and concurrent loads do not race
in diffusers' shared remote-code module cache. A LoRA adapter folder of `hf-sign finetune` loads as its base model
with the adapter in place (as PEFT's `AutoPeftModel` reads the base from the adapter), so every command that takes a
model takes an adapter too. Anything else goes through
`DiffusionPipeline.from_pretrained(path_or_repo_id, trust_remote_code=True)`, as a Hub user would load it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

from ..systems import system_for_pipeline
from .hub_cache import cached_repo_path
from .lora import ADAPTER_INFO_NAME, read_adapter_info

__all__ = ["load_sign_pipeline"]


def load_sign_pipeline(model: Union[str, os.PathLike], **kwargs: Any):
    """A pipeline from a folder or a repo id (`kwargs` go to `from_pretrained`, e.g. `torch_dtype`), or from a LoRA
    adapter folder: its base model (`base_model` in `hf_sign_adapter.json`) with the adapter loaded.

    Raises a `ValueError` naming `model` when it is neither a folder nor an `org/name` repo id, and when a repo id
    is not in the local cache and the Hub is offline or cannot serve it.
    """
    model = str(model)
    folder = Path(model) if Path(model).is_dir() else None
    if folder is None:
        if model.count("/") != 1 or os.path.isabs(model) or model.startswith("."):
            raise ValueError(f"`model` {model!r} is neither a pipeline folder nor a repo id ('org/name').")
        cached = cached_repo_path(model)
        folder = Path(cached) if cached is not None else None
    if folder is not None and (folder / ADAPTER_INFO_NAME).is_file() and not (folder / "model_index.json").is_file():
        info = read_adapter_info(folder)
        pipe = load_sign_pipeline(info["base_model"], **kwargs)
        pipe.load_lora_weights(str(folder))
        return pipe
    system = system_for_pipeline(folder) if folder is not None else None
    if system is not None:
        return system.pipeline_class().from_pretrained(str(folder), **kwargs)
    from diffusers import DiffusionPipeline

    if folder is not None:
        return DiffusionPipeline.from_pretrained(str(folder), trust_remote_code=True, **kwargs)
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise ValueError(
            f"`model` {model!r} is neither a folder nor in the local Hub cache, and the Hub is offline "
            "(HF_HUB_OFFLINE=1); download it while online, or give a pipeline folder."
        )
    try:
        return DiffusionPipeline.from_pretrained(model, trust_remote_code=True, **kwargs)
    except OSError as err:  # unreachable Hub, unknown repo, refused credentials: one message, no traceback chain
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        reason = reason.replace(" Please check out the root cause in the stacktrace above.", "")
        raise ValueError(f"`model` {model!r} is no folder and could not be loaded from the Hub: {reason}") from None

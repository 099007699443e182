"""LoRA adapters of a pipeline's main network: adding, saving and loading them (`hf-sign finetune` writes them).

An adapter folder holds the adapter only, never the base weights:

```
ADAPTER_DIR/adapter_model.safetensors   the LoRA matrices (A, B) of the adapted component
ADAPTER_DIR/adapter_config.json         PEFT's `LoraConfig` (r, lora_alpha, lora_dropout, target_modules, ...)
ADAPTER_DIR/hf_sign_adapter.json        the system, the pipeline class, the component, the base model it adapts
```

Two libraries carry the adapter, as each model's own library does it:

* diffusers models (Sign-SALD's denoiser, Sign-MExD's transformer) inherit diffusers' `PeftAdapterMixin`:
  `add_adapter`, `save_lora_adapter` and `load_lora_adapter` (keys without a prefix), `fuse_lora`;
* transformers models (the MaDiS LM, Stable Signer's linker) go through PEFT directly: `get_peft_model` to train,
  `PeftModel.save_pretrained` (the folder is a plain PEFT adapter folder) and `PeftModel.from_pretrained`, which adds
  the LoRA layers into the component in place, so the pipeline keeps its component and its class.

```python
>>> from hf_sign.pipelines.loading import load_sign_pipeline
>>> pipe = load_sign_pipeline("runs/sign-sald-small")
>>> pipe.load_lora_weights("runs/sign-sald-lora")  # or load_lora_weights(pipe, "runs/sign-sald-lora", fuse=True)
```
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Union

from torch import nn

__all__ = [
    "ADAPTER_CONFIG_NAME",
    "ADAPTER_INFO_NAME",
    "ADAPTER_WEIGHTS_NAME",
    "add_lora_adapter",
    "is_diffusers_model",
    "load_lora_weights",
    "read_adapter_info",
    "save_lora_adapter",
]

ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_INFO_NAME = "hf_sign_adapter.json"
ADAPTER_NAME = "default"


def is_diffusers_model(component: nn.Module) -> bool:
    """Whether `component` carries diffusers' `PeftAdapterMixin` (else it goes through PEFT directly)."""
    from diffusers.loaders import PeftAdapterMixin

    return isinstance(component, PeftAdapterMixin)


def add_lora_adapter(component: nn.Module, lora_config: Any) -> nn.Module:
    """Add a trainable LoRA adapter (a `peft.LoraConfig`) to `component` in place; the base weights are frozen.

    Returns:
        `nn.Module`: what `save_lora_adapter` saves: the component itself (diffusers) or its `PeftModel` wrapper
        (transformers), whose base model is `component`.

    Raises a `ValueError` naming `target_modules` when no layer of `component` matches them.
    """
    from peft import get_peft_model

    try:
        if is_diffusers_model(component):
            component.add_adapter(lora_config, adapter_name=ADAPTER_NAME)
            return component
        return get_peft_model(component, lora_config, adapter_name=ADAPTER_NAME)
    except ValueError as err:  # PEFT's NoMatchingPeftModuleError is a ValueError (older PEFT: a plain one)
        if "target" not in str(err).lower():
            raise
        linear = sorted({n.rpartition(".")[2] for n, m in component.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(
            f"`target_modules` {sorted(lora_config.target_modules)} match no layer of {type(component).__name__} "
            f"({err}). Its linear layers are named: {linear}."
        ) from None


def save_lora_adapter(adapted: nn.Module, folder: Union[str, os.PathLike], info: Dict[str, Any]) -> Path:
    """Write the adapter of `adapted` (what `add_lora_adapter` returned) and `info` into `folder`; nothing else."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if is_diffusers_model(adapted):
        adapted.save_lora_adapter(str(folder), adapter_name=ADAPTER_NAME, weight_name=ADAPTER_WEIGHTS_NAME)
        adapted.peft_config[ADAPTER_NAME].save_pretrained(str(folder))
    else:
        adapted.save_pretrained(str(folder), selected_adapters=[ADAPTER_NAME])
        (folder / "README.md").unlink(missing_ok=True)  # PEFT's generated card: the adapter is described by info
    (folder / ADAPTER_INFO_NAME).write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
    return folder


def read_adapter_info(adapter: Union[str, os.PathLike]) -> Dict[str, Any]:
    """The adapter folder's `hf_sign_adapter.json`; a `ValueError` naming what is missing when it is no adapter."""
    folder = Path(adapter)
    if not folder.is_dir():
        from .hub_cache import cached_repo_path

        cached = cached_repo_path(str(adapter)) if str(adapter).count("/") == 1 else None
        if cached is None:
            raise ValueError(f"`adapter` {str(adapter)!r} is neither an adapter folder nor a cached repo id.")
        folder = Path(cached)
    missing = [n for n in (ADAPTER_WEIGHTS_NAME, ADAPTER_CONFIG_NAME, ADAPTER_INFO_NAME) if not (folder / n).is_file()]
    if missing:
        raise ValueError(f"{folder} is not an hf-sign LoRA adapter folder (`hf-sign finetune`): it has no {missing}.")
    info = json.loads((folder / ADAPTER_INFO_NAME).read_text(encoding="utf-8"))
    info["folder"] = str(folder)
    return info


def load_lora_weights(pipe: Any, adapter: Union[str, os.PathLike], fuse: bool = False) -> Dict[str, Any]:
    """Load an adapter folder into the component of `pipe` it adapts (in place); returns the adapter's info.

    Args:
        pipe: a pipeline of the adapter's system (the base model it was trained on, or one of the same shape).
        adapter (`str` or `os.PathLike`): the adapter folder (`hf-sign finetune --output-dir`) or a cached repo id.
        fuse (`bool`, *optional*, defaults to `False`): merge the LoRA product into the base weights and remove the
            adapter layers (faster inference, the adapter can no longer be switched off).

    Raises a `ValueError` when the adapter was trained for another pipeline class or does not fit the component.
    """
    from peft import PeftModel

    info = read_adapter_info(adapter)
    folder, expected = info["folder"], info.get("pipeline_class")
    if expected and type(pipe).__name__ != expected:
        raise ValueError(
            f"The adapter in {folder} adapts a {expected} ({info.get('system')}); this pipeline is a "
            f"{type(pipe).__name__}. Load it into the base model {info.get('base_model')!r} or one of its system."
        )
    name = info["component"]
    component = getattr(pipe, name, None)
    if not isinstance(component, nn.Module):
        raise ValueError(f"The adapter adapts the component {name!r}, which {type(pipe).__name__} does not have.")
    try:
        if is_diffusers_model(component):
            component.load_lora_adapter(
                folder, prefix=None, weight_name=ADAPTER_WEIGHTS_NAME, adapter_name=ADAPTER_NAME
            )
            if fuse:
                component.fuse_lora()
                component.unload_lora()
        else:
            adapted = PeftModel.from_pretrained(component, folder, adapter_name=ADAPTER_NAME)
            if fuse:
                adapted.merge_and_unload()
    except (RuntimeError, KeyError) as err:  # shapes or layer names of another base model
        raise ValueError(
            f"The adapter in {folder} does not fit this pipeline's {name!r} (was it trained on "
            f"{info.get('base_model')!r}, with the same config?): {err}"
        ) from None
    component.eval()
    return info

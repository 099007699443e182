"""Reading released training checkpoints without executing anything they contain.

Two readers, both refusing to run code from the file:

* `load_lightning_state_dict(path)` reads a PyTorch Lightning `.ckpt` with `torch.load(weights_only=True)`. Such a
  checkpoint also pickles non-tensor Python objects (hyper-parameters as OmegaConf containers, a `WordVectorizer`
  of the training data module, numpy arrays, ...), which `weights_only=True` refuses. Instead of a permissive
  unpickler, `torch.serialization.get_unsafe_globals_in_checkpoint` lists the globals the file names (a static scan
  of its pickle, nothing is loaded); each one must be on `ALLOWED_GLOBALS` (or passed in `allow_globals`), and is
  then registered with `torch.serialization.safe_globals` as an inert placeholder class (`InertPickledObject`):
  unpickling builds placeholders that keep nothing and run nothing, whatever the name they stand for, so the
  checkpoint's hyper-parameters come back as empty shells and its tensors as tensors. A global outside the
  allowlist raises a `ValueError` naming it before anything is loaded; torch itself refuses `os`, `sys`, `posix`,
  `nt` whatever the allowlist says.
* `load_id_map(path)` reads a pickled `dict[int, int]` (the `map_ids.pkl` of the authors' Qwen folder) with an
  unpickler whose `find_class` refuses every global, so only built-in containers and numbers can come back.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Union

import torch

__all__ = ["ALLOWED_GLOBALS", "InertPickledObject", "load_lightning_state_dict", "load_id_map"]

PathLike = Union[str, Path]

# Globals that a released Lightning checkpoint may name outside its `state_dict`, and that are replaced by inert
# placeholders. An entry ending in "." allows a whole package. Everything here only ever sits in metadata the
# converter never reads (hyper-parameters, data-module settings, callback state).
ALLOWED_GLOBALS = (
    "mGPT.",  # the authors' package: the training data module's WordVectorizer, configs, ...
    "omegaconf.",  # hyper-parameters (DictConfig, ListConfig, their nodes and metadata)
    "numpy.",  # arrays and scalars inside the hyper-parameters
    "pathlib.",  # paths in callback state
    "typing.Any",  # OmegaConf metadata types
    "argparse.Namespace",
    "collections.defaultdict",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.int",
    "builtins.float",
    "builtins.str",
    "builtins.bool",
    "builtins.object",
    "pytorch_lightning.",
    "lightning.",
    "lightning_fabric.",
    "torchmetrics.",
)


class InertPickledObject:
    """Stands in for an object of the checkpoint's metadata: accepts any constructor arguments and any pickled
    state, keeps none of it and never calls anything. `pickled_name` says which global it replaced."""

    pickled_name = ""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __repr__(self) -> str:
        return f"<placeholder for {self.pickled_name}>"


def _is_allowed(name: str, allowed: Iterable[str]) -> bool:
    return any(name.startswith(a) if a.endswith(".") else name == a for a in allowed)


def _placeholders(names: Sequence[str]) -> List[tuple]:
    """One placeholder subclass per global name, registered under that name for `safe_globals`."""
    out = []
    for name in sorted(names):
        cls = type(name.rsplit(".", 1)[-1], (InertPickledObject,), {"pickled_name": name})
        out.append((cls, name))
    return out


def load_lightning_state_dict(path: PathLike, allow_globals: Sequence[str] = ()) -> Dict[str, torch.Tensor]:
    """The `state_dict` of a Lightning checkpoint, read with `torch.load(weights_only=True, mmap=True)`.

    Args:
        path (`str` or `Path`): the `.ckpt` file (a `torch.save` zip archive).
        allow_globals (`Sequence[str]`, *optional*): further global names (or packages, ending in ".") to accept as
            inert placeholders, beyond `ALLOWED_GLOBALS`.

    Returns:
        `Dict[str, torch.Tensor]`: the checkpoint's `state_dict` (memory-mapped tensors).

    Raises:
        `ValueError`: the file is not a `torch.save` archive, names a global outside the allowlist, cannot be
        unpickled with placeholders, or has no `state_dict` of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {str(path)!r} does not exist.")
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except (ValueError, RuntimeError) as err:
        raise ValueError(f"{path.name} is not a checkpoint written by torch.save (a zip archive): {err}") from None
    allowed = tuple(ALLOWED_GLOBALS) + tuple(allow_globals)
    refused = sorted(n for n in unsafe if not _is_allowed(n, allowed))
    if refused:
        raise ValueError(
            f"{path.name} pickles the global(s) {', '.join(refused)}, which are not on the converter's allowlist "
            "(hf_sign.convert.safe_loading.ALLOWED_GLOBALS); nothing was loaded. If you trust the file, pass them "
            "with `allow_globals` (CLI: --allow-global NAME): they are then read as inert placeholders."
        )
    try:
        with torch.serialization.safe_globals(_placeholders(unsafe)):
            checkpoint = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path.name} could not be read with weights_only=True and inert placeholders: {err}"
        ) from None
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise ValueError(f"{path.name} is not a Lightning checkpoint: expected a dict with a `state_dict` entry.")
    state = dict(checkpoint["state_dict"])
    bad = next((k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise ValueError(f"{path.name}: `state_dict[{bad!r}]` is not a tensor.")
    return state


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Unpickler for plain data: every global (class, function) is refused."""

    def find_class(self, module, name):
        raise ValueError(
            f"refuses the pickled global {module}.{name}: only built-in dicts of ints are read from this file"
        )


def load_id_map(path: PathLike) -> Dict[int, int]:
    """A pickled `dict[int, int]` (tokenizer id -> embedding id), read without any pickled global.

    Raises:
        `ValueError`: the file names a global, is not a pickle, or does not hold a dict of non-negative ints.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist.")
    try:
        obj = _NoGlobalsUnpickler(io.BytesIO(path.read_bytes())).load()
    except ValueError as err:
        raise ValueError(f"{path.name} {err}.") from None
    except (pickle.UnpicklingError, EOFError) as err:
        raise ValueError(f"{path.name} is not a readable pickle: {err}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path.name} must hold a dict of tokenizer id -> embedding id; got {type(obj).__name__}.")
    for k, v in obj.items():
        if type(k) is not int or type(v) is not int or k < 0 or v < 0:
            raise ValueError(f"{path.name} must map non-negative int ids to non-negative int ids; got {k!r}: {v!r}.")
    return obj

"""Saving hf-sign pipelines as folders that plain `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)`
loads.

diffusers records a component from a library it does not know (hf-sign) under its full module path, e.g.
`"vae": ["hf_sign.models.sign_sald.skeleton_vae", "SkeletonVAE"]`, and `_class_name` as the pipeline's class name.
A plain `DiffusionPipeline` cannot resolve either, and a Hub repo must hold every custom module as a file. So
`RemoteCodePipelineMixin.save_pretrained` post-processes the saved folder the way diffusers' remote-code loading
expects (diffusers docs, "Community components"):

* the pipeline's entry file from the repository's top-level `pipelines/` folder (`<entry>.py`) is copied into the
  folder and `_class_name` becomes `["<entry>", "<ClassName>"]` (so `DiffusionPipeline` finds the class in it);
* every hf-sign component gets a two-line shim `<component>/<module>.py` that re-exports the real class (and
  imports `ModelMixin` by name, where diffusers looks up the loading method), recorded as `["<module>", "<Class>"]`.

Entry file and shims only `import hf_sign`: the package must be installed where the pipeline is loaded (the
files are thin on purpose; the code lives in one place).

Loading through the pipeline's own class (`SignSALDPipeline.from_pretrained(dir)`) needs no remote code:
`load_config` maps the recorded names back to the classes the pipeline's `__init__` is annotated with, so nothing
from the folder is executed.

Either way a local folder is checked first (`folder_checks.check_pipeline_folder`): a missing component folder, a
component config of another class, or a truncated weights file gets a `ValueError` naming the component.
"""

from __future__ import annotations

import inspect
import json
import os
import typing
from pathlib import Path
from typing import Any, Dict

from diffusers.pipelines.pipeline_loading_utils import LOADABLE_CLASSES

from .folder_checks import check_pipeline_folder

REPO_PIPELINES_DIR = Path(__file__).resolve().parents[3] / "pipelines"

_ENTRY_FALLBACK = '''"""Hub entry file of {cls} (hf-sign). Needs `pip install hf-sign`; the code lives in {module}."""

from diffusers import DiffusionPipeline  # noqa: F401

from {module} import {cls}  # noqa: F401
'''

_SHIM = '''"""Remote-code shim: this component is hf-sign's `{cls}` (needs `pip install hf-sign`)."""

from diffusers import ModelMixin, SchedulerMixin  # noqa: F401  (diffusers looks the base classes up here)

from {module} import {cls}  # noqa: F401
'''


# Class names recorded under a name that exists in every supported transformers version (v5 renamed the fast
# tokenizer base class to `TokenizersBackend` and kept `PreTrainedTokenizerFast` as its alias).
_PORTABLE_NAMES = {("transformers", "TokenizersBackend"): "PreTrainedTokenizerFast"}


def _is_known_library(name: str) -> bool:
    from diffusers import pipelines

    return name in LOADABLE_CLASSES or hasattr(pipelines, name)


class RemoteCodePipelineMixin:
    """Mixin for `DiffusionPipeline` subclasses: Hub/remote-code friendly `save_pretrained`, own-class `load_config`.

    Subclasses set `_hub_entry_file` to the stem of their entry file in the repository's `pipelines/` folder.
    """

    _hub_entry_file: str = None

    def save_pretrained(self, save_directory, *args, **kwargs):
        super().save_pretrained(save_directory, *args, **kwargs)
        save_directory = Path(save_directory)
        index_path = save_directory / "model_index.json"
        index = json.loads(index_path.read_text(encoding="utf-8"))
        cls = type(self)
        entry = self._hub_entry_file
        source = REPO_PIPELINES_DIR / f"{entry}.py"
        if source.is_file():
            text = source.read_text(encoding="utf-8")
        else:  # installed without the repository: write an equivalent entry file
            text = _ENTRY_FALLBACK.format(cls=cls.__name__, module=cls.__module__)
        (save_directory / f"{entry}.py").write_text(text, encoding="utf-8")
        index["_class_name"] = [entry, cls.__name__]
        for name, value in list(index.items()):
            if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[0] is None:
                continue
            library, class_name = value
            if (library, class_name) in _PORTABLE_NAMES:
                index[name] = [library, _PORTABLE_NAMES[(library, class_name)]]
                continue
            if _is_known_library(library) or "." not in library:
                continue
            shim = library.rsplit(".", 1)[-1]
            (save_directory / name).mkdir(exist_ok=True)
            (save_directory / name / f"{shim}.py").write_text(
                _SHIM.format(cls=class_name, module=library), encoding="utf-8"
            )
            index[name] = [shim, class_name]
        index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        if isinstance(pretrained_model_name_or_path, (str, os.PathLike)) and os.path.isdir(
            pretrained_model_name_or_path
        ):
            check_pipeline_folder(pretrained_model_name_or_path, cls, provided=kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @classmethod
    def _get_signature_types(cls):
        # `DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)` resolves this class from the folder's
        # entry file and asks it for its component types before loading any component: the one moment hf-sign code
        # runs with the folder known, so a broken folder is reported here, naming the component, instead of
        # diffusers' "pass trust_remote_code=True" for a component whose folder (and remote-code shim) is missing.
        caller = inspect.currentframe().f_back
        folder = caller.f_locals.get("cached_folder") if caller is not None else None
        loader = caller.f_locals.get("cls") if caller is not None else None
        passed = caller.f_locals.get("kwargs") if caller is not None else None
        if (
            isinstance(folder, (str, os.PathLike))
            and os.path.isdir(folder)
            and not (
                isinstance(loader, type)
                and issubclass(loader, RemoteCodePipelineMixin)  # checked in `from_pretrained`
            )
        ):
            check_pipeline_folder(folder, cls, provided=passed if isinstance(passed, dict) else ())
        return super()._get_signature_types()

    @classmethod
    def load_config(cls, *args, **kwargs):
        out = super().load_config(*args, **kwargs)
        config = out[0] if isinstance(out, tuple) else out
        cls._localize_index(config)
        return out

    @classmethod
    def _localize_index(cls, config: Dict[str, Any]) -> None:
        """Point `_class_name` and the shimmed components of a saved index back at this process' own classes."""
        if not isinstance(config, dict) or "_class_name" not in config:
            return
        if isinstance(config["_class_name"], (list, tuple)) and config["_class_name"][-1] == cls.__name__:
            config["_class_name"] = cls.__name__
        try:
            hints = typing.get_type_hints(cls.__init__)
        except Exception:  # unresolvable annotations: leave the index as saved
            return
        for name, value in config.items():
            if name.startswith("_") or not isinstance(value, (list, tuple)) or len(value) != 2 or value[0] is None:
                continue
            expected = hints.get(name)
            if typing.get_origin(expected) is typing.Union:  # Optional[X]: an optional component
                expected = next((a for a in typing.get_args(expected) if a is not type(None)), None)
            library, class_name = value
            if isinstance(expected, type) and not _is_known_library(library) and expected.__name__ == class_name:
                config[name] = [expected.__module__, class_name]


def entry_file_path(entry: str) -> str:
    """Path of the repository's entry file `pipelines/<entry>.py` (for docs and tests)."""
    return os.fspath(REPO_PIPELINES_DIR / f"{entry}.py")

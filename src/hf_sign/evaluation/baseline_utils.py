"""The base of the benchmark baselines (`hf_sign.evaluation.baselines`): reading a corpus split, and
[`PoseBaseline`], the pipelines' generation interface plus safetensors + JSON (de)serialisation.

* [`load_split`]: one split of an hf-sign corpus (a folder, Hub id, `DatasetDict` or `Dataset`) as a
  `datasets.Dataset`; the baselines fit on it and the harness evaluates on it.
* [`PoseBaseline`]: the pipelines' `__call__`, input checks and output types (`SignPipelineMixin`), fitting from a
  dataset or from rows, and `save_pretrained` / `from_pretrained` (`baseline_config.json` + `baseline.safetensors`,
  nothing pickled). The concrete baselines and their registry live in `hf_sign.evaluation.baselines`.
* [`BaselineOutput`]: the baselines answer with the pipelines' output class, `SignPipelineOutput`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
from safetensors.numpy import load_file, save_file

from ..data.io import load_corpus, split_rows
from ..data.resample import resample_to_length
from ..pipelines.pipeline_utils import SignPipelineMixin, SignPipelineOutput, check_gloss
from ..skeletons.spec import SkeletonSpec, get_skeleton

__all__ = [
    "BaselineOutput",
    "PoseBaseline",
    "load_split",
]

CONFIG_NAME = "baseline_config.json"
WEIGHTS_NAME = "baseline.safetensors"

DatasetLike = Union[str, os.PathLike, Any]  # a folder / Hub id, a `DatasetDict` or a `Dataset`


# ------------------------------------------------------------------------------------------- data access
def load_split(dataset: DatasetLike, split: str):
    """One split of an hf-sign corpus as a `datasets.Dataset`.

    Args:
        dataset (`str`, `os.PathLike`, `datasets.DatasetDict` or `datasets.Dataset`): a dataset folder (or
            Hub id) loadable with `datasets.load_dataset`, an already loaded `DatasetDict`, or a `Dataset`
            (returned as is; `split` is then only used in messages).
        split (`str`): split name, e.g. `"train"` or `"test"`.

    Raises:
        `ValueError` naming `dataset` when it cannot be loaded and `split` when it does not exist.
    """
    from datasets import Dataset, DatasetDict

    if isinstance(dataset, Dataset):
        return dataset
    if isinstance(dataset, (str, os.PathLike)):
        path = str(dataset)
        looks_local = os.path.isabs(path) or path.startswith(".") or os.path.exists(path) or path.count("/") != 1
        if looks_local and not os.path.isdir(path):
            raise ValueError(f"`dataset` {path!r} is not a dataset folder (it does not exist).")
        try:
            dataset = load_corpus(path)
        except Exception as err:  # noqa: BLE001 - re-raised with the field named
            raise ValueError(f"`dataset` {path!r} could not be loaded with datasets.load_dataset: {err}") from err
    if not isinstance(dataset, (DatasetDict, dict)):
        raise ValueError(f"`dataset` must be a folder, a DatasetDict or a Dataset; got {type(dataset).__name__}.")
    if split not in dataset:
        raise ValueError(f"`split`={split!r} is not in the dataset; available splits: {sorted(dataset)}.")
    return dataset[split]


def _corpus_meta(rows: List[Dict[str, Any]], split: str) -> Tuple[float, str, int]:
    dims = {r["poses"].shape[1] for r in rows}
    if len(dims) != 1:
        raise ValueError(f"Split {split!r} mixes feature dims {sorted(dims)}; expected one representation.")
    reps = {r.get("representation", "") for r in rows}
    if len(reps) != 1:
        raise ValueError(f"Split {split!r} mixes representations {sorted(reps)}.")
    fps = float(np.median([float(r.get("fps", 25.0)) for r in rows]))
    return fps, reps.pop(), dims.pop()

# ------------------------------------------------------------------------------------------- interface
# the baselines answer with the pipelines' output class
BaselineOutput = SignPipelineOutput


class PoseBaseline(SignPipelineMixin):
    """Base class: the pipelines' `__call__`, input checks and output types (`SignPipelineMixin`), and safetensors +
    JSON (de)serialisation.

    Subclasses implement `_fit(rows, **kwargs)` (classmethod returning `(config, arrays)`),
    `_generate(text, gloss) -> (poses, info)`, and restore themselves from `(config, arrays)`. `conditioning` says
    what they read (`("gloss",)`: the harness passes the reference glosses and marks the row "oracle gloss").
    """

    conditioning: Tuple[str, ...] = ("text",)
    _supports_latent_output = False

    def __init__(self, config: Dict[str, Any], arrays: Dict[str, np.ndarray]):
        for key in ("fps", "representation", "feature_dim"):
            if key not in config:
                raise ValueError(f"{type(self).__name__} config lacks {key!r}.")
        self.config = dict(config)
        self.arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        self._setup()

    def _setup(self) -> None:
        """Derive lookup structures from `self.config` / `self.arrays` (after fitting or loading)."""

    # -------------------------------------------------------------------------------- construction
    @classmethod
    def from_dataset(
        cls, dataset: DatasetLike, split: str = "train", show_progress: bool = False, **kwargs
    ) -> "PoseBaseline":
        """Fit the baseline on `split` of `dataset` (a folder, Hub id, `DatasetDict` or `Dataset`).

        Args:
            dataset (`str`, `os.PathLike`, `DatasetDict` or `Dataset`): the corpus.
            split (`str`, *optional*, defaults to `"train"`): the split to fit on (never the test split of a
                benchmark).
            show_progress (`bool`, *optional*, defaults to `False`): progress bar while fitting.
            **kwargs: settings of the subclass (see its docstring).
        """
        return cls.from_rows(
            split_rows(load_split(dataset, split), split), split=split, show_progress=show_progress, **kwargs
        )

    @classmethod
    def from_rows(
        cls, rows: List[Dict[str, Any]], split: str = "train", show_progress: bool = False, **kwargs
    ) -> "PoseBaseline":
        """Fit on rows already read with [`split_rows`] (the harness reads a split once for all baselines)."""
        if not rows:
            raise ValueError(f"Split {split!r} has no rows to fit {cls.__name__} on.")
        fps, representation, feature_dim = _corpus_meta(rows, split)
        config, arrays = cls._fit(rows, split=split, show_progress=show_progress, **kwargs)
        config.update(fps=fps, representation=representation, feature_dim=feature_dim, fitted_on_split=split)
        return cls(config, arrays)

    @classmethod
    def _fit(cls, rows, split: str, show_progress: bool, **kwargs) -> Tuple[Dict[str, Any], Dict[str, np.ndarray]]:
        raise NotImplementedError

    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> Path:
        """Write `baseline_config.json` and `baseline.safetensors` to `save_directory` (created)."""
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        config = {"_class_name": type(self).__name__, **self.config}
        (out / CONFIG_NAME).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        save_file(self.arrays, str(out / WEIGHTS_NAME))
        return out

    @classmethod
    def from_pretrained(cls, pretrained_path: Union[str, os.PathLike]) -> "PoseBaseline":
        """Load a baseline saved with `save_pretrained` (on the base class: whichever baseline it is)."""
        path = Path(pretrained_path)
        if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
            raise ValueError(
                f"`pretrained_path` {str(path)!r} holds no baseline ({CONFIG_NAME} + {WEIGHTS_NAME} expected)."
            )
        from .baselines import BASELINES  # the concrete baselines subclass this module's class

        config = json.loads((path / CONFIG_NAME).read_text(encoding="utf-8"))
        name = config.pop("_class_name", None)
        target = BASELINES.get(name)
        if target is None:
            raise ValueError(
                f"{path / CONFIG_NAME}: unknown `_class_name` {name!r}; expected one of {sorted(BASELINES)}."
            )
        if cls is not PoseBaseline and target is not cls:
            raise ValueError(f"{path} holds a {name}, not a {cls.__name__}; load it with load_baseline().")
        return target(config, load_file(str(path / WEIGHTS_NAME)))

    # ------------------------------------------------------------------------------------ generation
    @property
    def fps(self) -> float:
        return float(self.config["fps"])

    @property
    def skeleton(self) -> SkeletonSpec:
        return get_skeleton(self.config["representation"])

    def _generate(self, text: str, gloss: Optional[List[str]]) -> Tuple[np.ndarray, Dict[str, Any]]:
        raise NotImplementedError

    def __call__(
        self,
        prompt: Optional[Union[str, List[str]]] = None,
        num_frames: Optional[Union[int, List[int]]] = None,
        generator=None,
        output_type: str = "np",
        return_dict: bool = True,
        gloss: Optional[Union[str, List[str], List[List[str]]]] = None,
        duration_s: Optional[Union[float, List[float]]] = None,
        num_sequences_per_prompt: int = 1,
    ) -> Union[SignPipelineOutput, tuple]:
        """Generate one pose sequence per prompt (the pipelines' call, without the diffusion arguments).

        Args:
            prompt (`str` or `List[str]`, *optional*): sentence(s) to sign; required unless the baseline reads glosses
                only (then, if given, one per gloss sequence).
            num_frames (`int` or `List[int]`, *optional*): output length(s); the baseline's own length is
                linearly resampled in time to it. Default: the baseline's own length.
            generator (*optional*): ignored (the baselines are deterministic); accepted like the pipelines'.
            output_type (`str`, *optional*, defaults to `"np"`): `"np"`, `"pt"`, `"joints"` or `"pose"`.
            return_dict (`bool`, *optional*, defaults to `True`): return a [`SignPipelineOutput`], else its fields.
            gloss (`str`, `List[str]` or `List[List[str]]`, *optional*): gloss sequence(s), one per prompt (a string is
                split on whitespace; with a single string `prompt`, a flat list of glosses is its sequence); required
                by [`GlossConcatenationBaseline`], ignored by the others.
            duration_s (`float` or `List[float]`, *optional*): length in seconds instead of `num_frames`.
            num_sequences_per_prompt (`int`, *optional*, defaults to 1): copies per prompt (the baselines are
                deterministic, so the copies are equal).
        """
        reads_gloss = "gloss" in self.conditioning
        if isinstance(prompt, str) and isinstance(gloss, (list, tuple)) and all(isinstance(g, str) for g in gloss):
            gloss = [list(gloss)]  # one sentence and a flat list: that sentence's glosses
        glosses = check_gloss(gloss) if reads_gloss or gloss is not None else None
        if prompt is None and reads_gloss and glosses is not None:
            prompts = [" ".join(g) for g in glosses]  # a gloss-only call: the glosses name the sequence
        else:
            prompts = self.check_prompt(prompt)
        batch = len(prompts)
        if glosses is None:
            glosses = [None] * batch
        elif len(glosses) != batch:
            raise ValueError(
                f"`gloss` holds {len(glosses)} gloss sequence(s) for {batch} prompt(s); give one per prompt."
            )
        self.check_common_inputs(batch, num_frames, duration_s, generator, output_type, num_sequences_per_prompt)
        lengths = self.requested_num_frames(batch, num_frames, duration_s) or [None] * batch
        poses, infos = [], []
        for text, g, n in zip(prompts, glosses, lengths):
            seq, info = self._generate(text, g)
            if n is not None and n != seq.shape[0]:
                seq = resample_to_length(seq, n)
            poses.append(np.ascontiguousarray(seq, dtype=np.float32))
            infos.append(info)
        poses = self.repeat_per_sequence(poses, num_sequences_per_prompt)
        infos = self.repeat_per_sequence(infos, num_sequences_per_prompt)
        return self.finish(self.postprocess(poses, output_type, info=infos), return_dict)

    def __repr__(self) -> str:
        keys = {k: v for k, v in self.config.items() if not isinstance(v, (list, dict))}
        return f"{type(self).__name__}({keys})"

"""The base every hf-sign generation system stands on: one output class, one set of input checks, one `postprocess`.

* [`SignPipelineOutput`]: the output of every pipeline and every baseline (poses in the dataset's units, their
  lengths and frame rate, and what `output_type` adds: joint positions, pose-format objects, latents).
* [`SignPipelineMixin`]: what a pose generator needs whatever machinery it runs on: prompt and gloss validation,
  per-prompt arguments (`num_frames`, `duration_s`, one value or one per prompt) with clear errors, `fps` and
  `skeleton`, and `postprocess(output_type)` for `"np"`, `"pt"`, `"joints"`, `"pose"` and `"latent"` plus the hook
  a system needs for its own output types (`"tokens"`, `"video"`). The baselines use it directly.
* [`SignPipeline`]: the mixin over diffusers' `DiffusionPipeline` (with hf-sign's remote-code saving). Settings that
  change outputs (`fps`, `skeleton`, and whatever a subclass lists in `_settings`, e.g. a default guidance scale) are
  pipeline config values *and* travel in `pipe.components`, so `Pipeline(**pipe.components)` keeps them.
  Gaussian-diffusion pipelines also get diffusers' call conventions from here: `set_timesteps` before the initial
  noise is scaled by `init_noise_sigma` (`prepare_timesteps`), per-sample generators reaching every stochastic
  `scheduler.step` (`scheduler_step`), and `callback_on_step_end` (`run_step_callback`).

One definition of the output types: [`OUTPUT_TYPES`].
"""

from __future__ import annotations

import copy
import inspect
import math
import warnings
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from ..models.text_encoders import check_prompts
from ..skeletons.spec import SkeletonSpec, get_skeleton
from .remote_code import RemoteCodePipelineMixin
from .text_checks import check_characters, find_unknown_words, first_unknown_message

__all__ = ["OUTPUT_TYPES", "SignPipeline", "SignPipelineMixin", "SignPipelineOutput", "check_gloss", "per_prompt"]

# "np": arrays in dataset units; "pt": the same as tensors; "joints": arrays plus forward-kinematics joint positions;
# "pose": also pose-format `Pose` objects; "latent": the denoised latents, undecoded (systems with a latent space)
OUTPUT_TYPES = ("np", "pt", "joints", "pose", "latent")
# the longest sequence a system without a model limit on its length (Stable Signer's resampled clips) generates: ten
# minutes at 24 fps; systems with a position table or a sign canvas are bounded by it instead (`max_num_frames`)
MAX_NUM_FRAMES = 14400


@dataclass
class SignPipelineOutput(BaseOutput):
    """Output of every hf-sign pipeline and baseline, one entry per generated sequence (prompt-major with several
    sequences per prompt).

    Args:
        poses (`List[np.ndarray]` or `List[torch.Tensor]`): pose features `(num_frames_i, feature_dim)` in the
            dataset's units, tensors for `output_type="pt"`; for `output_type="latent"` the undecoded latents of
            each sequence (tensors, cropped to its latent length).
        num_frames (`List[int]`): frames of every sequence.
        fps (`float`): frame rate of the sequences.
        joints (`List[np.ndarray]`, *optional*): joint positions `(num_frames_i, J, 3)` from the skeleton's forward
            kinematics (smplx133: 54 joints, metres), for `output_type` `"joints"` and `"pose"`.
        pose (`List[pose_format.Pose]`, *optional*): pose-format objects (writable as `.pose`), for `"pose"`.
        info (`List[dict]`, *optional*): per-sequence details a system reports (a retrieved training id, glosses it
            replaced or could not sign); nothing a system changes in its input goes unreported.
    """

    poses: List[Any]
    num_frames: List[int]
    fps: float
    joints: Optional[List[np.ndarray]] = None
    pose: Optional[List[Any]] = None
    info: Optional[List[Dict[str, Any]]] = None

    def to_tuple(self) -> Tuple[Any, ...]:
        """Every field in declaration order, `None`s included (so a position always means the same field)."""
        return tuple(getattr(self, f.name) for f in fields(self))


def per_prompt(value: Any, batch: int, name: str) -> Optional[list]:
    """`value` as one entry per prompt: `None` stays `None`, a scalar is repeated, a list must have `batch` entries."""
    if value is None:
        return None
    values = list(value) if isinstance(value, (list, tuple)) else [value] * batch
    if len(values) != batch:
        raise ValueError(
            f"`{name}` has {len(values)} entries for {batch} prompt(s); give one value or one per prompt."
        )
    return values


def check_gloss(gloss: Any, name: str = "gloss") -> List[List[str]]:
    """Glosses as one list of gloss strings per prompt.

    Accepts a string of space-separated glosses (`"WEATHER TOMORROW RAIN"`), a list of such strings (one per prompt)
    or a list of lists of glosses (`[["WEATHER", "TOMORROW", "RAIN"]]`: one prompt). Raises a `ValueError` naming the
    entry for anything else or an empty entry.
    """
    if isinstance(gloss, str):
        gloss = [gloss]
    if not isinstance(gloss, (list, tuple)) or not gloss:
        raise ValueError(f"`{name}` must be a gloss string, a list of them or a list of gloss lists; got {gloss!r}.")
    out = []
    for i, entry in enumerate(gloss):
        if isinstance(entry, str):
            entry = entry.split()
        if not isinstance(entry, (list, tuple)) or not all(isinstance(g, str) for g in entry):
            raise ValueError(f"`{name}[{i}]` must be a string of glosses or a list of gloss strings; got {entry!r}.")
        entry = [g.strip() for g in entry]
        if not entry or not all(entry):
            raise ValueError(f"`{name}[{i}]` is empty or holds an empty gloss; give the glosses to sign.")
        for k, g in enumerate(entry):
            check_characters(g, f"{name}[{i}][{k}]")
        out.append(list(entry))
    return out


class SignPipelineMixin:
    """Input checks, per-prompt arguments and `postprocess`, shared by pipelines and baselines.

    A class using it provides `fps` and `skeleton` (the base [`SignPipeline`] reads them from its config) and may
    list extra output types in `_extra_output_types`, produced by overriding `postprocess_extra`.
    """

    _extra_output_types: Tuple[str, ...] = ()
    # systems without a latent space (the baselines) set this to False
    _supports_latent_output: bool = True

    @property
    def output_types(self) -> Tuple[str, ...]:
        base = OUTPUT_TYPES if self._supports_latent_output else tuple(t for t in OUTPUT_TYPES if t != "latent")
        return base + tuple(self._extra_output_types)

    # ------------------------------------------------------------------------------------------ checks
    def check_prompt(self, prompt: Any, tokenizer: Any = None, name: str = "prompt") -> List[str]:
        """A non-empty string or list of non-empty strings without control characters, each within the tokenizer's
        length (never truncated)."""
        if isinstance(prompt, str):
            check_characters(prompt, f"{name}[0]")
        elif isinstance(prompt, (list, tuple)):
            for i, p in enumerate(prompt):
                if isinstance(p, str):
                    check_characters(p, f"{name}[{i}]")
        return check_prompts(prompt, tokenizer, field_name=name)

    def check_known_words(
        self, texts: Sequence[str], tokenizer: Any, name: str = "prompt", what: str = "word"
    ) -> List[Dict[str, Any]]:
        """Per text, `{"unknown_words": [...], "unknown_word_fraction": f}` under `tokenizer` (see
        `text_checks.find_unknown_words`), through `report_unknown`."""
        out = []
        for i, text in enumerate(texts):
            unknown, fraction, known = find_unknown_words(tokenizer, text)
            self.report_unknown(f"{name}[{i}]", unknown, fraction, known, what)
            out.append({"unknown_words": unknown, "unknown_word_fraction": float(fraction)})
        return out

    @staticmethod
    def report_unknown(field: str, unknown: List[str], fraction: float, known: int, what: str = "word") -> None:
        """Warn naming the unknown words (or glosses) of one input; raise a `ValueError` when it has no known one
        (whatever it said, the model would read only unknown tokens: the output would not depend on it)."""
        if known == 0:
            raise ValueError(first_unknown_message(field, unknown, what))
        if unknown:
            plural = "es" if what.endswith("s") else "s"
            shown = ", ".join(repr(w) for w in unknown[:8]) + (" ..." if len(unknown) > 8 else "")
            warnings.warn(
                f"`{field}`: {len(unknown)} {what}{'' if len(unknown) == 1 else plural} unknown to the tokenizer: "
                f"{shown} ({fraction:.0%} of the {what}{plural}; listed in `info`).",
                UserWarning,
                stacklevel=4,
            )

    def check_common_inputs(
        self,
        batch: int,
        num_frames: Any = None,
        duration_s: Any = None,
        generator: Any = None,
        output_type: str = "np",
        num_sequences_per_prompt: int = 1,
        latents: Any = None,
    ) -> None:
        """The checks every system shares; `batch` counts prompts. Raises a `ValueError` naming the argument: also for
        `num_frames` (or `duration_s`) above `max_num_frames` and for `latents` holding NaN or infinity."""
        if isinstance(num_sequences_per_prompt, bool) or not isinstance(num_sequences_per_prompt, int) or (
            num_sequences_per_prompt < 1
        ):
            raise ValueError(f"`num_sequences_per_prompt` must be a positive int; got {num_sequences_per_prompt!r}.")
        if num_frames is not None and duration_s is not None:
            raise ValueError("Give either `num_frames` or `duration_s`, not both.")
        for i, n in enumerate(per_prompt(num_frames, batch, "num_frames") or []):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
                raise ValueError(f"`num_frames` must be a positive int (or one per prompt); entry {i} is {n!r}.")
        for i, d in enumerate(per_prompt(duration_s, batch, "duration_s") or []):
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d <= 0:
                raise ValueError(
                    f"`duration_s` must be a positive number of seconds (or one per prompt); entry {i} is {d!r}."
                )
        total = batch * num_sequences_per_prompt
        if isinstance(generator, list) and len(generator) != total:
            raise ValueError(
                f"`generator` is a list of {len(generator)} generators for {total} sequence(s) ({batch} prompt(s) x "
                f"{num_sequences_per_prompt} per prompt); give one per sequence."
            )
        if output_type not in self.output_types:
            raise ValueError(f"`output_type` must be one of {self.output_types}; got {output_type!r}.")
        limit = self.max_num_frames
        for i, n in enumerate(self.requested_num_frames(batch, num_frames, duration_s) or []):
            if limit is not None and n > limit:
                raise ValueError(
                    f"`num_frames` (or `duration_s`) asks for {n} frames for prompt {i}; this pipeline generates at "
                    f"most {limit} ({self.max_num_frames_reason})."
                )
        if torch.is_tensor(latents) and latents.is_floating_point() and not bool(torch.isfinite(latents).all()):
            raise ValueError("`latents` holds NaN or infinite values; give finite initial noise (or leave it out).")

    @property
    def max_num_frames(self) -> Optional[int]:
        """The most frames one sequence may have (`num_frames`/`duration_s` above it are refused); a system with a
        model limit overrides it, the others get `MAX_NUM_FRAMES`."""
        return MAX_NUM_FRAMES

    @property
    def max_num_frames_reason(self) -> str:
        """Where `max_num_frames` comes from, for the error message."""
        return f"`MAX_NUM_FRAMES`: {MAX_NUM_FRAMES / float(self.fps) / 60:.0f} minutes at {float(self.fps):g} fps"

    def requested_num_frames(self, batch: int, num_frames: Any = None, duration_s: Any = None) -> Optional[List[int]]:
        """Frames per prompt asked for by `num_frames` or `duration_s` (`round(duration_s * fps)`), else `None`."""
        if num_frames is not None:
            return [int(n) for n in per_prompt(num_frames, batch, "num_frames")]
        if duration_s is not None:
            return [max(1, int(round(float(d) * self.fps))) for d in per_prompt(duration_s, batch, "duration_s")]
        return None

    @staticmethod
    def repeat_per_sequence(values: Sequence[Any], num_sequences_per_prompt: int) -> list:
        """`[a, b]` -> `[a, a, b, b]` for two sequences per prompt (the order of the outputs)."""
        return [v for v in values for _ in range(num_sequences_per_prompt)]

    # ------------------------------------------------------------------------------------------ outputs
    def postprocess(
        self,
        sequences: Sequence[Union[np.ndarray, torch.Tensor]],
        output_type: str = "np",
        info: Optional[List[Dict[str, Any]]] = None,
        num_frames: Optional[List[int]] = None,
    ) -> SignPipelineOutput:
        """Turn per-sequence features `(num_frames_i, feature_dim)` in dataset units into a [`SignPipelineOutput`].

        `"pt"` keeps tensors (on the CPU), `"np"` gives float32 arrays, `"joints"` adds the skeleton's forward
        kinematics, `"pose"` adds pose-format objects too; `"latent"` passes the sequences through untouched (they are
        latents; `num_frames` then gives the full-rate lengths they decode to), and a system's own types go to
        `postprocess_extra`.
        """
        if output_type not in self.output_types:
            raise ValueError(f"`output_type` must be one of {self.output_types}; got {output_type!r}.")
        for i, s in enumerate(sequences):
            values = s if torch.is_tensor(s) else torch.from_numpy(np.asarray(s, dtype=np.float64))
            if not bool(torch.isfinite(values).all()):
                raise ValueError(
                    f"Sequence {i} came out with NaN or infinite values (weights or inputs out of range: check the "
                    "checkpoint, `latents` and `guidance_scale`); nothing is returned rather than a broken output."
                )
        lengths = [int(n) for n in num_frames] if num_frames is not None else [int(s.shape[0]) for s in sequences]
        fps = float(self.fps)
        if output_type in self._extra_output_types:
            return self.postprocess_extra(sequences, output_type, info)
        if output_type in ("latent", "pt"):
            poses = [s.detach().cpu() if torch.is_tensor(s) else torch.from_numpy(np.asarray(s)) for s in sequences]
            if output_type == "pt":
                poses = [p.float() for p in poses]
            return SignPipelineOutput(poses=poses, num_frames=lengths, fps=fps, info=info)
        poses = [
            s.detach().float().cpu().numpy() if torch.is_tensor(s) else np.asarray(s, dtype=np.float32)
            for s in sequences
        ]
        poses = [np.ascontiguousarray(p, dtype=np.float32) for p in poses]
        joints = pose_objects = None
        if output_type in ("joints", "pose"):
            spec = self.skeleton
            joints = [np.asarray(spec.to_positions(p), dtype=np.float32) for p in poses]
            if output_type == "pose":
                from ..render import positions_to_pose

                pose_objects = [positions_to_pose(j, spec, fps=fps) for j in joints]
        return SignPipelineOutput(
            poses=poses, num_frames=lengths, fps=fps, joints=joints, pose=pose_objects, info=info
        )

    def postprocess_extra(self, sequences, output_type: str, info=None) -> SignPipelineOutput:
        """Hook for a system's own output types (listed in `_extra_output_types`)."""
        raise NotImplementedError(f"{type(self).__name__} lists output_type {output_type!r} but does not produce it.")

    @staticmethod
    def finish(output: SignPipelineOutput, return_dict: bool):
        """`output`, or every one of its fields in order with `return_dict=False`."""
        return output if return_dict else output.to_tuple()


class SignPipeline(SignPipelineMixin, RemoteCodePipelineMixin, DiffusionPipeline):
    r"""Base class of hf-sign's diffusers pipelines.

    A subclass registers its modules in `__init__`, stores its settings with `register_to_config` (at least `fps` and
    `skeleton`, plus those named in `_settings`), and implements `__call__` with `check_inputs`, `generator`,
    `num_inference_steps`, `output_type` and `return_dict`, ending in
    `self.finish(self.postprocess(...), return_dict)`.
    """

    # config values that change outputs and therefore travel in `components` (diffusers leaves them out)
    _settings: Tuple[str, ...] = ("fps", "skeleton")
    # tensors `callback_on_step_end` may read and replace
    _callback_tensor_inputs: List[str] = ["latents"]

    @property
    def fps(self) -> float:
        """Frame rate of the generated sequences (the training corpus')."""
        return float(self.config.fps)

    @property
    def skeleton(self) -> SkeletonSpec:
        """The [`SkeletonSpec`] of the generated features."""
        return get_skeleton(self.config.skeleton)

    @property
    def components(self) -> Dict[str, Any]:
        components = dict(super().components)
        components.update({name: self.config[name] for name in self._settings if name in self.config})
        return components

    def load_lora_weights(self, adapter: Any, fuse: bool = False) -> Dict[str, Any]:
        """Load a LoRA adapter folder written by `hf-sign finetune` into the component it adapts (diffusers'
        `load_lora_adapter` or PEFT's `PeftModel.from_pretrained`; `fuse=True` merges it into the base weights).
        Returns the adapter's `hf_sign_adapter.json`. See `hf_sign.pipelines.lora`."""
        from .lora import load_lora_weights

        return load_lora_weights(self, adapter, fuse=fuse)

    # ------------------------------------------------------------------------------------------ diffusion helpers
    def prepare_timesteps(self, num_inference_steps: int, device) -> torch.Tensor:
        """`scheduler.set_timesteps`, before anything reads `init_noise_sigma` (Euler, Heun, LMS and KDPM2 set it
        there: scaled before, the noise would carry the previous call's schedule)."""
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        return self.scheduler.timesteps

    def prepare_extra_step_kwargs(self, generator, eta: float) -> Dict[str, Any]:
        """`eta` and a single `generator` for the schedulers whose `step` takes them."""
        params = set(inspect.signature(self.scheduler.step).parameters)
        kwargs: Dict[str, Any] = {}
        if "eta" in params:
            kwargs["eta"] = eta
        if "generator" in params and not isinstance(generator, list):
            kwargs["generator"] = generator
        return kwargs

    def per_sequence_schedulers(self, generator, batch: int) -> Optional[List[Any]]:
        """With a list of generators and a scheduler whose `step` draws noise, one scheduler copy per sequence (each
        stepped on its own sequence, at its own length, with its own generator), so a sequence's output does not depend
        on the rest of the batch; `None` otherwise (one batched step)."""
        if not isinstance(generator, list) or "generator" not in inspect.signature(self.scheduler.step).parameters:
            return None
        return [copy.deepcopy(self.scheduler) for _ in range(batch)]

    def scheduler_step(
        self,
        model_output: torch.Tensor,
        t: torch.Tensor,
        latents: torch.Tensor,
        lengths: Sequence[int],
        step_kwargs: Dict[str, Any],
        schedulers: Optional[List[Any]] = None,
        generator=None,
    ) -> torch.Tensor:
        """One denoising step of the batch `latents` (batch, frames, ...); padded frames stay zero.

        `schedulers` from `per_sequence_schedulers`: sequence i steps on `latents[i, :lengths[i]]` with `generator[i]`.
        """
        if schedulers is None:
            out = self.scheduler.step(model_output, t, latents, **step_kwargs).prev_sample
        else:
            out = torch.zeros_like(latents)
            for i, (sched, n) in enumerate(zip(schedulers, lengths)):
                kwargs = dict(step_kwargs, generator=generator[i])
                out[i : i + 1, :n] = sched.step(
                    model_output[i : i + 1, :n], t, latents[i : i + 1, :n], **kwargs
                ).prev_sample
        frame = torch.arange(latents.shape[1], device=latents.device)
        keep = frame[None, :] < torch.as_tensor(list(lengths), device=latents.device)[:, None]
        return out * keep.reshape(keep.shape + (1,) * (latents.ndim - 2)).to(out.dtype)

    def check_callback_inputs(
        self, callback_on_step_end: Optional[Callable], tensor_inputs: Optional[List[str]]
    ) -> None:
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise ValueError(f"`callback_on_step_end` must be callable; got {type(callback_on_step_end).__name__}.")
        unknown = [k for k in tensor_inputs or [] if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"`callback_on_step_end_tensor_inputs` has {unknown}; "
                f"this pipeline offers {self._callback_tensor_inputs}."
            )

    def run_step_callback(
        self, callback_on_step_end: Optional[Callable], step: int, t, tensor_inputs: Optional[List[str]], values: Dict
    ) -> Dict[str, Any]:
        """Call `callback_on_step_end(pipe, step, t, {name: tensor})` (diffusers' convention) and return `values`
        updated with what it returned."""
        if callback_on_step_end is None:
            return values
        result = callback_on_step_end(self, step, t, {k: values[k] for k in tensor_inputs or []})
        if result:
            values = dict(values)
            values.update({k: v for k, v in result.items() if k in values})
        return values

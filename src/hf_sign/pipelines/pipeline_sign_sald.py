"""`SignSALDPipeline`: text -> 3D signing poses with Sign-SALD (Shen et al.), inference only.

Steps of `__call__`:

1. check the inputs (clear `ValueError`s) and encode the prompts with the frozen text encoder;
2. choose every sample's length: `num_frames` or `duration_s` if given, else the denoiser's length predictor;
   the latent length is the frame count rounded up to the VAE's temporal multiple (`vae.temporal_downsample_factor`);
   a denoiser with `duration_conditioning` also predicts when each word is signed, rescaled to that length;
3. draw the initial noise per sample at its own latent length (so a sample's noise does not depend on the other
   prompts of the batch), pad the batch with zeros and mask the padded latent frames everywhere;
4. denoise with the scheduler (DDIM, 50 steps, by default) and classifier-free guidance against the denoiser's
   learned null condition;
5. decode `vae.unscale_latents(latents)` (divided by `scaling_factor`, or per-channel de-standardised) with the
   skeleton-aware VAE, crop each sequence to its requested length and map it back to the dataset's units with the
   `PoseNormalizer`.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, List, Optional, Union

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput, replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor
from transformers import PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from ..data.normalization import PoseNormalizer
from ..models.length_regulator import TokenTiming
from ..models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from ..models.text_encoders import check_prompts, encode_prompts
from ..skeletons.spec import get_skeleton
from .remote_code import RemoteCodePipelineMixin

__all__ = ["SignSALDPipeline", "SignSALDPipelineOutput", "OUTPUT_TYPES"]

OUTPUT_TYPES = ("np", "pt", "joints", "pose")

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from hf_sign.pipelines.pipeline_sign_sald import SignSALDPipeline
        >>> from hf_sign.render import render_to_file
        >>> from hf_sign.skeletons import get_skeleton

        >>> pipe = SignSALDPipeline.from_pretrained("outputs/sign-sald-small")  # `hf-sign train sign-sald ...` output
        >>> out = pipe("where was the brother yesterday?", generator=torch.Generator().manual_seed(0))
        >>> poses = out.poses[0]  # (num_frames, 133) smplx133 axis-angles in dataset units
        >>> render_to_file(poses, get_skeleton("smplx133"), "sign.gif", fps=pipe.config.fps)

        >>> # any diffusers scheduler with the same training schedule can be swapped in
        >>> from diffusers import DPMSolverMultistepScheduler
        >>> pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
        >>> out = pipe(["hello.", "my sister is tall."], num_inference_steps=20, output_type="joints")
        >>> out.joints[1].shape  # (num_frames, 54, 3) forward-kinematics joint positions in metres

        >>> # without hf-sign's class: the saved folder carries its entry file
        >>> from diffusers import DiffusionPipeline
        >>> pipe = DiffusionPipeline.from_pretrained("outputs/sign-sald-small", trust_remote_code=True)
        ```
"""


@dataclass
class SignSALDPipelineOutput(BaseOutput):
    """Output of `SignSALDPipeline`, one entry per prompt.

    Args:
        poses (`List[np.ndarray]` or `List[torch.Tensor]`): pose features `(num_frames_i, feature_dim)` in the
            dataset's units (smplx133: axis-angles), tensors for `output_type="pt"`, arrays otherwise.
        num_frames (`List[int]`): frames of every sequence.
        fps (`float`): frame rate of the sequences.
        joints (`List[np.ndarray]`, *optional*): forward-kinematics joint positions `(num_frames_i, J, 3)` (smplx133:
            54 joints, metres) for `output_type` `"joints"` and `"pose"`.
        pose (`List[pose_format.Pose]`, *optional*): pose-format objects (writable as `.pose`) for `output_type="pose"`.
    """

    poses: List[Any]
    num_frames: List[int]
    fps: float
    joints: Optional[List[np.ndarray]] = None
    pose: Optional[List[Any]] = None


def _as_list(value, batch: int, name: str) -> Optional[list]:
    if value is None:
        return None
    values = list(value) if isinstance(value, (list, tuple)) else [value] * batch
    if len(values) != batch:
        raise ValueError(f"`{name}` has {len(values)} entries for {batch} prompt(s); give one value or one per prompt.")
    return values


class SignSALDPipeline(RemoteCodePipelineMixin, DiffusionPipeline):
    r"""Text-to-sign-pose generation with Sign-SALD's skeleton-aware latent diffusion.

    Args:
        vae ([`SkeletonVAE`]): skeleton-aware VAE; its latents, scaled by `vae.scale_latents`, are diffused.
        denoiser ([`SkeletonLatentDenoiser`]): noise predictor with the length predictor and the null condition.
        text_encoder ([`~transformers.PreTrainedModel`]): frozen text encoder (a `CLIPTextModel`, or a `BertModel`
            for MiniLM); its `last_hidden_state` conditions the denoiser.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): the text encoder's tokenizer; prompts longer than
            its `model_max_length` are rejected, never truncated.
        scheduler ([`~diffusers.SchedulerMixin`]): e.g. `DDIMScheduler` with the training schedule (linear betas,
            1000 steps, `prediction_type="epsilon"`).
        normalizer ([`PoseNormalizer`]): feature statistics of the training corpus (outputs in dataset units).
        fps (`float`, *optional*, defaults to 24.0): frame rate of the training corpus (for `duration_s`).
        default_guidance_scale (`float`, *optional*, defaults to 2.5): guidance scale when `__call__` gets none.
    """

    model_cpu_offload_seq = "text_encoder->denoiser->vae"
    _hub_entry_file = "pipeline_sign_sald"

    def __init__(
        self,
        vae: SkeletonVAE,
        denoiser: SkeletonLatentDenoiser,
        text_encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        scheduler: SchedulerMixin,
        normalizer: PoseNormalizer,
        fps: float = 24.0,
        default_guidance_scale: float = 2.5,
    ):
        super().__init__()
        self.register_modules(
            vae=vae, denoiser=denoiser, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler, normalizer=normalizer
        )
        self.register_to_config(fps=float(fps), default_guidance_scale=float(default_guidance_scale))

    # ------------------------------------------------------------------------------------------ checks
    def check_inputs(self, prompt, num_inference_steps, guidance_scale, num_frames, duration_s, latents, generator, output_type):
        """Raise a `ValueError` naming the argument for anything `__call__` cannot honour; returns the prompt list."""
        prompts = check_prompts(prompt, self.tokenizer)
        batch = len(prompts)
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive int; got {num_inference_steps!r}.")
        if guidance_scale is not None:
            if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)) or not math.isfinite(guidance_scale):
                raise ValueError(f"`guidance_scale` must be a finite number; got {guidance_scale!r}.")
            if guidance_scale < 0:
                raise ValueError(f"`guidance_scale` must be >= 0 (1 = no guidance); got {guidance_scale}.")
        if num_frames is not None and duration_s is not None:
            raise ValueError("Give either `num_frames` or `duration_s`, not both.")
        for i, n in enumerate(_as_list(num_frames, batch, "num_frames") or []):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
                raise ValueError(f"`num_frames` must be a positive int (or one per prompt); entry {i} is {n!r}.")
        for i, d in enumerate(_as_list(duration_s, batch, "duration_s") or []):
            if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d <= 0:
                raise ValueError(f"`duration_s` must be a positive number of seconds (or one per prompt); entry {i} is {d!r}.")
        if latents is not None and (not torch.is_tensor(latents) or latents.ndim != 4):
            shape = tuple(latents.shape) if torch.is_tensor(latents) else type(latents).__name__
            raise ValueError(
                f"`latents` must be a 4-D tensor (batch, num_latent_frames, {self.vae.latent_num_joints}, "
                f"{self.vae.latent_channels}); got {shape}."
            )
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"`generator` is a list of {len(generator)} generators for {batch} prompt(s); give one per prompt.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}; got {output_type!r}.")
        sched_kind = getattr(self.scheduler.config, "prediction_type", None)
        if sched_kind is not None and sched_kind != self.denoiser.config.prediction_type:
            raise ValueError(
                f"The scheduler's prediction_type is {sched_kind!r} but the denoiser predicts "
                f"{self.denoiser.config.prediction_type!r}; build the scheduler with "
                f"`from_config(pipe.scheduler.config)` or pass prediction_type={self.denoiser.config.prediction_type!r}."
            )
        return prompts

    # ------------------------------------------------------------------------------------------ steps
    def _resolve_lengths(self, states, mask, batch, num_frames, duration_s, latents, token_durations=None) -> List[int]:
        """Full-rate frames per sample: explicit, from a duration, from given latents, or predicted from the text
        (with `token_durations`, the predicted word durations of a duration-conditioned denoiser: their sum)."""
        if num_frames is not None:
            return [int(n) for n in _as_list(num_frames, batch, "num_frames")]
        if duration_s is not None:
            return [max(1, int(round(float(d) * self.config.fps))) for d in _as_list(duration_s, batch, "duration_s")]
        if latents is not None:
            return [latents.shape[1] * self.vae.temporal_downsample_factor] * batch
        if token_durations is None:
            return self.denoiser.predict_num_frames(states, mask).tolist()
        # the sum of the words' predicted durations, which the frames are then shared by (on SynthSign's validation
        # split it misses the true length by 13.9 frames on average; the length predictor by 17.6); the length
        # predictor only where no word gets a frame
        total = token_durations.sum(1).round().clamp(max=self.denoiser.config.max_frames).long()
        if (total >= 1).all():
            return total.tolist()
        return torch.where(total >= 1, total, self.denoiser.predict_num_frames(states, mask)).tolist()

    def _initial_latents(self, lengths: List[int], latents, generator, device, dtype) -> torch.Tensor:
        """Noise (B, N'_max, J', C): each sample drawn at its own latent length, padding zeros."""
        factor = self.vae.temporal_downsample_factor
        joints, channels = self.vae.latent_num_joints, self.vae.latent_channels
        latent_lengths = [-(-n // factor) for n in lengths]
        expected = (len(lengths), max(latent_lengths), joints, channels)
        if latents is not None:
            if tuple(latents.shape) != expected:
                raise ValueError(
                    f"`latents` has shape {tuple(latents.shape)}; expected {expected} (batch, num_latent_frames = "
                    f"ceil(max(num_frames) / {factor}), latent joints, latent channels)."
                )
            return latents.to(device=device, dtype=dtype) * self.scheduler.init_noise_sigma
        out = torch.zeros(expected, device=device, dtype=dtype)
        for i, n in enumerate(latent_lengths):
            g = generator[i] if isinstance(generator, list) else generator
            out[i, :n] = randn_tensor((1, n, joints, channels), generator=g, device=device, dtype=dtype)[0]
        return out * self.scheduler.init_noise_sigma

    def _step_kwargs(self, generator, eta: float):
        params = set(inspect.signature(self.scheduler.step).parameters)
        kwargs = {}
        if "eta" in params:
            kwargs["eta"] = eta
        if "generator" in params and not isinstance(generator, list):
            kwargs["generator"] = generator
        return kwargs

    # ------------------------------------------------------------------------------------------ call
    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: Union[str, List[str]],
        num_inference_steps: int = 50,
        guidance_scale: Optional[float] = None,
        num_frames: Optional[Union[int, List[int]]] = None,
        duration_s: Optional[Union[float, List[float]]] = None,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
        eta: float = 0.0,
        output_type: str = "np",
        return_dict: bool = True,
    ) -> Union[SignSALDPipelineOutput, tuple]:
        r"""Generate signing pose sequences for `prompt`.

        Args:
            prompt (`str` or `List[str]`): sentence(s) to sign; non-empty, within the tokenizer's `model_max_length`
                tokens (longer prompts raise a `ValueError`; nothing is truncated).
            num_inference_steps (`int`, *optional*, defaults to 50): denoising steps (the paper's DDIM 50).
            guidance_scale (`float`, *optional*): classifier-free guidance weight `w` in
                `eps_uncond + w (eps_cond - eps_uncond)`; `<= 1` runs the conditional model only. Defaults to
                `config.default_guidance_scale`. Must be >= 0.
            num_frames (`int` or `List[int]`, *optional*): frames to generate (one value, or one per prompt); default:
                the length predictor's estimate (with `duration_conditioning`: the sum of the predicted word
                durations). The latent is rounded up to the VAE's temporal multiple and the output cropped back to
                exactly this many frames.
            duration_s (`float` or `List[float]`, *optional*): length in seconds instead (`round(duration_s * fps)`
                frames); not together with `num_frames`.
            generator (`torch.Generator` or `List[torch.Generator]`, *optional*): for the initial noise (and stochastic
                schedulers); a list gives each prompt its own generator (then a prompt's output does not depend on
                the rest of the batch).
            latents (`torch.Tensor`, *optional*): initial noise `(batch, ceil(max_frames / factor), J', C)`; without
                `num_frames`/`duration_s` every sample gets `num_latent_frames * factor` frames.
            eta (`float`, *optional*, defaults to 0.0): DDIM's eta (ignored by schedulers without it).
            output_type (`str`, *optional*, defaults to `"np"`): `"np"` (arrays), `"pt"` (tensors), `"joints"` (arrays
                plus forward-kinematics joint positions) or `"pose"` (also pose-format `Pose` objects).
            return_dict (`bool`, *optional*, defaults to `True`): return a `SignSALDPipelineOutput`, else `(poses,)`.

        Examples:

        Returns:
            [`SignSALDPipelineOutput`] or `tuple`: the output, or `(poses,)` with `return_dict=False`.
        """
        prompts = self.check_inputs(prompt, num_inference_steps, guidance_scale, num_frames, duration_s, latents, generator, output_type)
        guidance_scale = self.config.default_guidance_scale if guidance_scale is None else float(guidance_scale)
        device = self._execution_device
        dtype = self.denoiser.dtype
        batch = len(prompts)

        states, text_mask = encode_prompts(self.text_encoder, self.tokenizer, prompts, device=device)
        states = states.to(dtype)
        timing = None
        if self.denoiser.config.duration_conditioning:  # where each word is signed, rescaled to the chosen lengths
            timing = self.denoiser.predict_token_timing(states, text_mask)
        lengths = self._resolve_lengths(
            states, text_mask, batch, num_frames, duration_s, latents, None if timing is None else timing.durations
        )
        z = self._initial_latents(lengths, latents, generator, device, dtype)
        factor = self.vae.temporal_downsample_factor
        latent_lengths = torch.tensor([-(-n // factor) for n in lengths], device=device)
        latent_mask = torch.arange(z.shape[1], device=device)[None, :] < latent_lengths[:, None]
        pad = latent_mask[:, :, None, None].to(dtype)
        z = z * pad

        do_cfg = guidance_scale > 1.0
        if do_cfg:
            null_states, null_mask = self.denoiser.null_condition(batch, states.shape[1], device=device, dtype=dtype)
            cond_states, cond_mask = torch.cat([null_states, states]), torch.cat([null_mask, text_mask])
            frame_mask = torch.cat([latent_mask, latent_mask])
            if timing is not None:  # the null condition has no timing
                timing = TokenTiming.cat([timing.empty_like(), timing])
        else:
            cond_states, cond_mask, frame_mask = states, text_mask, latent_mask

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        step_kwargs = self._step_kwargs(generator, eta)
        for t in self.progress_bar(self.scheduler.timesteps):
            model_in = torch.cat([z, z]) if do_cfg else z
            model_in = self.scheduler.scale_model_input(model_in, t)
            eps = self.denoiser(
                model_in, t, encoder_hidden_states=cond_states, encoder_attention_mask=cond_mask, attention_mask=frame_mask,
                token_timing=timing,
            ).sample
            if do_cfg:
                eps_uncond, eps_cond = eps.chunk(2)
                eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
            z = self.scheduler.step(eps, t, z, **step_kwargs).prev_sample * pad

        features = self.vae.decode(self.vae.unscale_latents(z), attention_mask=latent_mask).sample
        features = self.normalizer.denormalize(features.float())
        seqs = [features[i, :n] for i, n in enumerate(lengths)]
        self.maybe_free_model_hooks()

        joints = pose_objects = None
        if output_type == "pt":
            poses = [s.cpu() for s in seqs]
        else:
            poses = [s.cpu().numpy() for s in seqs]
            if output_type in ("joints", "pose"):
                spec = get_skeleton(self.vae.config.skeleton)
                joints = [np.asarray(spec.to_positions(p), dtype=np.float32) for p in poses]
                if output_type == "pose":
                    from ..render import positions_to_pose

                    pose_objects = [positions_to_pose(j, spec, fps=self.config.fps) for j in joints]
        if not return_dict:
            return (poses,)
        return SignSALDPipelineOutput(poses=poses, num_frames=list(lengths), fps=self.config.fps, joints=joints, pose=pose_objects)


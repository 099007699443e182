"""`SignSALDPipeline`: text -> 3D signing poses with Sign-SALD (Shen et al.), inference only.

Steps of `__call__` (on the hf-sign pipeline base, `pipeline_utils.SignPipeline`):

1. check the inputs (clear `ValueError`s);
2. encode the prompts with the frozen text encoder (`encode_prompt`; or take `prompt_embeds`), and the negative side:
   the denoiser's learned null condition, or a `negative_prompt`;
3. choose every sequence's length: `num_frames` or `duration_s` if given, else the denoiser's length predictor;
   the latent length is the frame count rounded up to the VAE's temporal multiple (`vae.temporal_downsample_factor`);
   a denoiser with `duration_conditioning` also predicts when each word is signed, rescaled to that length;
4. set the scheduler's timesteps, then draw the initial noise per sequence at its own latent length (so a sequence's
   noise does not depend on the other prompts of the batch), scaled by `init_noise_sigma`; padded latent frames are
   masked everywhere;
5. stack the guided batch [negative; conditional];
6. denoise with the scheduler (DDIM, 50 steps, by default) and classifier-free guidance; with a list of generators each
   sequence steps on its own (stochastic schedulers draw its noise from its generator);
7. decode `vae.unscale_latents(latents)` (divided by `scaling_factor`, or per-channel de-standardised) with the
   skeleton-aware VAE, crop each sequence to its requested length and map it back to the dataset's units with the
   `PoseNormalizer`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor
from transformers import PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from ..data.normalization import PoseNormalizer
from ..models.length_regulator import TokenTiming
from ..models.sign_sald import SkeletonLatentDenoiser, SkeletonVAE
from ..models.text_encoders import encode_prompts
from .pipeline_utils import SignPipeline, SignPipelineOutput, per_prompt

__all__ = ["SignSALDPipeline", "SignSALDPipelineOutput"]

# the output class of every hf-sign pipeline, under this pipeline's name too
SignSALDPipelineOutput = SignPipelineOutput

# Classifier-free guidance extrapolates away from the unconditional prediction by `guidance_scale - 1` times the
# conditional difference: far above the scales such models are used at (1.5-10) the latents leave the range the VAE
# decodes (at 1e6: poses of thousands of radians), so larger scales are refused rather than returned as garbage.
MAX_GUIDANCE_SCALE = 20.0

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


class SignSALDPipeline(SignPipeline):
    r"""Text-to-sign-pose generation with Sign-SALD's skeleton-aware latent diffusion.

    Args:
        vae ([`SkeletonVAE`]): skeleton-aware VAE; its latents, scaled by `vae.scale_latents`, are diffused.
        denoiser ([`SkeletonLatentDenoiser`]): noise predictor with the length predictor and the null condition.
        text_encoder ([`~transformers.PreTrainedModel`]): frozen text encoder (a `CLIPTextModel`, or a `BertModel`
            for MiniLM); its `last_hidden_state` conditions the denoiser.
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): the text encoder's tokenizer; prompts longer than
            its `model_max_length` are rejected, never truncated.
        scheduler ([`~diffusers.SchedulerMixin`]): e.g. `DDIMScheduler` with the training schedule (linear betas,
            1000 steps, `prediction_type` as the denoiser's).
        normalizer ([`PoseNormalizer`]): feature statistics of the training corpus (outputs in dataset units).
        fps (`float`, *optional*, defaults to 24.0): frame rate of the training corpus (for `duration_s`).
        default_guidance_scale (`float`, *optional*, defaults to 2.5): guidance scale when `__call__` gets none.
        skeleton (`str`, *optional*): name of the output skeleton; defaults to the VAE's `skeleton`.
    """

    model_cpu_offload_seq = "text_encoder->denoiser->vae"
    _hub_entry_file = "pipeline_sign_sald"
    _settings = ("fps", "skeleton", "default_guidance_scale")
    _callback_tensor_inputs = ["latents", "prompt_embeds", "negative_prompt_embeds"]

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
        skeleton: Optional[str] = None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae, denoiser=denoiser, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
            normalizer=normalizer,
        )
        skeleton = skeleton or (vae.config.skeleton if vae is not None else None)
        self.register_to_config(
            fps=float(fps), default_guidance_scale=float(default_guidance_scale), skeleton=skeleton
        )

    # ------------------------------------------------------------------------------------------ checks
    def check_inputs(
        self, prompt, prompt_embeds, prompt_attention_mask, negative_prompt, negative_prompt_embeds,
        negative_prompt_attention_mask, num_inference_steps, guidance_scale, num_frames, duration_s, latents,
        generator, output_type, num_sequences_per_prompt, callback_on_step_end, callback_on_step_end_tensor_inputs,
    ) -> int:
        """Raise a `ValueError` naming the argument for anything `__call__` cannot honour; returns the prompt count."""
        if (prompt is None) == (prompt_embeds is None):
            raise ValueError("Give exactly one of `prompt` and `prompt_embeds`.")
        if prompt is not None:
            batch = len(self.check_prompt(prompt, self.tokenizer))
        else:
            batch = self._check_embeds(prompt_embeds, prompt_attention_mask, "prompt_embeds")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("Give at most one of `negative_prompt` and `negative_prompt_embeds`.")
        if negative_prompt is not None:
            self.check_prompt(negative_prompt, self.tokenizer, name="negative_prompt")
            per_prompt(negative_prompt, batch, "negative_prompt")  # one for all prompts, or one per prompt
        if negative_prompt_embeds is not None:
            if (
                self._check_embeds(negative_prompt_embeds, negative_prompt_attention_mask, "negative_prompt_embeds")
                != batch
            ):
                raise ValueError(f"`negative_prompt_embeds` must have one row per prompt ({batch}).")
        if (
            isinstance(num_inference_steps, bool)
            or not isinstance(num_inference_steps, int)
            or num_inference_steps < 1
        ):
            raise ValueError(f"`num_inference_steps` must be a positive int; got {num_inference_steps!r}.")
        if guidance_scale is not None:
            if (
                isinstance(guidance_scale, bool)
                or not isinstance(guidance_scale, (int, float))
                or not math.isfinite(guidance_scale)
            ):
                raise ValueError(f"`guidance_scale` must be a finite number; got {guidance_scale!r}.")
            if not 0 <= guidance_scale <= MAX_GUIDANCE_SCALE:
                raise ValueError(
                    f"`guidance_scale` must be in [0, {MAX_GUIDANCE_SCALE:g}] (1 = no guidance; larger scales "
                    f"extrapolate past anything the decoder maps to poses); got {guidance_scale}."
                )
        self.check_common_inputs(
            batch, num_frames, duration_s, generator, output_type, num_sequences_per_prompt, latents=latents
        )
        if latents is not None and (not torch.is_tensor(latents) or latents.ndim != 4):
            shape = tuple(latents.shape) if torch.is_tensor(latents) else type(latents).__name__
            raise ValueError(
                f"`latents` must be a 4-D tensor (batch, num_latent_frames, {self.vae.latent_num_joints}, "
                f"{self.vae.latent_channels}); got {shape}."
            )
        self.check_callback_inputs(callback_on_step_end, callback_on_step_end_tensor_inputs)
        sched_kind = getattr(self.scheduler.config, "prediction_type", None)
        if sched_kind is not None and sched_kind != self.denoiser.config.prediction_type:
            raise ValueError(
                f"The scheduler's prediction_type is {sched_kind!r} but the denoiser predicts "
                f"{self.denoiser.config.prediction_type!r}; build the scheduler with "
                "`from_config(pipe.scheduler.config)` or pass "
                f"prediction_type={self.denoiser.config.prediction_type!r}."
            )
        return batch

    @property
    def max_num_frames(self) -> int:
        """The denoiser's `max_frames`: the longest sequence its length predictor gives, and the longest
        `num_frames`/`duration_s` accepted (temporal attention grows with the square of the length)."""
        return int(self.denoiser.config.max_frames)

    @property
    def max_num_frames_reason(self) -> str:
        return "`denoiser.config.max_frames`"

    def _check_embeds(self, embeds, mask, name: str) -> int:
        text_dim = self.denoiser.config.text_dim
        if not torch.is_tensor(embeds) or embeds.ndim != 3 or embeds.shape[-1] != text_dim or embeds.shape[0] < 1:
            shape = tuple(embeds.shape) if torch.is_tensor(embeds) else type(embeds).__name__
            raise ValueError(f"`{name}` must be a tensor (batch, seq_len, {text_dim}) (text_dim); got {shape}.")
        mask_name = name.replace("embeds", "attention_mask")
        if mask is not None and (not torch.is_tensor(mask) or tuple(mask.shape) != tuple(embeds.shape[:2])):
            shape = tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__
            raise ValueError(f"`{mask_name}` must have shape {tuple(embeds.shape[:2])} (batch, seq_len); got {shape}.")
        if mask is not None and not mask.bool().any(1).all():
            raise ValueError(f"`{mask_name}` has a row with no valid token.")
        return int(embeds.shape[0])

    # ------------------------------------------------------------------------------------------ text
    def encode_prompt(
        self,
        prompt: Optional[Union[str, List[str]]] = None,
        device: Optional[torch.device] = None,
        num_sequences_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
        negative_prompt: Optional[Union[str, List[str]]] = None,
        prompt_embeds: Optional[torch.Tensor] = None,
        prompt_attention_mask: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_attention_mask: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        r"""Text-encoder states of the prompts and of what guidance pushes away from.

        Returns `(prompt_embeds, prompt_attention_mask, negative_prompt_embeds, negative_prompt_attention_mask)`,
        each repeated `num_sequences_per_prompt` times (prompt-major). Without `negative_prompt(_embeds)` the negative
        is the denoiser's learned null condition (what training dropped the text to); without guidance it is `None`.
        Both sides are padded to one sequence length so they stack into one batch.
        """
        device = device or self._execution_device
        dtype = self.denoiser.dtype
        if prompt_embeds is None:
            prompt_embeds, prompt_attention_mask = encode_prompts(
                self.text_encoder, self.tokenizer, prompt, device=device
            )
        elif prompt_attention_mask is None:
            prompt_attention_mask = torch.ones(prompt_embeds.shape[:2], dtype=torch.bool, device=device)
        prompt_embeds = prompt_embeds.to(device=device, dtype=dtype)
        prompt_attention_mask = prompt_attention_mask.to(device).bool()
        batch = prompt_embeds.shape[0]
        neg, neg_mask = None, None
        if do_classifier_free_guidance:
            if negative_prompt is not None:
                negatives = per_prompt(negative_prompt, batch, "negative_prompt")
                neg, neg_mask = encode_prompts(self.text_encoder, self.tokenizer, negatives, device=device)
            elif negative_prompt_embeds is not None:
                neg = negative_prompt_embeds
                neg_mask = negative_prompt_attention_mask
                if neg_mask is None:
                    neg_mask = torch.ones(neg.shape[:2], dtype=torch.bool, device=device)
            else:
                neg, neg_mask = self.denoiser.null_condition(batch, prompt_embeds.shape[1], device=device, dtype=dtype)
            neg, neg_mask = neg.to(device=device, dtype=dtype), neg_mask.to(device).bool()
            length = max(prompt_embeds.shape[1], neg.shape[1])
            prompt_embeds, prompt_attention_mask = _pad_tokens(prompt_embeds, prompt_attention_mask, length)
            neg, neg_mask = _pad_tokens(neg, neg_mask, length)
            neg = neg.repeat_interleave(num_sequences_per_prompt, 0)
            neg_mask = neg_mask.repeat_interleave(num_sequences_per_prompt, 0)
        prompt_embeds = prompt_embeds.repeat_interleave(num_sequences_per_prompt, 0)
        prompt_attention_mask = prompt_attention_mask.repeat_interleave(num_sequences_per_prompt, 0)
        return prompt_embeds, prompt_attention_mask, neg, neg_mask

    # ------------------------------------------------------------------------------------------ steps
    def _resolve_lengths(self, states, mask, requested, latents, token_durations=None) -> List[int]:
        """Full-rate frames per sequence: requested, from given latents, or predicted from the text (with
        `token_durations`, the predicted word durations of a duration-conditioned denoiser: their sum)."""
        if requested is not None:
            return list(requested)
        if latents is not None:
            return [latents.shape[1] * self.vae.temporal_downsample_factor] * latents.shape[0]
        if token_durations is None:
            return self.denoiser.predict_num_frames(states, mask).tolist()
        # the sum of the words' predicted durations, which the frames are then shared by; the length predictor only
        # where no word gets a frame
        total = token_durations.sum(1).round().clamp(max=self.denoiser.config.max_frames).long()
        if (total >= 1).all():
            return total.tolist()
        return torch.where(total >= 1, total, self.denoiser.predict_num_frames(states, mask)).tolist()

    def prepare_latents(self, lengths: List[int], latents, generator, device, dtype) -> torch.Tensor:
        """Initial noise (B, N'_max, J', C), scaled by the scheduler's `init_noise_sigma` (call after `set_timesteps`):
        each sequence drawn at its own latent length with its own generator, padding zeros."""
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

    # ------------------------------------------------------------------------------------------ call
    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: Optional[Union[str, List[str]]] = None,
        num_inference_steps: int = 50,
        guidance_scale: Optional[float] = None,
        negative_prompt: Optional[Union[str, List[str]]] = None,
        num_sequences_per_prompt: int = 1,
        num_frames: Optional[Union[int, List[int]]] = None,
        duration_s: Optional[Union[float, List[float]]] = None,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
        prompt_embeds: Optional[torch.Tensor] = None,
        prompt_attention_mask: Optional[torch.Tensor] = None,
        negative_prompt_embeds: Optional[torch.Tensor] = None,
        negative_prompt_attention_mask: Optional[torch.Tensor] = None,
        eta: float = 0.0,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Optional[Callable[..., Dict[str, Any]]] = None,
        callback_on_step_end_tensor_inputs: Optional[List[str]] = None,
    ) -> Union[SignPipelineOutput, tuple]:
        r"""Generate signing pose sequences for `prompt`.

        Args:
            prompt (`str` or `List[str]`, *optional*): sentence(s) to sign; non-empty, within the tokenizer's
                `model_max_length` tokens (longer prompts raise a `ValueError`; nothing is truncated). Either this or
                `prompt_embeds`.
            num_inference_steps (`int`, *optional*, defaults to 50): denoising steps (the paper's DDIM 50).
            guidance_scale (`float`, *optional*): classifier-free guidance weight `w` in
                `pred_uncond + w (pred_cond - pred_uncond)`; `<= 1` runs the conditional model only. Defaults to
                `config.default_guidance_scale`. Must be in [0, `MAX_GUIDANCE_SCALE`] (20).
            negative_prompt (`str` or `List[str]`, *optional*): what guidance pushes away from, instead of the
                learned null condition.
            num_sequences_per_prompt (`int`, *optional*, defaults to 1): sequences per prompt (outputs are
                prompt-major: prompt 0's sequences first).
            num_frames (`int` or `List[int]`, *optional*): frames to generate (one value, or one per prompt); default:
                the length predictor's estimate (with duration conditioning: the sum of the predicted word
                durations). The latent is rounded up to the VAE's temporal multiple and the output cropped back to
                exactly this many frames. At most `denoiser.config.max_frames`.
            duration_s (`float` or `List[float]`, *optional*): length in seconds instead (`round(duration_s * fps)`
                frames); not together with `num_frames`.
            generator (`torch.Generator` or `List[torch.Generator]`, *optional*): for the initial noise and stochastic
                schedulers; a list gives each sequence its own generator (then a sequence's output does not depend on
                the rest of the batch, stochastic schedulers included).
            latents (`torch.Tensor`, *optional*): initial noise `(batch, ceil(max_frames / factor), J', C)`; without
                `num_frames`/`duration_s` every sequence gets `num_latent_frames * factor` frames.
            prompt_embeds (`torch.Tensor`, *optional*): text-encoder states `(batch, seq_len, text_dim)` instead of
                `prompt`, with `prompt_attention_mask` (`(batch, seq_len)`, True on real tokens; default all True).
            negative_prompt_embeds (`torch.Tensor`, *optional*): the same for the negative side, with
                `negative_prompt_attention_mask`.
            eta (`float`, *optional*, defaults to 0.0): DDIM's eta (ignored by schedulers without it).
            output_type (`str`, *optional*, defaults to `"np"`): one of
                `hf_sign.pipelines.pipeline_utils.OUTPUT_TYPES`: `"np"`, `"pt"`, `"joints"`, `"pose"`, or `"latent"`
                (the denoised, still scaled latents).
            return_dict (`bool`, *optional*, defaults to `True`): return a `SignPipelineOutput`, else its fields as a
                tuple in order.
            callback_on_step_end (`Callable`, *optional*): called after every step as
                `callback_on_step_end(pipe, step, timestep, callback_kwargs)` with the tensors named in
                `callback_on_step_end_tensor_inputs` (`"latents"`, `"prompt_embeds"`, `"negative_prompt_embeds"`);
                tensors it returns replace them.

        Examples:

        Returns:
            [`SignPipelineOutput`] or `tuple`; with `prompt`, `info[i]` holds `unknown_words` (the words the
            tokenizer maps to its unknown token; a warning names them) and `unknown_word_fraction`.
        """
        # 1. check the inputs
        batch = self.check_inputs(
            prompt, prompt_embeds, prompt_attention_mask, negative_prompt, negative_prompt_embeds,
            negative_prompt_attention_mask, num_inference_steps, guidance_scale, num_frames, duration_s, latents,
            generator, output_type, num_sequences_per_prompt, callback_on_step_end, callback_on_step_end_tensor_inputs,
        )
        # words the tokenizer does not know: warned about, listed in `info`; a prompt with none known is refused
        info = None
        if prompt is not None:
            prompts = [prompt] if isinstance(prompt, str) else list(prompt)
            info = self.repeat_per_sequence(self.check_known_words(prompts, self.tokenizer), num_sequences_per_prompt)
        guidance_scale = self.config.default_guidance_scale if guidance_scale is None else float(guidance_scale)
        do_cfg = guidance_scale > 1.0
        device = self._execution_device
        dtype = self.denoiser.dtype
        total = batch * num_sequences_per_prompt

        # 2. encode the text (and the negative side: the learned null condition unless a negative prompt is given)
        states, text_mask, neg_states, neg_mask = self.encode_prompt(
            prompt, device, num_sequences_per_prompt, do_cfg, negative_prompt, prompt_embeds, prompt_attention_mask,
            negative_prompt_embeds, negative_prompt_attention_mask,
        )
        learned_null = negative_prompt is None and negative_prompt_embeds is None

        # 3. lengths: requested, or predicted (with duration conditioning, from when each word is signed)
        timing = None
        if self.denoiser.duration_conditioner is not None:
            timing = self.denoiser.predict_token_timing(states, text_mask)
        requested = self.requested_num_frames(batch, num_frames, duration_s)
        if requested is not None:
            requested = self.repeat_per_sequence(requested, num_sequences_per_prompt)
        lengths = self._resolve_lengths(
            states, text_mask, requested, latents, None if timing is None else timing.durations
        )
        factor = self.vae.temporal_downsample_factor
        latent_lengths = [-(-n // factor) for n in lengths]

        # 4. timesteps first, then the initial noise (scaled by this schedule's `init_noise_sigma`)
        timesteps = self.prepare_timesteps(num_inference_steps, device)
        z = self.prepare_latents(lengths, latents, generator, device, dtype)
        latent_mask = (
            torch.arange(z.shape[1], device=device)[None, :] < torch.tensor(latent_lengths, device=device)[:, None]
        )
        z = z * latent_mask[:, :, None, None].to(dtype)

        # 5. the guided batch: [negative; conditional]; the learned null condition carries no word timing, a negative
        # prompt its own
        def guided_condition(states, text_mask, neg_states, neg_mask):
            if not do_cfg:
                return states, text_mask, timing
            both = None
            if timing is not None:
                neg_timing = (
                    timing.empty_like() if learned_null else self.denoiser.predict_token_timing(neg_states, neg_mask)
                )
                both = TokenTiming.cat([neg_timing, timing])
            return torch.cat([neg_states, states]), torch.cat([neg_mask, text_mask]), both

        cond_states, cond_mask, cond_timing = guided_condition(states, text_mask, neg_states, neg_mask)
        frame_mask = torch.cat([latent_mask, latent_mask]) if do_cfg else latent_mask

        # 6. denoise
        step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        schedulers = self.per_sequence_schedulers(generator, total)
        scaler = schedulers[0] if schedulers else self.scheduler  # every copy is at the same step
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_in = torch.cat([z, z]) if do_cfg else z
            model_in = scaler.scale_model_input(model_in, t)
            pred = self.denoiser(
                model_in, t, encoder_hidden_states=cond_states, encoder_attention_mask=cond_mask,
                attention_mask=frame_mask, token_timing=cond_timing,
            ).sample
            if do_cfg:
                pred_uncond, pred_cond = pred.chunk(2)
                pred = pred_uncond + guidance_scale * (pred_cond - pred_uncond)
            z = self.scheduler_step(pred, t, z, latent_lengths, step_kwargs, schedulers, generator)
            if callback_on_step_end is not None:
                values = self.run_step_callback(
                    callback_on_step_end, i, t, callback_on_step_end_tensor_inputs,
                    {"latents": z, "prompt_embeds": states, "negative_prompt_embeds": neg_states},
                )
                z, states, neg_states = values["latents"], values["prompt_embeds"], values["negative_prompt_embeds"]
                cond_states, cond_mask, cond_timing = guided_condition(states, text_mask, neg_states, neg_mask)

        # 7. decode (undoing the latent scaling), back to dataset units, each sequence cropped to its length
        if output_type == "latent":
            self.maybe_free_model_hooks()
            return self.finish(
                self.postprocess(
                    [z[i, :n] for i, n in enumerate(latent_lengths)], "latent", info, num_frames=lengths
                ),
                return_dict,
            )
        features = self.vae.decode(self.vae.unscale_latents(z), attention_mask=latent_mask).sample
        features = self.normalizer.denormalize(features.float())
        self.maybe_free_model_hooks()
        return self.finish(
            self.postprocess([features[i, :n] for i, n in enumerate(lengths)], output_type, info), return_dict
        )


def _pad_tokens(states: torch.Tensor, mask: torch.Tensor, length: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pad (B, L, D) states and their (B, L) mask with masked zero tokens to `length`."""
    extra = length - states.shape[1]
    if extra <= 0:
        return states, mask
    return (
        torch.cat([states, states.new_zeros(states.shape[0], extra, states.shape[2])], 1),
        torch.cat([mask, mask.new_zeros(mask.shape[0], extra)], 1),
    )

"""`SignMExDPipeline`: glosses (or text, through an attached linker) -> 3D signing poses with Sign-MExD (Shen et al.),
inference only.

Steps of `__call__` (on the hf-sign pipeline base, `pipeline_utils.SignPipeline`):

1. check the inputs (clear `ValueError`s): `gloss=` or, with a text-to-gloss linker attached, `prompt=`;
2. with `prompt=`, the linker (Stable Signer's SLUL T5) turns each prompt into glosses;
3. tokenise the glosses with the gloss tokenizer (a word-level vocabulary of the training glosses): a gloss outside
   it becomes `[UNK]` and is listed in `info["unknown_glosses"]`; the CLIP gloss encoder encodes them (Sec. II-B);
4. choose every sequence's length: `num_frames` or `duration_s` if given, else the length model kept in the pipeline
   config (the paper has none): the sum of each gloss's mean duration in the training split plus the frames outside
   the glosses, `length_offset + transition_frames * (num_glosses - 1)`, capped at the transformer's `max_frames`.
   Each gloss's frame span in that layout (scaled to the chosen length) is `info["gloss_spans"]`;
5. set the scheduler's timesteps, then draw the initial noise per sequence at its own length (scaled by
   `init_noise_sigma`), so a sequence does not depend on the rest of the batch; padded frames are masked everywhere;
6. denoise: the transformer predicts `x_0` (`prediction_type="sample"`) and the scheduler (DDIM by default, any
   diffusers scheduler that takes `x_0` predictions: not PNDM, Euler ancestral, KDPM2 and KDPM2 ancestral, which
   diffusers refuses) steps; with `return_routing=True`, how often each expert chose each frame is counted over the
   steps (`info["routing"]`);
7. map back to the dataset's units with the `PoseNormalizer`, each sequence cropped to its length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import replace_example_docstring
from diffusers.utils.torch_utils import randn_tensor
from transformers import PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from ..data.normalization import PoseNormalizer
from ..models.sign_mexd import SignMExDTransformer
from ..models.stable_signer.linker import SignLinkerForConditionalGeneration
from .pipeline_utils import SignPipeline, SignPipelineOutput, check_gloss, per_prompt

__all__ = ["SignMExDPipeline", "SignMExDPipelineOutput", "tokenize_glosses", "gloss_layout"]

# the output class of every hf-sign pipeline, under this pipeline's name too
SignMExDPipelineOutput = SignPipelineOutput

NO_LINKER = (
    "Sign-MExD is conditioned on glosses: pass `gloss=` (e.g. gloss='WEATHER TOMORROW RAIN', a list of such strings, "
    "or lists of glosses). To sign text with `prompt=`, attach a text-to-gloss linker first: "
    "`pipe.attach_linker('outputs/stable-signer-small')` (a Stable Signer run's folder) or "
    "`SignMExDPipeline.from_pretrained(path, linker=linker, linker_tokenizer=tokenizer)`."
)

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from hf_sign.pipelines.pipeline_sign_mexd import SignMExDPipeline

        >>> pipe = SignMExDPipeline.from_pretrained("outputs/sign-mexd-small-moe")  # `hf-sign train sign-mexd ...`
        >>> out = pipe(gloss="TOMORROW WEATHER RAIN", generator=torch.Generator().manual_seed(0))
        >>> out.poses[0].shape, out.info[0]["unknown_glosses"]  # (num_frames, 133) smplx133 axis-angles
        ((71, 133), [])

        >>> out = pipe(gloss=["ME STORE GO", ["YOU", "COFFEE", "LIKE"]], return_routing=True, output_type="joints")
        >>> out.info[0]["routing"]["layers"][0]["tokens_per_expert"]  # frames each expert took, summed over steps

        >>> pipe.attach_linker("outputs/stable-signer-small")  # Stable Signer's text -> gloss linker
        >>> out = pipe(prompt="the weather tomorrow will be rainy")
        >>> out.info[0]["glosses"]
        ['TOMORROW', 'WEATHER', 'RAIN']
        ```
"""


def tokenize_glosses(
    tokenizer: PreTrainedTokenizerBase, glosses: Sequence[Sequence[str]], device: Optional[torch.device] = None
) -> Tuple[torch.Tensor, torch.Tensor, List[List[str]], List[List[Optional[int]]]]:
    """Gloss lists -> `(input_ids, attention_mask (bool), unknown glosses per sequence, word id of every token)`.

    Each gloss is one "word" of the tokenizer (`is_split_into_words`), so a gloss is never cut at spaces or merged
    with its neighbour. A gloss any of whose tokens is the unknown token, or a special token (a gloss spelled
    `"[PAD]"` is no sign), is encoded as the unknown token and reported. Raises a `ValueError` naming the sequence
    when it needs more tokens than the tokenizer's `model_max_length` (nothing is truncated).
    """
    enc = tokenizer([list(g) for g in glosses], is_split_into_words=True, padding="longest", return_tensors="pt")
    ids, mask = enc["input_ids"].clone(), enc["attention_mask"].bool()
    limit, unk, special = int(tokenizer.model_max_length), tokenizer.unk_token_id, set(tokenizer.all_special_ids)
    unknown, word_ids = [], []
    for i, seq in enumerate(glosses):
        tokens = int(mask[i].sum())
        if tokens > limit:
            raise ValueError(
                f"`gloss[{i}]` has {len(seq)} glosses ({tokens} tokens with the special tokens); the gloss encoder "
                f"takes at most {limit}. Sign shorter gloss sequences (nothing is truncated)."
            )
        words = enc.word_ids(i)
        bad = [k for k, (w, t) in enumerate(zip(words, ids[i].tolist())) if w is not None and t in special]
        ids[i, bad] = unk
        unknown.append([seq[w] for w in sorted({words[k] for k in bad})])
        word_ids.append(words)
    if device is not None:
        ids, mask = ids.to(device), mask.to(device)
    return ids, mask, unknown, word_ids


def gloss_layout(
    durations: Sequence[float], length_offset: float, transition_frames: float, num_frames: Optional[int] = None
) -> Tuple[int, List[List[int]]]:
    """`(num_frames, [[start, end), ...])`: the length model's timeline of one gloss sequence.

    The timeline is half of `length_offset` before the first gloss, each gloss for its duration, `transition_frames`
    between glosses and the other half after the last. Without `num_frames` its rounded length is the sequence's
    (at least 1); with `num_frames` it is stretched to that many. Every gloss gets at least one frame while there are
    frames enough.
    """
    lead = max(float(length_offset), 0.0) / 2.0
    total = 2 * lead + float(transition_frames) * (len(durations) - 1) + float(sum(durations))
    n = int(num_frames) if num_frames is not None else max(1, int(round(total)))
    scale = n / total if total > 0 else 0.0
    spans, t = [], lead
    for d in durations:
        a = min(int(round(t * scale)), n - 1)
        b = min(max(int(round((t + d) * scale)), a + 1), n)
        spans.append([a, b])
        t += d + transition_frames
    return n, spans


class SignMExDPipeline(SignPipeline):
    r"""Gloss-to-sign-pose generation with Sign-MExD's expert-choice MoE diffusion transformer.

    Args:
        transformer ([`SignMExDTransformer`]): predicts the clean poses `x_0` from `x_t`, `t` and the gloss states.
        text_encoder ([`~transformers.CLIPTextModel`]): the gloss encoder (`build_gloss_encoder`).
        tokenizer ([`~transformers.PreTrainedTokenizerBase`]): the gloss tokenizer (`build_gloss_tokenizer`), a
            word-level vocabulary of the training glosses with `[UNK]` for the rest.
        scheduler ([`~diffusers.SchedulerMixin`]): e.g. `DDIMScheduler` with the training schedule and
            `prediction_type="sample"`.
        normalizer ([`PoseNormalizer`]): feature statistics of the training corpus (outputs in dataset units).
        linker ([`SignLinkerForConditionalGeneration`], *optional*): a text-to-gloss linker (Stable Signer's) for
            `prompt=`; see `attach_linker`.
        linker_tokenizer ([`~transformers.PreTrainedTokenizerBase`], *optional*): the linker's tokenizer.
        fps (`float`, *optional*, defaults to 24.0): frame rate of the training corpus (for `duration_s`).
        skeleton (`str`, *optional*, defaults to the normalizer's representation): name of the output skeleton.
        gloss_durations (`Dict[str, float]`, *optional*): mean frames of each training gloss (the length model).
        default_gloss_duration (`float`, *optional*, defaults to 12.0): frames of a gloss without its own duration.
        length_offset (`float`, *optional*, defaults to 0.0): frames outside every gloss (lead-in and lead-out).
        transition_frames (`float`, *optional*, defaults to 0.0): frames between two consecutive glosses.
    """

    model_cpu_offload_seq = "linker->text_encoder->transformer"
    _hub_entry_file = "pipeline_sign_mexd"
    _settings = (
        "fps", "skeleton", "gloss_durations", "default_gloss_duration", "length_offset", "transition_frames",
    )
    _optional_components = ["linker", "linker_tokenizer"]
    _callback_tensor_inputs = ["latents"]
    _supports_latent_output = False  # the poses are diffused directly: there is no latent space

    def __init__(
        self,
        transformer: SignMExDTransformer,
        text_encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        scheduler: SchedulerMixin,
        normalizer: PoseNormalizer,
        linker: Optional[SignLinkerForConditionalGeneration] = None,
        linker_tokenizer: Optional[PreTrainedTokenizerBase] = None,
        fps: float = 24.0,
        skeleton: Optional[str] = None,
        gloss_durations: Optional[Dict[str, float]] = None,
        default_gloss_duration: float = 12.0,
        length_offset: float = 0.0,
        transition_frames: float = 0.0,
    ):
        super().__init__()
        self.register_modules(transformer=transformer, text_encoder=text_encoder, tokenizer=tokenizer)
        self.register_modules(scheduler=scheduler, normalizer=normalizer)
        self.register_modules(linker=linker, linker_tokenizer=linker_tokenizer)
        skeleton = skeleton or (normalizer.config.representation if normalizer is not None else None)
        self.register_to_config(
            fps=float(fps), skeleton=skeleton, gloss_durations=dict(gloss_durations or {}),
            default_gloss_duration=float(default_gloss_duration), length_offset=float(length_offset),
            transition_frames=float(transition_frames),
        )

    # ------------------------------------------------------------------------------------------ linker
    def attach_linker(
        self,
        linker: Union[str, Path, SignLinkerForConditionalGeneration],
        linker_tokenizer: Optional[PreTrainedTokenizerBase] = None,
    ) -> "SignMExDPipeline":
        """Attach a text-to-gloss linker so that `prompt=` works; returns the pipeline.

        Args:
            linker (`str`, `Path` or [`SignLinkerForConditionalGeneration`]): a Stable Signer run's folder (its
                `linker/` and `tokenizer/`, written by `hf-sign train stable-signer`), or the linker itself.
            linker_tokenizer (`PreTrainedTokenizerBase`, *optional*): the linker's tokenizer (needed with a model).
        """
        if isinstance(linker, (str, Path)):
            folder = Path(linker)
            if not (folder / "linker" / "config.json").is_file() or not (folder / "tokenizer").is_dir():
                raise ValueError(
                    f"{str(folder)!r} holds no text-to-gloss linker: expected a Stable Signer folder with `linker/` "
                    "and `tokenizer/` (the output of `hf-sign train stable-signer`)."
                )
            from transformers import AutoTokenizer

            linker_tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
            linker = SignLinkerForConditionalGeneration.from_pretrained(str(folder / "linker"))
        if not isinstance(linker, SignLinkerForConditionalGeneration) or linker_tokenizer is None:
            raise ValueError(
                "`attach_linker` takes a Stable Signer folder, or a `SignLinkerForConditionalGeneration` together "
                f"with its `linker_tokenizer`; got {type(linker).__name__} and {type(linker_tokenizer).__name__}."
            )
        linker = linker.to(device=self.device).eval()
        self.register_modules(linker=linker, linker_tokenizer=linker_tokenizer)
        return self

    def link(self, prompts: List[str], languages: List[str], num_beams: Optional[int] = None) -> List[List[str]]:
        """The linker's glosses for each prompt (greedy or beam search, the linker's `generation_config` unless
        `num_beams` is given)."""
        return self.linker.link(self.linker_tokenizer, prompts, languages, num_beams)

    # ------------------------------------------------------------------------------------------ checks
    def check_inputs(
        self, gloss, prompt, language, num_inference_steps, num_frames, duration_s, latents, generator, output_type,
        num_sequences_per_prompt, callback_on_step_end, callback_on_step_end_tensor_inputs,
    ) -> Tuple[Optional[List[List[str]]], Optional[List[str]], Optional[List[str]]]:
        """Raise a `ValueError` naming the argument for anything `__call__` cannot honour; returns the glosses (or the
        prompts and their language tags)."""
        if gloss is not None and prompt is not None:
            raise ValueError("Give either `gloss` or `prompt` (through the linker), not both.")
        if gloss is None and prompt is None:
            raise ValueError(NO_LINKER)
        glosses = prompts = languages = None
        if prompt is not None:
            if self.linker is None or self.linker_tokenizer is None:
                raise ValueError(f"`prompt` needs a text-to-gloss linker and this pipeline has none. {NO_LINKER}")
            prompts = self.check_prompt(prompt, self.linker_tokenizer)
            tags = language if isinstance(language, (list, tuple)) else [language] * len(prompts)
            tags = per_prompt(tags, len(prompts), "language")
            languages = [self.linker.check_language(t or self.linker.config.language_tags[0]) for t in tags]
        else:
            glosses = check_gloss(gloss)
        batch = len(glosses) if glosses is not None else len(prompts)
        steps = num_inference_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"`num_inference_steps` must be a positive int; got {num_inference_steps!r}.")
        self.check_common_inputs(
            batch, num_frames, duration_s, generator, output_type, num_sequences_per_prompt, latents=latents
        )
        limit = self.transformer.config.max_frames
        for i, n in enumerate(self.requested_num_frames(batch, num_frames, duration_s) or []):
            if n > limit:
                raise ValueError(
                    f"`num_frames` (or `duration_s`) asks for {n} frames for prompt {i}; the transformer's position "
                    f"table holds at most {limit} (`transformer.config.max_frames`)."
                )
        pose_dim = self.transformer.config.pose_dim
        bad_latents = not torch.is_tensor(latents) or latents.ndim != 3 or latents.shape[-1] != pose_dim
        if latents is not None and bad_latents:
            shape = tuple(latents.shape) if torch.is_tensor(latents) else type(latents).__name__
            raise ValueError(f"`latents` must be a tensor (batch, num_frames, {pose_dim}); got {shape}.")
        self.check_callback_inputs(callback_on_step_end, callback_on_step_end_tensor_inputs)
        kind = getattr(self.scheduler.config, "prediction_type", None)
        if kind is not None and kind != "sample":
            raise ValueError(
                f"The scheduler's prediction_type is {kind!r} but the transformer predicts the clean poses "
                "('sample'); build the scheduler with `from_config(pipe.scheduler.config)` or pass "
                "prediction_type='sample'."
            )
        return glosses, prompts, languages

    @property
    def max_num_frames(self) -> int:
        """The transformer's position table (`transformer.config.max_frames`): the longest sequence it generates."""
        return int(self.transformer.config.max_frames)

    @property
    def max_num_frames_reason(self) -> str:
        return "`transformer.config.max_frames`"

    # ------------------------------------------------------------------------------------------ glosses
    def encode_gloss(
        self, glosses: List[List[str]], device: Optional[torch.device] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, List[List[str]]]:
        """The gloss encoder's states `(batch, tokens, dim)`, their mask (True on real tokens) and the glosses of
        each sequence that the tokenizer maps to `[UNK]`."""
        device = device if device is not None else self._execution_device
        ids, mask, unknown, _ = tokenize_glosses(self.tokenizer, glosses, device)
        states = self.text_encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return states, mask, unknown

    def gloss_durations(self, glosses: Sequence[str]) -> List[float]:
        """Each gloss's duration in frames under the length model (`default_gloss_duration` for unseen glosses)."""
        table, default = self.config.gloss_durations or {}, self.config.default_gloss_duration
        return [float(table.get(g, default)) for g in glosses]

    def layout(self, glosses: Sequence[str], num_frames: Optional[int] = None) -> Tuple[int, List[List[int]]]:
        """`(num_frames, gloss_spans)` of one gloss sequence; a predicted length is capped at `max_frames`."""
        durations = self.gloss_durations(glosses)
        if num_frames is None:
            n, _ = gloss_layout(durations, self.config.length_offset, self.config.transition_frames)
            num_frames = min(n, self.transformer.config.max_frames)
        return gloss_layout(durations, self.config.length_offset, self.config.transition_frames, num_frames)

    # ------------------------------------------------------------------------------------------ steps
    def prepare_latents(self, lengths: List[int], latents, generator, device, dtype) -> torch.Tensor:
        """Initial noise `(batch, max(lengths), pose_dim)` scaled by `init_noise_sigma` (call after `set_timesteps`):
        each sequence drawn at its own length with its own generator, padding zeros."""
        expected = (len(lengths), max(lengths), self.transformer.config.pose_dim)
        if latents is not None:
            if tuple(latents.shape) != expected:
                raise ValueError(
                    f"`latents` has shape {tuple(latents.shape)}; expected {expected} (one row per sequence, "
                    "max(num_frames), pose_dim)."
                )
            out = latents.to(device=device, dtype=dtype).clone()
        else:
            out = torch.zeros(expected, device=device, dtype=dtype)
            for i, n in enumerate(lengths):
                g = generator[i] if isinstance(generator, list) else generator
                out[i, :n] = randn_tensor((1, n, expected[2]), generator=g, device=device, dtype=dtype)[0]
        keep = torch.arange(expected[1], device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]
        return out * keep[..., None].to(dtype) * self.scheduler.init_noise_sigma

    @staticmethod
    def _routing_counts(routing, counts: Optional[List[Dict[str, torch.Tensor]]]) -> List[Dict[str, torch.Tensor]]:
        """Add one step's dispatch (which experts took which frames) to the running counts."""
        if counts is None:
            counts = [{"frames": torch.zeros(r.dispatch.shape, dtype=torch.float32),
                       "tokens": torch.zeros(r.tokens_per_expert.shape, dtype=torch.float32)} for r in routing]
        for c, r in zip(counts, routing):
            c["frames"] += r.dispatch.detach().float().cpu()
            c["tokens"] += r.tokens_per_expert.detach().float().cpu()
            c["routing"] = r.routing
            per_sample = r.capacity_per_sample  # expert choice: each sequence's C; token choice: none
            c["capacity"] = [None] * len(c["tokens"]) if per_sample is None else per_sample.tolist()
        return counts

    # ------------------------------------------------------------------------------------------ call
    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        gloss: Optional[Union[str, List[str], List[List[str]]]] = None,
        prompt: Optional[Union[str, List[str]]] = None,
        language: Optional[Union[str, List[str]]] = None,
        num_inference_steps: int = 50,
        num_sequences_per_prompt: int = 1,
        num_frames: Optional[Union[int, List[int]]] = None,
        duration_s: Optional[Union[float, List[float]]] = None,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        latents: Optional[torch.Tensor] = None,
        eta: float = 0.0,
        num_beams: Optional[int] = None,
        return_routing: bool = False,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Optional[Callable[..., Dict[str, Any]]] = None,
        callback_on_step_end_tensor_inputs: Optional[List[str]] = None,
    ) -> Union[SignPipelineOutput, tuple]:
        r"""Generate signing pose sequences for `gloss` (or for `prompt`, through an attached linker).

        Args:
            gloss (`str`, `List[str]` or `List[List[str]]`, *optional*): the glosses to sign: one space-separated
                string, a list of them (one per sequence), or lists of glosses. Glosses outside the tokenizer's
                vocabulary are encoded as `[UNK]` and listed in `info["unknown_glosses"]`.
            prompt (`str` or `List[str]`, *optional*): text to sign instead, turned into glosses by the attached
                linker (`attach_linker`); without one a `ValueError` says how to attach it.
            language (`str` or `List[str]`, *optional*): the linker's language tag(s); default its first.
            num_inference_steps (`int`, *optional*, defaults to 50): denoising steps.
            num_sequences_per_prompt (`int`, *optional*, defaults to 1): sequences per input (input-major order).
            num_frames (`int` or `List[int]`, *optional*): frames to generate (one value, or one per input); default:
                the length model's (see the module docstring), at most `transformer.config.max_frames`.
            duration_s (`float` or `List[float]`, *optional*): length in seconds instead; not with `num_frames`.
            generator (`torch.Generator` or `List[torch.Generator]`, *optional*): for the initial noise and stochastic
                schedulers; a list gives each sequence its own.
            latents (`torch.Tensor`, *optional*): initial noise `(batch * num_sequences_per_prompt, frames, pose_dim)`;
                without `num_frames`/`duration_s` every sequence gets `frames` frames.
            eta (`float`, *optional*, defaults to 0.0): DDIM's eta (ignored by schedulers without it).
            num_beams (`int`, *optional*): the linker's beam size (with `prompt`).
            return_routing (`bool`, *optional*, defaults to `False`): count the experts' choices over the denoising
                steps into `info[i]["routing"]`: `num_steps` and, per MoE layer, `expert_frame_counts` (per frame,
                the steps in which each expert took it), `tokens_per_expert` (summed over steps), `routing` and
                `capacity` (expert choice's `C` of the sequence).
            output_type (`str`, *optional*, defaults to `"np"`): `"np"`, `"pt"`, `"joints"` or `"pose"`.
            return_dict (`bool`, *optional*, defaults to `True`): a `SignPipelineOutput`, else its fields as a tuple.
            callback_on_step_end (`Callable`, *optional*): `callback_on_step_end(pipe, step, timestep, {"latents": x})`
                after every step; a returned `latents` replaces the current noisy poses.
            callback_on_step_end_tensor_inputs (`List[str]`, *optional*): the tensors it gets (`["latents"]`).

        Examples:

        Returns:
            [`SignPipelineOutput`] or `tuple`; `info[i]` holds `glosses`, `unknown_glosses` (a warning names them; a
            sequence of unknown glosses only is refused) and `unknown_gloss_fraction`, `gloss_spans` (each gloss's
            frames in the length model's layout) and, with `prompt`, the `prompt`, its `unknown_words` and
            `unknown_word_fraction`.
        """
        # 1. check the inputs
        glosses, prompts, languages = self.check_inputs(
            gloss, prompt, language, num_inference_steps, num_frames, duration_s, latents, generator, output_type,
            num_sequences_per_prompt, callback_on_step_end, callback_on_step_end_tensor_inputs,
        )
        device, dtype = self._execution_device, self.transformer.dtype

        # 2. text -> glosses through the linker (words it does not know warned about; none known is refused)
        if prompts is not None:
            words = self.check_known_words(prompts, self.linker_tokenizer)
            glosses = self.link(prompts, languages, num_beams=num_beams)
            for i, g in enumerate(glosses):
                if not g:
                    raise ValueError(f"The linker produced no gloss for prompt {i} ({prompts[i]!r}); nothing to sign.")
        batch = len(glosses)

        # 3. the gloss encoder's states ([UNK] for glosses outside the vocabulary, reported)
        states, gloss_mask, unknown = self.encode_gloss(glosses, device)
        for b, (seq, bad) in enumerate(zip(glosses, unknown)):
            self.report_unknown(f"gloss[{b}]", bad, len(bad) / len(seq), len(seq) - len(bad), "gloss")
        states = states.to(dtype).repeat_interleave(num_sequences_per_prompt, 0)
        gloss_mask = gloss_mask.repeat_interleave(num_sequences_per_prompt, 0)

        # 4. lengths (requested, from given noise, or the length model) and each gloss's span
        requested = self.requested_num_frames(batch, num_frames, duration_s)
        if requested is None and latents is not None:
            requested = [int(latents.shape[1])] * batch
        layouts = [self.layout(g, None if requested is None else requested[i]) for i, g in enumerate(glosses)]
        layouts = self.repeat_per_sequence(layouts, num_sequences_per_prompt)
        lengths = [n for n, _ in layouts]

        # 5. timesteps first, then the initial noise (scaled by this schedule's `init_noise_sigma`)
        timesteps = self.prepare_timesteps(num_inference_steps, device)
        x = self.prepare_latents(lengths, latents, generator, device, dtype)
        frame_mask = torch.arange(x.shape[1], device=device)[None, :] < torch.tensor(lengths, device=device)[:, None]

        # 6. denoise: x_0 predictions stepped by the scheduler
        step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        schedulers = self.per_sequence_schedulers(generator, len(lengths))
        scaler = schedulers[0] if schedulers else self.scheduler  # every copy is at the same step
        counts = None
        for i, t in enumerate(self.progress_bar(timesteps)):
            model_in = scaler.scale_model_input(x, t)
            out = self.transformer(
                model_in, t.reshape(1).expand(x.shape[0]).to(device), encoder_hidden_states=states,
                encoder_attention_mask=gloss_mask, attention_mask=frame_mask, return_routing=return_routing,
            )
            if return_routing:
                counts = self._routing_counts(out.routing or [], counts)
            x = self.scheduler_step(out.sample, t, x, lengths, step_kwargs, schedulers, generator)
            if callback_on_step_end is not None:
                x = self.run_step_callback(
                    callback_on_step_end, i, t, callback_on_step_end_tensor_inputs, {"latents": x}
                )["latents"]

        # 7. dataset units, each sequence cropped; what was signed in `info`
        poses = self.normalizer.denormalize(x.float())
        self.maybe_free_model_hooks()
        info = []
        for k, (n, spans) in enumerate(layouts):
            b = k // num_sequences_per_prompt
            entry = {"glosses": list(glosses[b]), "unknown_glosses": list(unknown[b]), "gloss_spans": spans}
            entry["unknown_gloss_fraction"] = len(unknown[b]) / len(glosses[b])
            if prompts is not None:
                entry["prompt"] = prompts[b]
                entry.update(words[b])
            if return_routing:
                layers = [_layer_stats(c, k, n) for c in counts or []]
                entry["routing"] = {"num_steps": len(timesteps), "layers": layers}
            info.append(entry)
        return self.finish(self.postprocess([poses[k, :n] for k, n in enumerate(lengths)], output_type, info),
                           return_dict)


def _layer_stats(counts: Dict[str, Any], k: int, n: int) -> Dict[str, Any]:
    """One MoE layer's counts for sequence `k` of `n` frames, as plain lists."""
    return {
        "routing": counts["routing"],
        "expert_frame_counts": counts["frames"][k, :n].round().long().tolist(),
        "tokens_per_expert": counts["tokens"][k].round().long().tolist(),
        "capacity": counts["capacity"][k],
    }

"""`MaDiSPipeline`: text -> part-wise sign tokens -> 3D signing poses with MaDiS (masked diffusion LM), inference only.

Steps of `__call__` (on the hf-sign pipeline base, `pipeline_utils.SignPipeline`):

1. check the inputs (clear `ValueError`s naming the argument);
2. tokenise the text (`<eos>` appended, left-padded; a text longer than `lm.config.max_text_tokens` is refused, never
   truncated) and report how much of it the tokenizer did not know (`info["unknown_token_fraction"]`);
3. start from a fully masked sign canvas of `num_tokens` positions (`lm.config.max_sign_tokens` by default, the
   paper's 100) and run the `MaskedDiffusionScheduler` for `num_inference_steps` (default `ceil(num_tokens / 4)`,
   the paper's 25 steps for 100 tokens): each step the LM sees the text and the canvas, its three part heads predict
   every masked position, and the scheduler unmasks the most confident ones, through the temporal checkpoints. The
   first position never ends the sequence (at least one token is signed); what follows the first `<eos>` is
   discarded. With `num_frames` (or `duration_s`) the canvas holds `ceil(num_frames / 4)` tokens and `<eos>` is not
   sampled, so the sequence has that length. With the scheduler's `length_mode="first_step"` the first step's `<eos>`
   probabilities fix each row's length: `<eos>` is then certain after it and impossible before it.
   With the scheduler's `kv_cache="delayed"` (approximate, off by default) only the first step (and every
   `kv_cache_refresh`-th) runs over the whole sequence; the others recompute the masked positions and those unmasked
   at the previous step, against a `MaskedDiffusionCache` of the other positions' keys and values. `"stage"` runs a
   full pass at the start of each checkpoint stage and recomputes only the masked positions the stage may unmask.
   A causal LM (`lm.config.bidirectional = False`, the autoregressive baseline) decodes token by token with its KV
   cache instead, until `<eos>` or the canvas is full;
4. decode the part tokens with the frozen part-wise VQ-VAE (4 frames per token) and map them back to the dataset's
   units with the `PoseNormalizer`.

Every output carries `sign_tokens` (per sequence, part name -> code ids), and `tokenize_poses` gives the same for
reference poses, so the benchmark harness computes SiBLEU. `output_type="tokens"` stops after step 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from diffusers.utils import replace_example_docstring
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from ..data.normalization import PoseNormalizer
from ..models.madis import MaDiSForMaskedDiffusion, MaskedDiffusionCache, PartVQVAE, active_canvas_positions
from ..models.madis.part_vqvae import PART_NAMES
from ..models.madis.sequences import as_part_wise, encode_text, ids_to_codes
from ..schedulers import MaskedDiffusionScheduler
from .pipeline_utils import SignPipeline, SignPipelineOutput

__all__ = ["MaDiSPipeline", "MaDiSPipelineOutput"]

EXAMPLE_DOC_STRING = """
    Examples:
        ```py
        >>> import torch
        >>> from hf_sign.pipelines.pipeline_madis import MaDiSPipeline

        >>> pipe = MaDiSPipeline.from_pretrained("outputs/madis-small")  # `hf-sign train madis ...`
        >>> out = pipe("the weather tomorrow will be rainy", generator=torch.Generator().manual_seed(0))
        >>> out.poses[0].shape[0] == 4 * out.info[0]["num_tokens"]  # 4 frames per token, 133 smplx133 features
        True
        >>> sorted(out.sign_tokens[0])  # each part's VQ codes, for SiBLEU
        ['body', 'left_hand', 'right_hand']
        >>> pipe("good morning", num_inference_steps=10, output_type="tokens").poses[0].shape[1]  # (tokens, parts)
        3
        ```
"""


@dataclass
class MaDiSPipelineOutput(SignPipelineOutput):
    """[`SignPipelineOutput`] plus the generated part-wise tokens.

    Args:
        sign_tokens (`List[Dict[str, List[int]]]`, *optional*): per sequence, part name (`body`, `left_hand`,
            `right_hand`) -> its VQ code ids, up to the first `<eos>`.
    """

    sign_tokens: Optional[List[Dict[str, List[int]]]] = None


class MaDiSPipeline(SignPipeline):
    r"""Text -> signing poses with MaDiS (masked diffusion over part-wise VQ tokens, temporal-checkpoint sampler).

    Args:
        lm ([`MaDiSForMaskedDiffusion`]): the masked diffusion language model (or the causal baseline).
        part_vqvae ([`PartVQVAE`]): the frozen part-wise VQ-VAE whose codes the LM generates.
        text_tokenizer ([`PreTrainedTokenizerBase`]): the LM's text tokenizer.
        scheduler ([`MaskedDiffusionScheduler`]): the unmasking schedule (pivots, temperature).
        normalizer ([`PoseNormalizer`]): the train split's statistics (the VQ-VAE works on standardised poses).
        fps (`float`, *optional*, defaults to 24.0): frame rate of the training corpus.
        skeleton (`str`, *optional*): `SkeletonSpec` name; defaults to the normalizer's representation.
    """

    model_cpu_offload_seq = "lm->part_vqvae"
    _hub_entry_file = "pipeline_madis"
    _extra_output_types = ("tokens",)
    _supports_latent_output = False  # the tokens are the latent space: `output_type="tokens"`
    _callback_tensor_inputs = ["sample"]

    def __init__(
        self,
        lm: MaDiSForMaskedDiffusion,
        part_vqvae: PartVQVAE,
        text_tokenizer: PreTrainedTokenizerBase,
        scheduler: MaskedDiffusionScheduler,
        normalizer: PoseNormalizer,
        fps: float = 24.0,
        skeleton: Optional[str] = None,
    ):
        super().__init__()
        self.register_modules(lm=lm, part_vqvae=part_vqvae, text_tokenizer=text_tokenizer)
        self.register_modules(scheduler=scheduler, normalizer=normalizer)
        skeleton = skeleton or (normalizer.config.representation if normalizer is not None else None)
        self.register_to_config(fps=float(fps), skeleton=skeleton)

    @property
    def part_names(self) -> List[str]:
        n = self.lm.config.num_parts
        return list(PART_NAMES) if n == len(PART_NAMES) else [f"part{p}" for p in range(n)]

    # ------------------------------------------------------------------------------------------ checks
    def check_inputs(
        self,
        prompt,
        num_inference_steps,
        num_tokens,
        num_frames,
        duration_s,
        generator,
        output_type,
        num_sequences_per_prompt,
        callback_on_step_end,
        callback_on_step_end_tensor_inputs,
    ) -> List[str]:
        """Raise a `ValueError` naming the argument for anything `__call__` cannot honour; returns the prompts."""
        prompts = self.check_prompt(prompt)
        self.check_common_inputs(
            len(prompts), num_frames, duration_s, generator, output_type, num_sequences_per_prompt
        )
        limit = self.max_num_frames // self.part_vqvae.config.downsample_rate  # sign tokens
        if num_tokens is not None:
            if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or not 1 <= num_tokens <= limit:
                raise ValueError(f"`num_tokens` must be an int in [1, {limit}] (the sign canvas); got {num_tokens!r}.")
        rate = self.part_vqvae.config.downsample_rate
        for i, n in enumerate(self.requested_num_frames(len(prompts), num_frames, duration_s) or []):
            if math.ceil(n / rate) > limit:
                raise ValueError(
                    f"`num_frames` (or `duration_s`) asks for {n} frames for prompt {i}: {math.ceil(n / rate)} "
                    f"tokens, more than the {limit} sign positions the LM was trained on (`max_sign_tokens`)."
                )
        if num_inference_steps is not None and (
            isinstance(num_inference_steps, bool)
            or not isinstance(num_inference_steps, int)
            or num_inference_steps < 1
        ):
            raise ValueError(f"`num_inference_steps` must be a positive int; got {num_inference_steps!r}.")
        self.check_callback_inputs(callback_on_step_end, callback_on_step_end_tensor_inputs)
        if not isinstance(self.scheduler, MaskedDiffusionScheduler):
            raise ValueError(
                "`scheduler` must be a MaskedDiffusionScheduler (token unmasking); got "
                f"{type(self.scheduler).__name__}."
            )
        if self.scheduler.config.mask_token_id != self.lm.config.mask_token_id:
            raise ValueError(
                f"The scheduler's `mask_token_id` ({self.scheduler.config.mask_token_id}) is not the LM's "
                f"({self.lm.config.mask_token_id}); build it with `MaskedDiffusionScheduler.from_config(...)` of this "
                "pipeline's scheduler."
            )
        return prompts

    @property
    def max_num_frames(self) -> int:
        """The sign canvas the LM was trained on (`lm.config.max_sign_tokens`, within its position table) in frames:
        the bound of `num_frames`/`duration_s` (and of `num_tokens`, in tokens). Longer canvases would reach positions
        no training sequence had, and cost a full forward over the canvas per step."""
        cfg = self.lm.config
        tokens = min(cfg.max_sign_tokens, cfg.max_position_embeddings - cfg.max_text_tokens)
        return tokens * int(self.part_vqvae.config.downsample_rate)

    @property
    def max_num_frames_reason(self) -> str:
        return "the LM's trained sign canvas, `lm.config.max_sign_tokens` tokens of `downsample_rate` frames"

    # ------------------------------------------------------------------------------------------ text
    def unknown_token_fraction(self, text: str) -> float:
        """Share of the text's tokens that the tokenizer maps to its unknown token (0 for byte-level BPE)."""
        ids = self.text_tokenizer(text, add_special_tokens=False)["input_ids"]
        unk = self.text_tokenizer.unk_token_id
        return float(sum(i == unk for i in ids) / max(len(ids), 1)) if unk is not None else 0.0

    # ------------------------------------------------------------------------------------------ sampling
    def _masked_diffusion(self, text_ids, text_mask, canvas, steps, allow_eos, generator, callback, cb_inputs):
        """Fill the masked canvas `(B, M, P)` with the scheduler (step 3 of the module docstring)."""
        cfg = self.lm.config
        self.scheduler.set_timesteps(steps, sequence_length=canvas.shape[1], device=canvas.device)
        mode, refresh = self.scheduler.config.kv_cache, self.scheduler.config.kv_cache_refresh
        sample, cache, seen, stage, lengths = canvas, None, None, None, None
        positions = torch.arange(canvas.shape[1], device=canvas.device)
        for i, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            unmaskable = self.scheduler.unmaskable_positions(t) if mode == "stage" else None
            new_stage = unmaskable is not None and stage is not None and not torch.equal(unmaskable, stage)
            stage = unmaskable
            if mode == "none":
                logits = self._canvas_logits(text_ids, text_mask, sample)
            elif cache is None or (refresh and i % refresh == 0) or new_stage:  # a full pass fills a fresh store
                cache = MaskedDiffusionCache(cfg.num_hidden_layers)
                logits = self._canvas_logits(text_ids, text_mask, sample, cache)
            else:
                logits = self._partial_canvas_logits(text_ids, text_mask, sample, seen, cache, unmaskable)
            seen = sample.clone()  # the canvas the store now holds (a callback may edit `sample` in place)
            logits[:, 0, :, cfg.eos_token_id] = -float("inf")  # at least one token is signed
            if not allow_eos:
                logits[..., cfg.eos_token_id] = -float("inf")
            elif self.scheduler.config.length_mode == "first_step":
                # each row's length is read once, on the fully masked canvas; from then on <eos> is certain after it
                # and impossible before it, so the unmasking order (and the checkpoints) run as usual
                lengths = self.scheduler.sequence_lengths(logits) if lengths is None else lengths
                ended = (positions >= lengths.unsqueeze(1)).unsqueeze(-1)  # (B, M, 1)
                logits.masked_fill_(ended.unsqueeze(-1), -float("inf"))
                logits[..., cfg.eos_token_id] = torch.where(ended, 0.0, -float("inf"))
            if isinstance(generator, list):
                sample = torch.cat(
                    [
                        self.scheduler.step(logits[b : b + 1], t, sample[b : b + 1], generator=g).prev_sample
                        for b, g in enumerate(generator)
                    ]
                )
            else:
                sample = self.scheduler.step(logits, t, sample, generator=generator).prev_sample
            sample = self.run_step_callback(callback, i, t, cb_inputs, {"sample": sample})["sample"]
        return sample

    def _masked_canvas(self, batch: int, num_tokens: int, device) -> torch.LongTensor:
        cfg = self.lm.config
        return torch.full((batch, num_tokens, cfg.num_parts), cfg.mask_token_id, dtype=torch.long, device=device)

    def _canvas_logits(self, text_ids, text_mask, sample, cache=None) -> torch.Tensor:
        """The part heads' logits `(B, M, P, V)` on the canvas `sample` `(B, M, P)` read after the text (filling
        `cache`, a fresh `MaskedDiffusionCache`, when given)."""
        ones = torch.ones(sample.shape[:2], dtype=text_mask.dtype, device=sample.device)
        inputs = torch.cat([as_part_wise(text_ids, self.lm.config), sample], dim=1)
        mask = torch.cat([text_mask, ones], 1)
        return self.lm(inputs, attention_mask=mask, logits_to_keep=sample.shape[1], cache=cache).logits

    def _partial_canvas_logits(self, text_ids, text_mask, sample, seen, cache, unmaskable=None) -> torch.Tensor:
        """`_canvas_logits` from a partial pass over the masked positions (those in `unmaskable` when given) and those
        changed since `seen` (the canvas `cache` holds); the others' logits are zeros, which the scheduler never reads
        (it only unmasks where it may)."""
        cfg = self.lm.config
        batch, length, parts = sample.shape
        logits = torch.zeros(batch, length, parts, cfg.vocab_size, device=sample.device)
        order = active_canvas_positions(sample, seen, cfg.mask_token_id, unmaskable)  # (B, q) canvas indices
        if order.shape[1] == 0:
            return logits
        mask = torch.cat([text_mask, torch.ones(batch, length, dtype=text_mask.dtype, device=sample.device)], 1)
        positions = order + text_ids.shape[1]  # indices into [text, canvas]
        cache.set_positions(positions)
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0).gather(1, positions)  # their RoPE positions
        inputs = sample.gather(1, order.unsqueeze(-1).expand(-1, -1, parts))
        out = self.lm(inputs, attention_mask=mask, position_ids=position_ids, cache=cache).logits
        return logits.scatter_(1, order[..., None, None].expand_as(out), out)

    def _autoregressive(self, text_ids, text_mask, length, allow_eos, generator):
        """Causal baseline: one position (three part tokens) per step with the KV cache, until `<eos>` everywhere."""
        cfg = self.lm.config
        temperature = float(self.scheduler.config.temperature)
        batch = text_ids.shape[0]
        out = torch.full((batch, length, cfg.num_parts), cfg.eos_token_id, dtype=torch.long, device=text_ids.device)
        done = torch.zeros(batch, dtype=torch.bool, device=text_ids.device)
        inputs, mask, cache = as_part_wise(text_ids, cfg), text_mask, None
        positions = (text_mask.long().cumsum(-1) - 1).clamp(min=0)
        for i in self.progress_bar(range(length)):
            res = self.lm(
                inputs, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1
            )
            cache = res.cache
            logits = res.logits[:, -1].float()  # (B, P, V)
            if i == 0 or not allow_eos:
                logits[..., cfg.eos_token_id] = -float("inf")
            logits[..., cfg.mask_token_id] = -float("inf")
            if temperature > 0:
                gens = generator if isinstance(generator, list) else [generator] * batch
                probs = torch.softmax(logits / temperature, dim=-1)
                token = torch.stack(
                    [torch.multinomial(probs[b], 1, generator=gens[b]).squeeze(-1) for b in range(batch)]
                )
            else:
                token = logits.argmax(dim=-1)
            ends = (token == cfg.eos_token_id).any(dim=-1) | done
            token = torch.where(ends.unsqueeze(-1), torch.full_like(token, cfg.eos_token_id), token)
            out[:, i] = token
            done = ends
            if bool(done.all()):
                break
            inputs = token.unsqueeze(1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            positions = positions[:, -1:] + 1
        return out

    # ------------------------------------------------------------------------------------------ poses
    @torch.no_grad()
    def tokenize_poses(self, poses: Sequence[Union[np.ndarray, torch.Tensor]]) -> List[Dict[str, List[int]]]:
        """Reference poses (dataset units, `(T, feature_dim)` each) -> their VQ codes, in `sign_tokens`' form."""
        out = []
        for i, p in enumerate(poses):
            x = torch.as_tensor(np.asarray(p), dtype=torch.float32)
            if x.ndim != 2 or x.shape[-1] != self.part_vqvae.feature_dim or x.shape[0] == 0:
                raise ValueError(
                    f"`poses[{i}]` must have shape (num_frames, {self.part_vqvae.feature_dim}); got {tuple(x.shape)}."
                )
            x = self.normalizer.normalize(x.to(self.device)).to(self.part_vqvae.dtype)
            codes = self.part_vqvae.encode(x.unsqueeze(0))
            out.append({name: c[0].tolist() for name, c in zip(self.part_names, codes)})
        return out

    # ------------------------------------------------------------------------------------------ call
    @torch.no_grad()
    @replace_example_docstring(EXAMPLE_DOC_STRING)
    def __call__(
        self,
        prompt: Union[str, List[str]] = None,
        num_inference_steps: Optional[int] = None,
        num_tokens: Optional[int] = None,
        num_sequences_per_prompt: int = 1,
        num_frames: Optional[Union[int, List[int]]] = None,
        duration_s: Optional[Union[float, List[float]]] = None,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback_on_step_end: Optional[Callable[..., Dict[str, Any]]] = None,
        callback_on_step_end_tensor_inputs: Optional[List[str]] = None,
    ) -> Union[MaDiSPipelineOutput, tuple]:
        r"""Generate signing pose sequences for `prompt`.

        Args:
            prompt (`str` or `List[str]`): the text(s) to sign; at most `lm.config.max_text_tokens` tokens each.
            num_inference_steps (`int`, *optional*): unmasking steps, at most the canvas length; default
                `ceil(num_tokens / 4)` (25 for the paper's 100 tokens), at least one per checkpoint stage. The causal
                baseline ignores it (one step per token).
            num_tokens (`int`, *optional*): sign canvas length `M`; default `lm.config.max_sign_tokens`.
            num_sequences_per_prompt (`int`, *optional*, defaults to 1): sequences per prompt (prompt-major order).
            num_frames (`int` or `List[int]`, *optional*): fix the length instead (one value, or one per prompt): the
                canvas holds `ceil(num_frames / 4)` tokens, `<eos>` is not sampled, the poses are cropped to it.
            duration_s (`float` or `List[float]`, *optional*): the length in seconds instead; not with `num_frames`.
            generator (`torch.Generator` or `List[torch.Generator]`, *optional*): the sampler's randomness (with a
                scheduler `temperature` > 0); a list gives each sequence its own.
            output_type (`str`, *optional*, defaults to `"np"`): `"np"`, `"pt"`, `"joints"`, `"pose"`, or
                `"tokens"` (no decoding: `poses[i]` is the `(tokens, num_parts)` code array).
            return_dict (`bool`, *optional*, defaults to `True`): a [`MaDiSPipelineOutput`], else its fields.
            callback_on_step_end (`Callable`, *optional*): `callback_on_step_end(pipe, step, timestep, {"sample":
                ids})` after every unmasking step; a returned `sample` replaces the canvas.
            callback_on_step_end_tensor_inputs (`List[str]`, *optional*): the tensors it gets (`["sample"]`).

        Examples:

        Returns:
            [`MaDiSPipelineOutput`] or `tuple`; `info[i]` holds `num_tokens` (generated, before decoding),
            `unknown_token_fraction`, and `unknown_words` with `unknown_word_fraction`: the words holding a character
            outside the tokenizer's training alphabet (`pipelines.text_checks`; a warning names them, a prompt with
            no known word is refused).
        """
        # 1. check the inputs
        prompts = self.check_inputs(
            prompt,
            num_inference_steps,
            num_tokens,
            num_frames,
            duration_s,
            generator,
            output_type,
            num_sequences_per_prompt,
            callback_on_step_end,
            callback_on_step_end_tensor_inputs,
        )
        # words outside the tokenizer's training alphabet (byte-level BPE has no <unk>): warned about, listed in
        # `info`; a prompt with none known is refused
        words = self.check_known_words(prompts, self.text_tokenizer)
        device, cfg = self._execution_device, self.lm.config
        rate = self.part_vqvae.config.downsample_rate
        total = len(prompts) * num_sequences_per_prompt

        # 2. text -> ids (refused when too long), one row per generated sequence
        text_ids, text_mask = encode_text(self.text_tokenizer, prompts, cfg, device)
        text_ids = text_ids.repeat_interleave(num_sequences_per_prompt, 0)
        text_mask = text_mask.repeat_interleave(num_sequences_per_prompt, 0)

        # 3. the canvas: fixed by num_frames / duration_s (no <eos>), else M positions ended by <eos>; rows are
        #    sampled in groups of one canvas length, so a row never depends on the lengths of the others
        requested = self.requested_num_frames(len(prompts), num_frames, duration_s)
        if requested is not None:
            requested = self.repeat_per_sequence(requested, num_sequences_per_prompt)
            lengths = [math.ceil(n / rate) for n in requested]
        else:
            lengths = [num_tokens or cfg.max_sign_tokens] * total
        ids: List[Optional[torch.Tensor]] = [None] * total
        for length in sorted(set(lengths)):
            rows = [i for i, n in enumerate(lengths) if n == length]
            steps = num_inference_steps
            if steps is None:  # k = 4 tokens per step, but every checkpoint stage gets a step
                stages = len(self.scheduler.config.pivot_timesteps) + 1
                steps = min(length, max(math.ceil(length / 4), stages))
            if cfg.bidirectional and steps > length:
                raise ValueError(
                    f"`num_inference_steps` ({steps}) must not exceed the sign canvas ({length} tokens): each step "
                    "unmasks at least one token."
                )
            gen = [generator[i] for i in rows] if isinstance(generator, list) else generator
            if cfg.bidirectional:
                group = self._masked_diffusion(
                    text_ids[rows],
                    text_mask[rows],
                    self._masked_canvas(len(rows), length, device),
                    steps,
                    requested is None,
                    gen,
                    callback_on_step_end,
                    callback_on_step_end_tensor_inputs,
                )
            else:
                group = self._autoregressive(text_ids[rows], text_mask[rows], length, requested is None, gen)
            for i, row in zip(rows, group):
                ids[i] = row

        # 4. tokens (cut at <eos>, or at the requested length) -> VQ decode -> dataset units
        codes = [ids_to_codes(row.unsqueeze(0), cfg)[0] for row in ids]
        if requested is not None:
            codes = [[c[: math.ceil(n / rate)] for c in seq] for seq, n in zip(codes, requested)]
        sign_tokens = [{name: c.tolist() for name, c in zip(self.part_names, seq)} for seq in codes]
        info = [
            {"num_tokens": int(seq[0].shape[0]), "unknown_token_fraction": self.unknown_token_fraction(p), **w}
            for seq, p, w in zip(
                codes,
                self.repeat_per_sequence(prompts, num_sequences_per_prompt),
                self.repeat_per_sequence(words, num_sequences_per_prompt),
            )
        ]
        if output_type == "tokens":
            arrays = [torch.stack(seq, dim=-1).cpu().numpy() for seq in codes]
            out = MaDiSPipelineOutput(
                poses=arrays,
                num_frames=[a.shape[0] * rate for a in arrays],
                fps=self.fps,
                info=info,
                sign_tokens=sign_tokens,
            )
            return self.finish(out, return_dict)
        sequences = []
        for i, seq in enumerate(codes):
            poses = self.part_vqvae.decode([c.unsqueeze(0) for c in seq])[0]
            poses = self.normalizer.denormalize(poses.float())
            sequences.append(poses[: requested[i]] if requested is not None else poses)
        self.maybe_free_model_hooks()
        out = self.postprocess(sequences, output_type, info)
        out = MaDiSPipelineOutput(**{k: getattr(out, k) for k in out.__dataclass_fields__}, sign_tokens=sign_tokens)
        return self.finish(out, return_dict)

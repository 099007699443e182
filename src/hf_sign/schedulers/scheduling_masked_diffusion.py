"""Masked-diffusion sampler with temporal checkpoints (MaDiS, "unmasking with temporal checkpoints", UTC).

A masked diffusion language model starts from a fully masked sequence of `M` tokens (noise level `t = 1`) and, at
every reverse step, replaces the `k` masked tokens it is most confident about with its predictions, until nothing is
masked (`t = 0`). Unconstrained, this allows `M! / (k!)^(M/k)` unmasking orders (eq. 4 of the paper). UTC splits the
reverse process into stages at the checkpoints `t = 0.75` and `t = 0.5`: the state reached at `t = 0.75` holds
exactly `M/4` unmasked tokens spread uniformly over the sequence (temporal resolution `T/4`), the state at `t = 0.5`
exactly `M/2` uniformly spread tokens (`T/2`, a superset of the first), and confidence-based unmasking runs freely
within each stage, which gives the smaller count of eq. 5.
"""

import math
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput

PIVOT_MODES = ("uniform", "contiguous", "none")
LENGTH_MODES = ("eos", "first_step")
KV_CACHE_MODES = ("none", "delayed", "stage")


def log10_unmasking_orders(num_tokens: int, tokens_per_step: int, pivots=None) -> float:
    """
    log10 of the number of unmasking orders of a confidence-based sampler (eqs. 4 and 5 of the MaDiS paper).

    Without checkpoints (`pivots=None` or empty) this is eq. 4, `M! / (k!)^(M/k)`. With checkpoints at noise levels
    `t_1 > t_2 > ...` the reverse process is split into stages of `M (1 - t_1)`, `M (t_1 - t_2)`, ..., `M t_n` tokens
    whose orders multiply: `prod_s s! / (k!)^(s/k)` (eq. 5 for `pivots=(0.75, 0.5)`). The formula is evaluated as
    written, with `lgamma`, so stage sizes that are not multiples of `k` give fractional exponents as in the paper
    (`M = 100, k = 4` gives about `2.9e123` orders for eq. 4 and a reduction above `1e41` with checkpoints).

    Args:
        num_tokens (`int`): the number of generated tokens `M`.
        tokens_per_step (`int`): the tokens unmasked per step `k`.
        pivots (`tuple[float]`, *optional*, defaults to `None`): the checkpoint noise levels, strictly decreasing in
            `(0, 1)`.

    Returns:
        `float`: log10 of the number of orders.
    """
    if num_tokens <= 0:
        raise ValueError(f"`num_tokens` must be a positive int, got {num_tokens}.")
    if tokens_per_step <= 0 or tokens_per_step > num_tokens:
        raise ValueError(f"`tokens_per_step` must be in [1, num_tokens={num_tokens}], got {tokens_per_step}.")
    levels = [1.0, *_validate_pivots(pivots or (), "pivots"), 0.0]
    log10_k_factorial = math.lgamma(tokens_per_step + 1) / math.log(10)
    total = 0.0
    for start, end in zip(levels[:-1], levels[1:]):
        stage = num_tokens * (start - end)
        total += math.lgamma(stage + 1) / math.log(10) - stage / tokens_per_step * log10_k_factorial
    return total


def _validate_pivots(pivots, name: str) -> tuple:
    pivots = tuple(float(t) for t in pivots)
    if any(not 0.0 < t < 1.0 for t in pivots) or any(a <= b for a, b in zip(pivots[:-1], pivots[1:])):
        raise ValueError(f"`{name}` must be strictly decreasing noise levels in (0, 1), got {pivots}.")
    return pivots


@dataclass
class MaskedDiffusionSchedulerOutput(BaseOutput):
    """
    Output of [`MaskedDiffusionScheduler.step`].

    Args:
        prev_sample (`torch.LongTensor` of shape `(batch_size, sequence_length)` or `(batch_size, sequence_length,
            num_parts)`): the token ids after this step, the next model input.
        pred_original_sample (`torch.LongTensor`, same shape): the model's prediction for every position (the
            tokens already unmasked are kept).
    """

    prev_sample: torch.LongTensor
    pred_original_sample: torch.LongTensor | None = None


class MaskedDiffusionScheduler(SchedulerMixin, ConfigMixin):
    """
    Confidence-based masked-diffusion sampler with MaDiS temporal checkpoints.

    The sample holds the `M` generated positions only (the caller slices its text prefix off). A sample of shape
    `(B, M, P)` holds part-wise tokens (one per body part) that are unmasked together: a position is masked when all
    its parts are, and its confidence is the product of its parts' probabilities.

    Schedule. The reverse steps are split between the stages in proportion to their span in `t` (largest
    remainders), and the tokens of a stage as evenly as possible between its steps, so the state after the last step
    of a stage holds exactly `round(M (1 - t_c))` unmasked tokens. All pivot modes use the same schedule, so
    ablations compare orders at an equal budget; after the last step nothing is masked. With fewer steps than
    stages the earliest checkpoints are skipped (`skipped_checkpoints`): two steps reach the `t = 0.5` state first, one
    step unmasks everything at once.

    Pivots. In `"uniform"` mode the positions that may be unmasked before checkpoint `c` are the `n_c =
    round(M (1 - t_c))` positions `floor(j M / n_c)`, nested so that each checkpoint's set contains the previous one
    (for `M` divisible by 4: every 4th and every 2nd position; otherwise the grid points farthest from the previous
    set are added first). Within a stage the `k` most confident of the allowed
    masked positions are unmasked. `"contiguous"` uses the first `n_c` positions instead (the paper's ablation
    baseline), `"none"` allows every position at every step (vanilla MDLM).

    End of sequence. With `eos_token_id` set, the last step writes `eos_token_id` at every position after the first
    eos of a row, so what follows the end of the sign sequence is discarded; earlier steps leave it untouched so the
    schedule stays exact.

    Length. In `length_mode="eos"` (the paper's) the length is wherever the sampled `<eos>` lands. Confidence-based
    unmasking favours `<eos>` (one sure token against a spread over the codes), so the end creeps inwards as the
    canvas fills. `"first_step"` reads the length once from the fully masked canvas instead
    ([`~MaskedDiffusionScheduler.sequence_lengths`]) and the caller then samples that many tokens with `<eos>`
    excluded.

    Args:
        mask_token_id (`int`): id of the mask token (required).
        num_train_timesteps (`int`, *optional*, defaults to 1000): number of discrete noise levels of training; kept
            for the diffusers interface, training draws `t` continuously in [`add_noise`].
        pivot_timesteps (`tuple[float]`, *optional*, defaults to `(0.75, 0.5)`): checkpoint noise levels, strictly
            decreasing in (0, 1).
        pivot_mode (`str`, *optional*, defaults to `"uniform"`): `"uniform"`, `"contiguous"` or `"none"`.
        eos_token_id (`int`, *optional*, defaults to `None`): end-of-sequence id; `None` disables truncation.
        temperature (`float`, *optional*, defaults to `1.0`): sampling temperature of the token predictions; `0`
            takes the argmax (confidence is then the maximum probability, as in the paper).
        length_mode (`str`, *optional*, defaults to `"eos"`): `"eos"` (the paper's: the sequence ends at the first
            sampled `eos_token_id`) or `"first_step"` (the length is read from the model's `<eos>` probabilities on
            the fully masked canvas, see [`~MaskedDiffusionScheduler.sequence_lengths`]).
        kv_cache (`str`, *optional*, defaults to `"none"`): how the caller runs the model between steps: `"none"`
            (the paper's exact sampler: every step over the whole sequence), `"delayed"` (approximate, dKV-Cache
            style: after a full pass only the masked positions and those unmasked at the previous step are
            recomputed, against the stored keys and values of the others; see `MaskedDiffusionCache`) or `"stage"`
            (Fast-dLLM style, the checkpoint stages as blocks: a full pass at the start of each stage, then only the
            masked positions the stage may unmask, see [`unmaskable_positions`], and those just unmasked).
        kv_cache_refresh (`int`, *optional*, defaults to 0): with a cache, also a full pass every `kv_cache_refresh`
            steps (1: every step, the exact sampler; 0: no more). Ignored with `kv_cache="none"`.
    """

    order = 1

    @register_to_config
    def __init__(
        self,
        mask_token_id: int | None = None,
        num_train_timesteps: int = 1000,
        pivot_timesteps: tuple = (0.75, 0.5),
        pivot_mode: str = "uniform",
        eos_token_id: int | None = None,
        temperature: float = 1.0,
        length_mode: str = "eos",
        kv_cache: str = "none",
        kv_cache_refresh: int = 0,
    ):
        if mask_token_id is None or int(mask_token_id) < 0:
            raise ValueError(f"`mask_token_id` must be set to a non-negative token id, got {mask_token_id}.")
        if pivot_mode not in PIVOT_MODES:
            raise ValueError(f"`pivot_mode` must be one of {PIVOT_MODES}, got {pivot_mode!r}.")
        _validate_pivots(pivot_timesteps, "pivot_timesteps")
        if temperature < 0:
            raise ValueError(f"`temperature` must be >= 0, got {temperature}.")
        if length_mode not in LENGTH_MODES:
            raise ValueError(f"`length_mode` must be one of {LENGTH_MODES}, got {length_mode!r}.")
        if length_mode == "first_step" and eos_token_id is None:
            raise ValueError("`length_mode='first_step'` reads the `<eos>` probabilities: set `eos_token_id`.")
        if kv_cache not in KV_CACHE_MODES:
            raise ValueError(f"`kv_cache` must be one of {KV_CACHE_MODES}, got {kv_cache!r}.")
        if isinstance(kv_cache_refresh, bool) or not isinstance(kv_cache_refresh, int) or kv_cache_refresh < 0:
            raise ValueError(f"`kv_cache_refresh` must be an int >= 0 (0: never refresh), got {kv_cache_refresh!r}.")
        self.num_inference_steps = None
        self.sequence_length = None
        self.timesteps = None

    def sequence_lengths(self, model_output: torch.Tensor) -> torch.LongTensor:
        """
        The lengths that `length_mode="first_step"` samples: per row, the first position whose `<eos>` probability,
        averaged over the parts, exceeds one half (at least 1; the whole canvas if none does).

        Args:
            model_output (`torch.Tensor` of shape `(B, M, V)` or `(B, M, P, V)`): the logits on the fully masked
                canvas (`-inf` allowed).

        Returns:
            `torch.LongTensor` of shape `(B,)`.
        """
        if self.config.eos_token_id is None:
            raise ValueError("`sequence_lengths` reads the `<eos>` probabilities: set `eos_token_id`.")
        if model_output.ndim not in (3, 4):
            raise ValueError(f"`model_output` must be (B, M, V) or (B, M, P, V), got {tuple(model_output.shape)}.")
        p_eos = model_output.float().softmax(-1)[..., self.config.eos_token_id]
        if p_eos.ndim == 3:
            p_eos = p_eos.mean(-1)
        ended = p_eos > 0.5
        ended[:, 0] = False  # at least one token is signed
        first = ended.float().argmax(dim=1)  # the first maximum: the first ended position
        return torch.where(ended.any(dim=1), first, torch.full_like(first, p_eos.shape[1]))

    # ----------------------------------------------------------------------------------------------- schedule

    def set_timesteps(self, num_inference_steps: int, sequence_length: int | None = None, device=None):
        """
        Sets the reverse steps. `timesteps` counts down from `num_inference_steps - 1` to 0 (as in diffusers'
        `AmusedScheduler`); `unmasked_counts[i]` is the number of unmasked positions after step `i` and
        `mask_ratios[i]` the noise level `t` before it (both set once `sequence_length` is known, here or at the
        first `step`).

        Args:
            num_inference_steps (`int`): number of reverse steps, at most `sequence_length`.
            sequence_length (`int`, *optional*): the number of generated positions `M`; taken from the sample at the
                first `step` if not given.
            device (`str` or `torch.device`, *optional*): device of `timesteps`.
        """
        if int(num_inference_steps) <= 0:
            raise ValueError(f"`num_inference_steps` must be a positive int, got {num_inference_steps}.")
        self.num_inference_steps = int(num_inference_steps)
        self.timesteps = torch.arange(self.num_inference_steps - 1, -1, -1, device=device, dtype=torch.long)
        self.sequence_length = None
        if sequence_length is not None:
            self._build_schedule(int(sequence_length))

    def _stage_targets(self, length: int) -> list:
        """Unmasked counts at the end of each stage: `round(M (1 - t_c))` per checkpoint, then `M`."""
        return [round(length * (1.0 - t)) for t in self.config.pivot_timesteps] + [length]

    @staticmethod
    def _num_stages(targets: list) -> int:
        return sum(b > a for a, b in zip([0] + targets[:-1], targets))

    def _build_schedule(self, length: int):
        if length <= 0:
            raise ValueError(f"`sequence_length` must be a positive int, got {length}.")
        steps = self.num_inference_steps
        if steps > length:
            raise ValueError(f"`num_inference_steps` ({steps}) must not exceed `sequence_length` ({length}).")
        # 0. fewer steps than checkpoint stages: skip the earliest checkpoints (each later set contains them)
        all_targets = self._stage_targets(length)
        skipped = 0
        while self._num_stages(all_targets[skipped:]) > steps:
            skipped += 1
        targets = all_targets[skipped:]
        sizes = [b - a for a, b in zip([0] + targets[:-1], targets)]
        # 1. steps per stage in proportion to the stage's span in t (largest remainders), >= 1 per non-empty stage
        levels = [1.0, *self.config.pivot_timesteps[skipped:], 0.0]
        shares = [steps * (a - b) for a, b in zip(levels[:-1], levels[1:])]
        per_stage = [max(int(s), 1) if size > 0 else 0 for s, size in zip(shares, sizes)]
        by_remainder = sorted(range(len(sizes)), key=lambda i: per_stage[i] - shares[i])
        while sum(per_stage) != steps:
            if sum(per_stage) < steps:
                i = next(i for i in by_remainder if sizes[i] > per_stage[i])
                per_stage[i] += 1
            else:
                i = next(i for i in reversed(by_remainder) if per_stage[i] > 1)
                per_stage[i] -= 1
        # 2. tokens of a stage spread evenly over its steps; cumulative counts after each step
        counts, done = [], 0
        for size, n in zip(sizes, per_stage):
            for j in range(n):
                done += size // n + (1 if j < size % n else 0)
                counts.append(done)
        self.sequence_length = length
        self.unmasked_counts = torch.tensor(counts, dtype=torch.long)
        self.mask_ratios = 1.0 - torch.tensor([0] + counts[:-1], dtype=torch.float32) / length
        self._stage_of_step = [next(s for s, b in enumerate(targets) if c <= b) for c in counts]
        self._allowed = self._allowed_positions(length)[skipped:]
        self.skipped_checkpoints = skipped

    def unmaskable_positions(self, timestep: int | torch.Tensor) -> torch.BoolTensor:
        """`(M,)`: where step `timestep` may unmask (its stage's checkpoint set; every position in the last stage)."""
        if self.sequence_length is None:
            raise ValueError("`unmaskable_positions` needs the schedule: `set_timesteps(..., sequence_length=M)`.")
        return self._allowed[self._stage_of_step[self.num_inference_steps - 1 - int(timestep)]]

    def pivot_positions(self, sequence_length: int) -> list:
        """
        The positions unmasked at each checkpoint state (`[]` in `"none"` mode), as sorted `LongTensor`s, nested.

        Args:
            sequence_length (`int`): the number of generated positions `M`.
        """
        if self.config.pivot_mode == "none":
            return []
        pivots, chosen = [], []
        for count in self._stage_targets(sequence_length)[:-1]:
            if self.config.pivot_mode == "contiguous":
                grid = list(range(count))
            else:
                grid = sorted({j * sequence_length // count for j in range(count)}) if count else []
            # nest: keep the previous checkpoint's positions and add new grid points (then other positions), each
            # time the one farthest from those already chosen, so the set stays spread when M is not a multiple of 4
            fresh = [p for p in grid if p not in chosen]
            rest = [p for p in range(sequence_length) if p not in chosen and p not in fresh]
            for pool in (fresh, rest):
                while pool and len(chosen) < count:
                    best = max(pool, key=lambda p: (min((abs(p - c) for c in chosen), default=0), -p))
                    pool.remove(best)
                    chosen.append(best)
            pivots.append(torch.tensor(sorted(chosen), dtype=torch.long))
        return pivots

    def _allowed_positions(self, length: int) -> list:
        """Per stage, the positions that may be unmasked (every position in the last stage and in `"none"` mode)."""
        if self.config.pivot_mode == "none":
            return [torch.ones(length, dtype=torch.bool)] * (len(self.config.pivot_timesteps) + 1)
        allowed = []
        for pivots in self.pivot_positions(length):
            mask = torch.zeros(length, dtype=torch.bool)
            mask[pivots] = True
            allowed.append(mask)
        return allowed + [torch.ones(length, dtype=torch.bool)]

    # ----------------------------------------------------------------------------------------------- sampling

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.LongTensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
    ):
        """
        One reverse step: predict every masked token, unmask the most confident allowed ones.

        Args:
            model_output (`torch.Tensor` of shape `(B, M, V)` or `(B, M, P, V)`): logits for every position.
            timestep (`int`): the current entry of `timesteps`.
            sample (`torch.LongTensor` of shape `(B, M)` or `(B, M, P)`): the current token ids.
            generator (`torch.Generator`, *optional*): randomness of the token sampling.
            return_dict (`bool`, *optional*, defaults to `True`): return a [`MaskedDiffusionSchedulerOutput`] or a
                tuple.
        """
        # 1. check the inputs and the schedule
        if self.num_inference_steps is None:
            raise ValueError("`set_timesteps` must be called before `step`.")
        if sample.ndim not in (2, 3):
            raise ValueError(f"`sample` must have shape (B, M) or (B, M, P), got {tuple(sample.shape)}.")
        if model_output.ndim != sample.ndim + 1 or model_output.shape[:-1] != sample.shape:
            raise ValueError(
                f"`model_output` must have shape {tuple(sample.shape)} + (vocab_size,) to match `sample`, "
                f"got {tuple(model_output.shape)}."
            )
        part_wise = sample.ndim == 3
        length = sample.shape[1]
        if self.sequence_length != length:
            self._build_schedule(length)
        step_index = self.num_inference_steps - 1 - int(timestep)
        if not 0 <= step_index < self.num_inference_steps:
            raise ValueError(f"`timestep` must be in [0, {self.num_inference_steps - 1}], got {int(timestep)}.")

        # 2. sample a token per position (Gumbel-max at `temperature`, argmax at 0) and its probability
        logits = model_output.float().clone()
        if self.config.mask_token_id < logits.shape[-1]:
            logits[..., self.config.mask_token_id] = -float("inf")  # the mask is never a prediction
        log_probs = torch.log_softmax(logits, dim=-1)
        if self.config.temperature > 0:
            device = generator.device if generator is not None else logits.device
            uniform = torch.rand(logits.shape, generator=generator, device=device).to(logits.device)
            gumbel = -torch.log((-torch.log(uniform.clamp(1e-20))).clamp(1e-20))
            pred = (log_probs / self.config.temperature + gumbel).argmax(dim=-1)
        else:
            pred = log_probs.argmax(dim=-1)
        confidence = log_probs.gather(-1, pred.unsqueeze(-1)).squeeze(-1)

        # 3. positions: masked ones, their joint confidence over parts
        masked = sample == self.config.mask_token_id
        position_masked = masked.all(dim=-1) if part_wise else masked
        if part_wise:
            confidence = confidence.sum(dim=-1)

        # 4. unmask the most confident allowed masked positions up to this step's count
        allowed = self._allowed[self._stage_of_step[step_index]].to(sample.device)
        candidates = position_masked & allowed
        target = int(self.unmasked_counts[step_index])
        num_unmask = (target - (~position_masked).sum(dim=1)).clamp(min=0)
        score = torch.where(candidates, confidence, torch.full_like(confidence, -float("inf")))
        order = score.argsort(dim=1, descending=True, stable=True)
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(length, device=order.device).expand_as(order))
        unmask = candidates & (rank < num_unmask.unsqueeze(1))
        if part_wise:
            unmask = unmask.unsqueeze(-1).expand_as(sample)
        prev_sample = torch.where(unmask, pred, sample)
        pred_original_sample = torch.where(masked, pred, sample)

        # 5. last step: discard what follows the first eos of each row
        if self.config.eos_token_id is not None and step_index == self.num_inference_steps - 1:
            prev_sample = self._truncate_after_eos(prev_sample)
            pred_original_sample = self._truncate_after_eos(pred_original_sample)

        if not return_dict:
            return (prev_sample, pred_original_sample)
        return MaskedDiffusionSchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)

    def _truncate_after_eos(self, ids: torch.LongTensor) -> torch.LongTensor:
        is_eos = ids == self.config.eos_token_id
        if ids.ndim == 3:
            is_eos = is_eos.any(dim=-1)
        after = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
        if ids.ndim == 3:
            after = after.unsqueeze(-1).expand_as(ids)
        return torch.where(after, torch.full_like(ids, self.config.eos_token_id), ids)

    # ----------------------------------------------------------------------------------------------- training

    def add_noise(
        self,
        original_samples: torch.LongTensor,
        mask_ratio: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.LongTensor:
        """
        Forward process for training: each position is replaced by `mask_token_id` with probability `t`.

        Args:
            original_samples (`torch.LongTensor` of shape `(B, L)` or `(B, L, P)`): clean ids; the parts of a
                position are masked together.
            mask_ratio (`float` or `torch.Tensor` of shape `(B,)`): the noise level `t` in [0, 1], one per row.
            generator (`torch.Generator`, *optional*): randomness of the mask.

        Returns:
            `torch.LongTensor`: the masked ids, same shape.
        """
        t = self._check_noise_inputs(original_samples, mask_ratio).to(original_samples.device)
        device = generator.device if generator is not None else original_samples.device
        draw = torch.rand(original_samples.shape[:2], generator=generator, device=device).to(original_samples.device)
        return self._mask(original_samples, draw < t.unsqueeze(1))

    def _check_noise_inputs(self, original_samples: torch.LongTensor, mask_ratio) -> torch.Tensor:
        """Checks the shapes of a forward-process call; returns `t` as a `(B,)` float tensor on the CPU."""
        if original_samples.ndim not in (2, 3):
            raise ValueError(
                f"`original_samples` must have shape (B, L) or (B, L, P), got {tuple(original_samples.shape)}."
            )
        batch = original_samples.shape[0]
        t = torch.as_tensor(mask_ratio, dtype=torch.float32).cpu()
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,) or bool(((t < 0) | (t > 1)).any()):
            raise ValueError(f"`mask_ratio` must be a float or a ({batch},) tensor in [0, 1], got {mask_ratio}.")
        return t

    def _mask(self, original_samples: torch.LongTensor, masked: torch.Tensor) -> torch.LongTensor:
        """`mask_token_id` where `masked` `(B, L)` is True (on every part of a position)."""
        masked = masked.to(original_samples.device)
        if original_samples.ndim == 3:
            masked = masked.unsqueeze(-1).expand_as(original_samples)
        return torch.where(masked, torch.full_like(original_samples, self.config.mask_token_id), original_samples)

    def add_noise_with_checkpoints(
        self,
        original_samples: torch.LongTensor,
        mask_ratio: float | torch.Tensor,
        generator: torch.Generator | None = None,
        sequence_lengths: torch.Tensor | None = None,
    ) -> torch.LongTensor:
        """
        Forward process restricted to the states the checkpoint sampler reaches (the paper's "index masks", the
        authors' `_utc_mask`): at noise level `t` inside the stage between checkpoints `hi > t >= lo` (with `1` and
        `0` as the outer ends), the positions of the checkpoint set reached at `hi` are always unmasked, those of the
        set reached at `lo` (every position for the last stage) are unmasked each with probability
        `(hi - t) / (hi - lo)`, and all others are masked. The expected masked fraction is `t`, as in [`add_noise`];
        the sets are [`pivot_positions`] of each row's length. In `"none"` mode this is [`add_noise`].

        Args:
            original_samples (`torch.LongTensor` of shape `(B, L)` or `(B, L, P)`): clean ids; the parts of a
                position are masked together.
            mask_ratio (`float` or `torch.Tensor` of shape `(B,)`): the noise level `t` in [0, 1], one per row.
            generator (`torch.Generator`, *optional*): randomness of the mask.
            sequence_lengths (`torch.Tensor` of shape `(B,)`, *optional*): the generated length `M` of each row (its
                checkpoint sets are those of `M` positions); positions at or after it are padding, left as they are.
                Defaults to `L` for every row.

        Returns:
            `torch.LongTensor`: the masked ids, same shape.
        """
        if self.config.pivot_mode == "none" and sequence_lengths is None:
            return self.add_noise(original_samples, mask_ratio, generator)
        t = self._check_noise_inputs(original_samples, mask_ratio)
        batch, length = original_samples.shape[:2]
        lengths = torch.full((batch,), length) if sequence_lengths is None else torch.as_tensor(sequence_lengths).cpu()
        if lengths.shape != (batch,) or bool(((lengths < 1) | (lengths > length)).any()):
            raise ValueError(f"`sequence_lengths` must be a ({batch},) tensor of lengths in [1, {length}].")
        # 1. per row, the stage each position's token enters in: k for the k-th checkpoint set, K for the last stage
        pivots = () if self.config.pivot_mode == "none" else self.config.pivot_timesteps
        entry = torch.full((batch, length), len(pivots), dtype=torch.long)
        for n in lengths.unique().tolist():
            row_entry = torch.full((length,), len(pivots), dtype=torch.long)
            for k, positions in reversed(list(enumerate(self.pivot_positions(n)))):
                row_entry[positions] = k
            entry[lengths == n] = row_entry
        # 2. per row, its stage and the probability that a token entering in that stage is already unmasked
        levels = torch.tensor([1.0, *pivots, 0.0])
        stage = (t.unsqueeze(1) < levels[1:-1]).sum(dim=1)
        hi, lo = levels[stage], levels[stage + 1]
        keep_probability = ((hi - t) / (hi - lo)).unsqueeze(1)
        # 3. earlier stages' tokens stay, this stage's with that probability, later ones are masked
        device = generator.device if generator is not None else original_samples.device
        draw = torch.rand((batch, length), generator=generator, device=device).cpu()
        kept = (entry < stage.unsqueeze(1)) | ((entry == stage.unsqueeze(1)) & (draw < keep_probability))
        kept |= torch.arange(length).unsqueeze(0) >= lengths.unsqueeze(1)
        return self._mask(original_samples, ~kept)

    def __len__(self):
        return self.config.num_train_timesteps

"""Loss pieces that more than one generator's training uses; they call only the models' inference API.

* `masked_l1`: mean absolute error over weighted frames (padding weighs 0).
* `masked_mse`: mean squared error over the real frames of `(batch, frames, A, C)` tensors, optionally weighted
  along the third axis (e.g. atomic joints).
* `diffusion_target`: what a Gaussian diffusion model regresses for its `prediction_type` (diffusers' names).
* `drop_condition`: condition dropout for classifier-free guidance, with the model's own null condition.
* `log_length_loss`: MSE of a predicted log(number of frames).
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["masked_l1", "masked_mse", "diffusion_target", "drop_condition", "log_length_loss"]

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean `|prediction - target|` over every element of the weighted frames.

    Args:
        prediction, target (`torch.Tensor` of shape `(batch, frames, ...)`): compared element-wise.
        weights (`torch.Tensor` of shape `(batch, frames)`): 1 on real frames, 0 on padding.
    """
    err = (prediction - target).abs().flatten(2).mean(-1)
    return (err * weights).sum() / weights.sum().clamp_min(1.0)


def masked_mse(
    prediction: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    axis_weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Mean squared error over the real frames of `(batch, frames, A, C)` tensors.

    Args:
        prediction, target (`torch.Tensor` of shape `(batch, frames, A, C)`): e.g. latents with A atomic joints.
        mask (`torch.Tensor` of shape `(batch, frames)`): True on real frames.
        axis_weights (`torch.Tensor` of shape `(A,)`, *optional*): weights along the third axis, normalised to mean 1
            so that the loss keeps its scale; `None` weighs every entry equally.
    """
    w = mask[:, :, None, None].to(prediction.dtype)
    if axis_weights is not None:
        axis_weights = axis_weights.to(prediction)  # integer weights too
        w = w * (axis_weights / axis_weights.mean())[None, None, :, None]
    count = (mask.sum() * prediction.shape[2] * prediction.shape[3]).clamp_min(1.0)
    return ((prediction - target) ** 2 * w).sum() / count


def diffusion_target(
    scheduler, prediction_type: str, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """The regression target of a model that predicts `prediction_type` at `timesteps`.

    `"epsilon"`: the noise; `"sample"`: the clean sample; `"v_prediction"`: `sqrt(alpha_bar_t) * noise -
    sqrt(1 - alpha_bar_t) * sample` (`scheduler.get_velocity`, e.g. of a `DDPMScheduler`).
    """
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "sample":
        return sample
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(sample, noise, timesteps)
    raise ValueError(f"`prediction_type` must be one of {PREDICTION_TYPES}; got {prediction_type!r}.")


def drop_condition(
    states: torch.Tensor,
    mask: torch.Tensor,
    null_condition: Callable[..., Tuple[torch.Tensor, torch.Tensor]],
    prob: float,
    drop: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replace each sample's condition by the model's null condition with probability `prob` (classifier-free
    guidance); gradients reach a learned null embedding through the dropped samples.

    Args:
        states (`torch.Tensor` of shape `(batch, seq_len, dim)`): condition states (e.g. text hidden states).
        mask (`torch.Tensor` of shape `(batch, seq_len)`): True on valid tokens.
        null_condition (`Callable`): `null_condition(batch, seq_len, device, dtype) -> (states, mask)`, the model's
            unconditional input (e.g. `SkeletonLatentDenoiser.null_condition`).
        prob (`float`): drop probability in [0, 1]; 0 draws no random numbers.
        drop (`torch.Tensor` of shape `(batch,)`, *optional*): which samples to drop (bool), instead of drawing.
        generator (`torch.Generator`, *optional*): for the draw.

    Returns:
        `(states, mask, drop)`: the conditions after dropout, and which samples were dropped.
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"`cond_drop_prob` must be in [0, 1]; got {prob}.")
    b, seq_len, _ = states.shape
    if drop is None:
        if prob <= 0:
            return states, mask, torch.zeros(b, dtype=torch.bool, device=states.device)
        device = generator.device if generator is not None else states.device
        drop = (torch.rand(b, generator=generator, device=device) < prob).to(states.device)
    if tuple(drop.shape) != (b,):
        raise ValueError(f"`drop` must have shape ({b},); got {tuple(drop.shape)}.")
    drop = drop.to(device=states.device, dtype=torch.bool)
    null_states, null_mask = null_condition(b, seq_len, states.device, states.dtype)
    states = torch.where(drop[:, None, None], null_states, states)
    return states, torch.where(drop[:, None], null_mask.to(mask.device), mask.bool()), drop


def log_length_loss(log_num_frames: torch.Tensor, num_frames: torch.Tensor) -> torch.Tensor:
    """MSE between predicted and true log(number of frames); `num_frames` (batch,) counts real frames."""
    if tuple(num_frames.shape) != tuple(log_num_frames.shape):
        raise ValueError(
            f"`num_frames` must have shape {tuple(log_num_frames.shape)} (batch,); got {tuple(num_frames.shape)}."
        )
    return F.mse_loss(log_num_frames, num_frames.to(log_num_frames).clamp_min(1.0).log())

"""Sign-MExD's training objective (Shen et al., Sec. II-D and III-C): pure functions of poses, a model and a batch.

* `joint_loss`: eq. 9, `L_joint = 1/J sum_j |x_j - x'_j|`, the L1 norm of each joint's 3D error (so `|.|` of a
  3-vector is the sum of its absolute coordinates), averaged over the joints and then over the real frames. Joint
  positions come from the skeleton's differentiable `to_positions`: forward kinematics for `smplx133` (the proxy
  body, or licensed SMPL-X files when `HF_SIGN_SMPLX_DIR` is set), the features themselves for position skeletons.
* `bone_loss`: eq. 10, `L_bone = 1/B sum_b (q_b - q'_b)^2`, with `q_b` the *unit* direction of bone `b` (child minus
  parent joint, normalised) over the skeleton's position bones (`SkeletonSpec.position_bones`); the squared error
  of a 3-vector is its squared Euclidean norm. Averaged over the bones, then over the real frames.
* `augment_poses`: Sec. III-C, "we applied Gaussian noise to the pose coordinates, with rate set to 5%". The paper
  says no more; we read it as a training augmentation of the clean poses `x_0` that the forward process (eq. 1)
  diffuses: `x_0 + rate * sigma * n`, `n ~ N(0, I)`, `sigma` each feature's standard deviation over the train split
  (the poses are standardised by the `PoseNormalizer`, so `sigma = 1`). The targets of eqs. 9-10 stay clean, and
  nothing is added at inference. Padded frames stay zero.
* `pose_loss`: eq. 11, `L = L_joint + lambda L_bone` with `lambda = 0.1`, plus, when `sample_loss_weight > 0`, eq.
  2's squared error on the standardised features. Eq. 11 alone leaves every feature that no joint position depends
  on free (smplx133's jaw and expression); the `paper-*` configs keep eq. 11 alone, the CPU configs add eq. 2.
* `sign_mexd_diffusion_loss`: one training step: augment, noise at uniform timesteps with a `DDPMScheduler`, let the
  transformer predict `x_0` (`prediction_type="sample"`), and score it with `pose_loss`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from ..skeletons.spec import SkeletonSpec

if TYPE_CHECKING:  # annotations only: the stages import these losses
    from .sign_mexd_stages import SignMExDTrainingArguments

__all__ = [
    "frame_weights",
    "joint_loss",
    "bone_directions",
    "bone_loss",
    "augment_poses",
    "pose_loss",
    "sign_mexd_diffusion_loss",
]


def frame_weights(shape: Tuple[int, int], attention_mask: Optional[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """`(batch, frames)` weights: 1 on real frames (`attention_mask` True or absent), 0 on padding."""
    if attention_mask is None:
        return torch.ones(shape, device=like.device, dtype=like.dtype)
    if tuple(attention_mask.shape) != tuple(shape):
        raise ValueError(f"`attention_mask` must have shape {tuple(shape)} (batch, frames); got "
                         f"{tuple(attention_mask.shape)}.")
    return attention_mask.to(device=like.device, dtype=like.dtype)


def _mean_over_frames(per_frame: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (per_frame * weights).sum() / weights.sum().clamp_min(1.0)


def joint_loss(
    predicted: torch.Tensor, target: torch.Tensor, attention_mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Eq. 9 over real frames.

    Args:
        predicted, target (`torch.Tensor` of shape `(batch, frames, J, 3)`): joint positions.
        attention_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): True on real frames.

    Returns:
        `torch.Tensor`: the mean over real frames of `1/J sum_j ||x_j - x'_j||_1`.
    """
    if predicted.shape != target.shape or predicted.ndim != 4 or predicted.shape[-1] != 3:
        raise ValueError(f"`predicted` and `target` must both have shape (batch, frames, J, 3); got "
                         f"{tuple(predicted.shape)} and {tuple(target.shape)}.")
    per_frame = (predicted - target).abs().sum(-1).mean(-1)
    return _mean_over_frames(per_frame, frame_weights(per_frame.shape, attention_mask, per_frame))


def bone_directions(joints: torch.Tensor, bones: Sequence[Tuple[int, int]], eps: float = 1e-8) -> torch.Tensor:
    """Unit direction of every `(parent, child)` bone: `(..., J, 3)` -> `(..., B, 3)`; a zero-length bone gives 0."""
    if not bones:
        raise ValueError("`bones` is empty; the bone loss needs the skeleton's (parent, child) pairs.")
    parents = torch.tensor([p for p, _ in bones], device=joints.device)
    children = torch.tensor([c for _, c in bones], device=joints.device)
    return F.normalize(joints[..., children, :] - joints[..., parents, :], dim=-1, eps=eps)


def bone_loss(
    predicted: torch.Tensor,
    target: torch.Tensor,
    bones: Sequence[Tuple[int, int]],
    attention_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Eq. 10 over real frames: the mean over bones of the squared distance between unit bone directions.

    Args:
        predicted, target (`torch.Tensor` of shape `(batch, frames, J, 3)`): joint positions.
        bones (`Sequence[Tuple[int, int]]`): `(parent, child)` joint indices (`SkeletonSpec.position_bones`).
        attention_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): True on real frames.
    """
    if predicted.shape != target.shape or predicted.ndim != 4:
        raise ValueError(f"`predicted` and `target` must both have shape (batch, frames, J, 3); got "
                         f"{tuple(predicted.shape)} and {tuple(target.shape)}.")
    err = (bone_directions(predicted, bones) - bone_directions(target, bones)).pow(2).sum(-1).mean(-1)
    return _mean_over_frames(err, frame_weights(err.shape, attention_mask, err))


def augment_poses(
    poses: torch.Tensor,
    rate: float,
    attention_mask: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    noise: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """`poses + rate * n` on real frames, `n ~ N(0, I)` (or the given `noise`); padded frames are unchanged.

    Args:
        poses (`torch.Tensor` of shape `(batch, frames, feature_dim)`): standardised poses (unit variance per feature,
            so `rate` is a fraction of each feature's training standard deviation).
        rate (`float`): the noise's standard deviation; 0 returns `poses` and draws nothing.
        attention_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): True on real frames.
        generator (`torch.Generator`, *optional*): for the draw.
        noise (`torch.Tensor` like `poses`, *optional*): standard normal noise to use instead of drawing.
    """
    if rate < 0:
        raise ValueError(f"`pose_noise_rate` must be >= 0; got {rate}.")
    if rate == 0:
        return poses
    if noise is None:
        noise = torch.randn(poses.shape, generator=generator, device=poses.device, dtype=poses.dtype)
    w = frame_weights(poses.shape[:2], attention_mask, poses)
    return poses + rate * noise * w[..., None]


def pose_loss(
    predicted: torch.Tensor,
    target: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    skeleton: SkeletonSpec,
    args: "SignMExDTrainingArguments",
    denormalize: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> Dict[str, torch.Tensor]:
    """Eq. 11 (`joint_loss_weight * L_joint + bone_loss_weight * L_bone`) [+ `sample_loss_weight` * eq. 2's MSE].

    Args:
        predicted, target (`torch.Tensor` of shape `(batch, frames, feature_dim)`): the predicted and the clean
            standardised poses.
        attention_mask (`torch.Tensor` of shape `(batch, frames)`, *optional*): True on real frames.
        skeleton (`SkeletonSpec`): the representation (forward kinematics and position bones).
        args (`SignMExDTrainingArguments`): the loss weights.
        denormalize (`Callable`, *optional*): standardised features -> dataset units before the forward kinematics
            (`PoseNormalizer.denormalize`); default: the features are in dataset units.

    Returns:
        `dict` of scalar tensors `loss`, `loss_joint`, `loss_bone`, `loss_sample`.
    """
    denormalize = denormalize if denormalize is not None else (lambda x: x)
    pred_joints = skeleton.to_positions(denormalize(predicted))
    with torch.no_grad():  # the target needs no graph
        true_joints = skeleton.to_positions(denormalize(target))
    loss_joint = joint_loss(pred_joints, true_joints, attention_mask)
    loss_bone = bone_loss(pred_joints, true_joints, skeleton.position_bones, attention_mask)
    per_frame = (predicted - target).pow(2).mean(-1)
    loss_sample = _mean_over_frames(per_frame, frame_weights(per_frame.shape, attention_mask, per_frame))
    loss = args.joint_loss_weight * loss_joint + args.bone_loss_weight * loss_bone
    if args.sample_loss_weight > 0:
        loss = loss + args.sample_loss_weight * loss_sample
    return {"loss": loss, "loss_joint": loss_joint, "loss_bone": loss_bone, "loss_sample": loss_sample}


def sign_mexd_diffusion_loss(
    transformer: torch.nn.Module,
    poses: torch.Tensor,
    attention_mask: torch.Tensor,
    encoder_hidden_states: torch.Tensor,
    encoder_attention_mask: torch.Tensor,
    args: "SignMExDTrainingArguments",
    noise_scheduler: DDPMScheduler,
    skeleton: SkeletonSpec,
    denormalize: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    training: bool = True,
    pose_noise: Optional[torch.Tensor] = None,
    noise: Optional[torch.Tensor] = None,
    timesteps: Optional[torch.Tensor] = None,
) -> Dict[str, torch.Tensor]:
    """One training step's loss: the transformer denoises `x_t` back to `x_0` under the gloss states.

    Args:
        transformer (`SignMExDTransformer`): predicts `x_0` (only its `forward` is called).
        poses (`torch.Tensor` of shape `(batch, frames, feature_dim)`): clean standardised poses, zero-padded.
        attention_mask (`torch.Tensor` of shape `(batch, frames)`): True on real frames.
        encoder_hidden_states (`torch.Tensor` of shape `(batch, gloss_len, dim)`): the gloss encoder's states.
        encoder_attention_mask (`torch.Tensor` of shape `(batch, gloss_len)`): True on real gloss tokens.
        args (`SignMExDTrainingArguments`): loss weights and `pose_noise_rate`.
        noise_scheduler (`DDPMScheduler`): the forward process (eq. 1).
        skeleton (`SkeletonSpec`), denormalize (`Callable`, *optional*): see `pose_loss`.
        training (`bool`, *optional*, defaults to `True`): apply the pose augmentation (not when evaluating).
        pose_noise, noise (`torch.Tensor` like `poses`, *optional*), timesteps (`torch.Tensor` of shape `(batch,)`,
            *optional*): fixed draws instead of random ones (drawn in this order otherwise).

    Returns:
        `dict` of scalar tensors `loss`, `loss_joint`, `loss_bone`, `loss_sample`.
    """
    # 1. the clean poses the forward process diffuses, augmented in training (the targets stay clean)
    rate = args.pose_noise_rate if training else 0.0
    x0 = augment_poses(poses, rate, attention_mask, noise=pose_noise)
    # 2. x_t at uniform timesteps (eq. 1); padded frames stay zero
    noise = torch.randn_like(poses) if noise is None else noise
    if timesteps is None:
        num_timesteps = noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, num_timesteps, (poses.shape[0],), device=poses.device)
    keep = attention_mask.to(poses.dtype)[..., None]
    xt = noise_scheduler.add_noise(x0, noise, timesteps) * keep
    # 3. predict x_0 and score it against the clean poses
    predicted = transformer(
        xt, timesteps, encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask,
        attention_mask=attention_mask,
    ).sample
    return pose_loss(predicted, poses, attention_mask, skeleton, args, denormalize)


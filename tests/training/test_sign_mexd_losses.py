"""Sign-MExD's loss pieces (eqs. 9-11, the 5% pose noise): values by hand, masking, forward kinematics, gradients."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from hf_sign.skeletons import get_skeleton
from hf_sign.skeletons.smplx133 import REST_ARMS_DOWN
from hf_sign.training.sign_mexd_losses import (
    augment_poses,
    bone_directions,
    bone_loss,
    joint_loss,
    pose_loss,
    sign_mexd_diffusion_loss,
)
from hf_sign.training.sign_mexd_stages import SignMExDTrainingArguments


def smplx_features(batch=2, frames=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    rest = torch.tensor(REST_ARMS_DOWN, dtype=torch.float32)
    return rest + 0.3 * torch.randn(batch, frames, 133, generator=g)


def test_joint_loss_matches_a_hand_computation():
    target = torch.zeros(1, 2, 2, 3)
    pred = torch.zeros(1, 2, 2, 3)
    pred[0, 0, 0] = torch.tensor([1.0, -2.0, 0.5])  # frame 0, joint 0: |.|_1 = 3.5
    pred[0, 0, 1] = torch.tensor([0.0, 0.0, -0.5])  # frame 0, joint 1: 0.5
    pred[0, 1, 1] = torch.tensor([1.0, 1.0, 1.0])  # frame 1, joint 1: 3
    # eq. 9 per frame: (3.5 + 0.5) / 2 = 2 and (0 + 3) / 2 = 1.5; the mean over the frames is 1.75
    assert joint_loss(pred, target).item() == pytest.approx(1.75)
    mask = torch.tensor([[True, False]])  # frame 1 is padding: only frame 0 counts
    assert joint_loss(pred, target, mask).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"\(batch, frames, J, 3\)"):
        joint_loss(pred[..., :2], target[..., :2])


def test_bone_loss_by_hand_and_on_directions_only():
    bones = [(0, 1), (1, 2)]
    target = torch.tensor([[[[0.0, 0, 0], [1, 0, 0], [1, 2, 0]]]])  # bone directions +x, +y
    pred = torch.tensor([[[[0.0, 0, 0], [0, 3, 0], [0, 3, 4]]]])  # bone directions +y, +z
    # |(1,0,0) - (0,1,0)|^2 = 2 and |(0,1,0) - (0,0,1)|^2 = 2; the mean over the bones is 2
    assert bone_loss(pred, target, bones).item() == pytest.approx(2.0)
    np.testing.assert_allclose(bone_directions(pred, bones)[0, 0].numpy(), [[0, 1, 0], [0, 0, 1]])
    assert bone_loss(target * 3.0 + 1.0, target, bones).item() == pytest.approx(0.0, abs=1e-12)  # lengths do not count
    with pytest.raises(ValueError, match="bones"):
        bone_loss(pred, target, [])


def test_losses_are_zero_for_identical_poses_through_forward_kinematics():
    spec = get_skeleton("smplx133")
    joints = spec.to_positions(smplx_features())
    assert joint_loss(joints, joints.clone()).item() == 0.0
    assert bone_loss(joints, joints.clone(), spec.position_bones).item() == 0.0
    other = spec.to_positions(smplx_features(seed=1))
    assert joint_loss(other, joints).item() > 0.01 and bone_loss(other, joints, spec.position_bones).item() > 0.01


def test_gradients_reach_the_features_through_forward_kinematics():
    spec = get_skeleton("smplx133")
    target = spec.to_positions(smplx_features(seed=1))
    features = smplx_features().requires_grad_(True)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    joints = spec.to_positions(features)
    (joint_loss(joints, target, mask) + bone_loss(joints, target, spec.position_bones, mask)).backward()
    grad = features.grad
    assert torch.isfinite(grad).all() and grad[:, :, :120].abs().sum() > 0  # body and hands move the joints
    assert grad[1, 3:].abs().sum() == 0  # padded frames get nothing
    assert grad[..., 120:].abs().sum() == 0  # jaw and expression move no joint position: eq. 11 leaves them free


def test_pose_noise_is_five_percent_on_real_frames_only():
    poses = torch.zeros(4, 500, 133)
    mask = torch.ones(4, 500, dtype=torch.bool)
    mask[1, 300:] = False
    noisy = augment_poses(poses, 0.05, mask, generator=torch.Generator().manual_seed(0))
    assert noisy[1, 300:].abs().sum() == 0  # padding stays zero
    real = noisy[mask]
    assert real.mean().abs().item() < 1e-3 and real.std().item() == pytest.approx(0.05, rel=0.01)
    again = augment_poses(poses, 0.05, mask, generator=torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)
    noise = torch.randn(4, 500, 133)
    np.testing.assert_allclose(augment_poses(poses + 1.0, 0.1, None, noise=noise), 1.0 + 0.1 * noise, atol=1e-6)
    assert augment_poses(poses, 0.0, mask) is poses  # rate 0: nothing drawn, nothing added
    with pytest.raises(ValueError, match="pose_noise_rate"):
        augment_poses(poses, -0.05, mask)


def test_unit_bone_directions_of_the_smplx_skeleton():
    spec = get_skeleton("smplx133")
    directions = bone_directions(spec.to_positions(smplx_features()), spec.position_bones)
    norms = directions.norm(dim=-1)
    assert directions.shape == (2, 5, len(spec.position_bones), 3)
    assert torch.allclose(norms[norms > 0], torch.ones(1), atol=1e-5) and (norms > 0).float().mean() > 0.9
    assert len(spec.position_bones) == spec.num_position_joints - 1 and math.isfinite(float(directions.sum()))


class Recorder(torch.nn.Module):
    """A transformer stand-in that predicts `prediction` and records what it was given."""

    def __init__(self, prediction):
        super().__init__()
        self.prediction, self.seen = prediction, {}

    def forward(self, sample, timestep, **kwargs):
        self.seen = dict(sample=sample, timestep=timestep, **kwargs)
        return SimpleNamespace(sample=self.prediction)


def test_diffusion_loss_noises_augmented_poses_and_scores_against_clean_ones():
    spec = get_skeleton("smplx133")
    poses = smplx_features(2, 6)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    poses = poses * mask[..., None]
    args = SignMExDTrainingArguments(sample_loss_weight=1.0)
    ddpm = DDPMScheduler(num_train_timesteps=1000, prediction_type="sample")
    g = torch.Generator().manual_seed(0)
    pose_noise, noise = torch.randn(poses.shape, generator=g), torch.randn(poses.shape, generator=g)
    t = torch.tensor([10, 900])
    states, gloss_mask = torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    perfect = Recorder(poses)
    terms = sign_mexd_diffusion_loss(perfect, poses, mask, states, gloss_mask, args, ddpm, spec, pose_noise=pose_noise,
                                     noise=noise, timesteps=t)
    assert all(float(v) == 0.0 for v in terms.values())  # the clean poses are the target, not the augmented ones
    augmented = poses + 0.05 * pose_noise * mask[..., None]
    expected = ddpm.add_noise(augmented, noise, t) * mask[..., None]
    torch.testing.assert_close(perfect.seen["sample"], expected)
    assert perfect.seen["attention_mask"] is mask and perfect.seen["encoder_hidden_states"] is states
    sign_mexd_diffusion_loss(perfect, poses, mask, states, gloss_mask, args, ddpm, spec, training=False,
                             pose_noise=pose_noise, noise=noise, timesteps=t)
    torch.testing.assert_close(perfect.seen["sample"], ddpm.add_noise(poses, noise, t) * mask[..., None])
    # eq. 11 with the weights of the arguments; the feature term only when weighted
    off = Recorder(poses + 0.1)
    terms = sign_mexd_diffusion_loss(off, poses, mask, states, gloss_mask, args, ddpm, spec, noise=noise, timesteps=t)
    assert float(terms["loss"]) == pytest.approx(
        float(terms["loss_joint"] + 0.1 * terms["loss_bone"] + terms["loss_sample"]), rel=1e-6)
    assert float(terms["loss_sample"]) == pytest.approx(0.01, rel=1e-5)
    paper = pose_loss(poses + 0.1, poses, mask, spec, SignMExDTrainingArguments())
    assert float(paper["loss"]) == pytest.approx(float(paper["loss_joint"] + 0.1 * paper["loss_bone"]), rel=1e-6)

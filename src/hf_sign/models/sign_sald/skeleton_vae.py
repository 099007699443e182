"""Sign-SALD's skeleton-aware VAE (Shen et al., Sec. 2.1, Fig. 2), as a diffusers model.

Pipeline of the encoder, top to bottom (shapes for batch B, frames N, feature joints J, atomic joints J'):

    x (B, N, F) --joint-specific MLPs--> h (B, N, J, D)
      --[STConv x layers_per_stage -> STPool] per stage--> (B, N', J', D)   N' = N / prod(temporal_downsample)
      --mean / logvar heads--> diagonal Gaussian over z (B, N', J', latent_dim)

* STConv (eq. 1): `F_skel(h) + F_temp(h)`, a graph convolution over the `SkeletonSpec`'s normalised adjacency
  (shared weights, ST-GCN edge-importance mask, per-joint bias) summed element-wise with a 1-D temporal convolution
  run on every joint's sequence (weights shared across joints), then LayerNorm, activation and a residual.
* STPool (eq. 2): `P_temp(P_skel(h))`. Skeletal pooling averages the joints of each atomic-joint group of the spec
  (`pooling_groups[num_atomic_joints]`), as a learnable matrix that is initialised to that average and can only
  weigh joints inside their own group (`skeletal_pooling="linear"`: a learnable linear map of the group's
  concatenated member features instead, initialised to the same average). It happens in the first STPool; later
  stages work on the J' atomic joints over the pooled (group-level) adjacency. Temporal pooling is a learnable
  strided convolution (kernel = stride = factor), one factor per stage.

The decoder mirrors it: a latent input projection, then per stage STUnpool (transposed strided convolution in time;
skeletal unpooling with the transpose of the group assignment, learnable, initialised to copy each atomic joint to
its members, plus a per-joint embedding so members can diverge) and STConv layers, and joint-specific MLPs back to
every joint's slice of the feature vector.

`skeleton_aware=False` is the paper's "w/o ST-Latent" ablation (Table 3): the same operators with the skeleton
collapsed to a single node, i.e. a frame-vector MLP and temporal convolutions (the graph convolution on one node is a
per-frame linear layer). Its latent has shape (B, N', 1, num_atomic_joints * latent_dim), the same number of latent
numbers per frame as the skeleton-aware model, so the denoiser runs unchanged with `num_joints=1`.

Padded frames: with `attention_mask` the hidden states of padded frames are zeroed before every temporal operation,
which is exactly what zero padding does at the end of an unpadded sequence, so the encoding of a sequence whose
length is a multiple of the downsampling factor does not depend on how much padding the batch adds.

The layers (`JointLinear`, `STConv`, `STPool`, `STUnpool`) live in `skeleton_blocks.py`; this file assembles them.

The training objective (eq. 4) lives in training code (`hf_sign.training.sign_sald_losses.skeleton_vae_loss`), with
its weights in the `vae_training` config section; the model holds the architecture and the latent statistics
inference needs. Configs saved by earlier versions may still carry `lambda_pos`, `lambda_vel`, `lambda_kl`,
`feature_mean` and `feature_std`: diffusers ignores them on load, with a warning naming them.
"""

from __future__ import annotations

import math
from typing import Iterable, List, Optional, Tuple, Union

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.activations import get_activation
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ...skeletons.spec import SkeletonSpec, get_skeleton
from .skeleton_blocks import JointLinear, STConv, STPool, STUnpool, _normalized_adjacency, _zero_padding

__all__ = ["SkeletonVAE", "JointLinear"]


class SkeletonVAE(ModelMixin, ConfigMixin):
    r"""Skeleton-aware VAE of Sign-SALD: pose sequences (B, N, feature_dim) <-> latents (B, N', J', latent_dim).

    Used like diffusers' `AutoencoderKL`: `encode(x).latent_dist.sample(generator)` (or `.mode()`), multiply by
    `config.scaling_factor` before diffusion, divide by it before `decode(z)` (or use `scale_latents` /
    `unscale_latents`, which also honour per-channel `latents_mean`/`latents_std` when they are set). The defaults
    are the paper-scale model: 2.80M parameters on `smplx133` (Table 2 reports 2.81M).

    Args:
        skeleton (`str`, *optional*, defaults to `"smplx133"`): `SkeletonSpec` name (joints, adjacency, pooling groups,
            forward kinematics for the position loss).
        num_atomic_joints (`int`, *optional*, defaults to 7): J', one of the spec's `pooling_groups` (5, 7, 9).
        hidden_dims (`Tuple[int]`, *optional*, defaults to `(128, 128)`): channel width D of each stage (one stage per
            temporal downsampling factor); the joint MLPs use `hidden_dims[0]`.
        temporal_downsample (`Tuple[int]`, *optional*, defaults to `(2, 2)`): temporal pooling factor of each stage;
            N' = N / prod(temporal_downsample), and the input length must be a multiple of that product.
        layers_per_stage (`int`, *optional*, defaults to 3): STConv layers per stage, in the encoder and the decoder.
        latent_dim (`int`, *optional*, defaults to 16): channels per atomic joint of the latent.
        kernel_size (`int`, *optional*, defaults to 5): odd temporal kernel size of the STConv layers.
        dropout (`float`, *optional*, defaults to 0.0): dropout after every STConv activation.
        act_fn (`str`, *optional*, defaults to `"silu"`): activation (`"silu"`, `"gelu"`, `"relu"`, `"mish"`).
        skeleton_aware (`bool`, *optional*, defaults to `True`): `False` builds the "w/o ST-Latent" ablation (a
            frame-vector VAE; latent (B, N', 1, num_atomic_joints * latent_dim)).
        flat_width_multiplier (`float`, *optional*, defaults to 1.5): with `skeleton_aware=False`, the frame-vector
            widths are `round(hidden_dims * flat_width_multiplier)` (one node carries the whole frame); 1.5 keeps the
            parameter count close to the skeleton-aware model's at the paper size (3.1M vs 2.8M).
        skeletal_pooling (`str`, *optional*, defaults to `"average"`): how STPool aggregates each atomic joint's member
            joints (and STUnpool restores them): `"average"`, a learnable weighted average (one weight per joint; the
            paper's "aggregates the features of spatially adjacent joints"), or `"linear"`, a learnable linear map of
            all members' features (one (D, D) matrix per joint, initialised to the average). Not in the paper.
        scaling_factor (`float`, *optional*, defaults to 1.0): latents are multiplied by it before diffusion (see
            `estimate_scaling_factor`).
        latents_mean (`List[float]`, *optional*): per-element latent mean (J' * C values, joint-major); with
            `latents_std` it replaces `scaling_factor`: `scale_latents(z) = (z - latents_mean) / latents_std`, as
            diffusers' video VAEs do. Every atomic joint and channel then enters diffusion with unit variance, so no
            high-energy body channel dominates the denoiser's loss (see `estimate_latent_statistics`).
        latents_std (`List[float]`, *optional*): per-element latent standard deviation (with `latents_mean`).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        skeleton: str = "smplx133",
        num_atomic_joints: int = 7,
        hidden_dims: Tuple[int, ...] = (128, 128),
        temporal_downsample: Tuple[int, ...] = (2, 2),
        layers_per_stage: int = 3,
        latent_dim: int = 16,
        kernel_size: int = 5,
        dropout: float = 0.0,
        act_fn: str = "silu",
        skeleton_aware: bool = True,
        flat_width_multiplier: float = 1.5,
        skeletal_pooling: str = "average",
        scaling_factor: float = 1.0,
        latents_mean: Optional[List[float]] = None,
        latents_std: Optional[List[float]] = None,
    ):
        super().__init__()
        spec = get_skeleton(skeleton)
        hidden_dims, temporal_downsample = list(hidden_dims), list(temporal_downsample)
        if len(hidden_dims) == 0 or len(hidden_dims) != len(temporal_downsample):
            raise ValueError(
                f"`hidden_dims` ({hidden_dims}) and `temporal_downsample` ({temporal_downsample}) need one entry "
                "per stage."
            )
        if any(f < 1 for f in temporal_downsample):
            raise ValueError(f"`temporal_downsample` factors must be >= 1; got {temporal_downsample}.")
        if kernel_size % 2 != 1:
            raise ValueError(f"`kernel_size` must be odd (same-length temporal convolution); got {kernel_size}.")
        if layers_per_stage < 1:
            raise ValueError(f"`layers_per_stage` must be >= 1; got {layers_per_stage}.")
        if skeletal_pooling not in ("average", "linear"):
            raise ValueError(f"`skeletal_pooling` must be 'average' or 'linear'; got {skeletal_pooling!r}.")
        if num_atomic_joints not in spec.pooling_groups:
            raise ValueError(
                f"`num_atomic_joints`={num_atomic_joints} is not a pooling of skeleton {skeleton!r}; "
                f"expected one of {sorted(spec.pooling_groups)}."
            )
        self.spec: SkeletonSpec = spec
        self.gradient_checkpointing = False

        if skeleton_aware:
            widths = hidden_dims
            joint_in, num_joints = list(spec.joint_dims), spec.num_joints
            adjacency = torch.from_numpy(spec.adjacency(normalized=False, self_loops=False))
            pooling = torch.from_numpy(spec.pooling_matrix(num_atomic_joints))
            pooled_adjacency = ((pooling > 0).float() @ adjacency @ (pooling > 0).float().t() > 0).float()
            adjacencies = [_normalized_adjacency(adjacency)] + [_normalized_adjacency(pooled_adjacency)] * len(widths)
            latent_joints, latent_channels = num_atomic_joints, latent_dim
        else:  # one node per frame: graph convolution = per-frame linear layer
            widths = [max(1, round(w * flat_width_multiplier)) for w in hidden_dims]
            joint_in, num_joints, pooling = [spec.feature_dim], 1, None
            adjacencies = [torch.ones(1, 1)] * (len(widths) + 1)
            latent_joints, latent_channels = 1, latent_dim * num_atomic_joints
        self.latent_num_joints, self.latent_channels = latent_joints, latent_channels
        self._set_latent_statistics(latents_mean, latents_std)
        self.num_nodes = num_joints  # J (1 for the frame-vector ablation)
        w0 = widths[0]

        def stconvs(adj, dims):
            return nn.ModuleList(STConv(adj, i, o, kernel_size, dropout, act_fn) for i, o in zip(dims[:-1], dims[1:]))

        # Encoder: joint MLPs -> [STConv x L -> STPool] per stage -> mean/logvar heads.
        widths0 = [w0] * num_joints
        self.encoder_in = nn.Sequential(
            JointLinear(joint_in, widths0), get_activation(act_fn), JointLinear(widths0, widths0)
        )
        self.encoder_convs = nn.ModuleList()
        self.encoder_pools = nn.ModuleList()
        prev = w0
        for s, (w, f) in enumerate(zip(widths, temporal_downsample)):
            self.encoder_convs.append(stconvs(adjacencies[s], [prev] + [w] * layers_per_stage))
            self.encoder_pools.append(STPool(w, f, pooling if s == 0 else None, skeletal_pooling))
            prev = w
        self.encoder_out = nn.Linear(widths[-1], 2 * latent_channels)

        # Decoder: latent projection -> [STUnpool -> STConv x L] per stage (reversed) -> joint MLPs.
        self.decoder_in = nn.Linear(latent_channels, widths[-1])
        self.decoder_unpools = nn.ModuleList()
        self.decoder_convs = nn.ModuleList()
        for s in reversed(range(len(widths))):
            out = widths[s - 1] if s > 0 else w0
            self.decoder_unpools.append(
                STUnpool(widths[s], temporal_downsample[s], pooling if s == 0 else None, skeletal_pooling)
            )
            self.decoder_convs.append(stconvs(adjacencies[s], [widths[s]] * layers_per_stage + [out]))
        self.decoder_out = nn.Sequential(
            JointLinear(widths0, widths0), get_activation(act_fn), JointLinear(widths0, joint_in)
        )

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def temporal_downsample_factor(self) -> int:
        """Total temporal downsampling: input lengths must be a multiple of it (N' = N / factor)."""
        return int(math.prod(self.config.temporal_downsample))

    def latent_shape(self, num_frames: int) -> Tuple[int, int, int]:
        """(N', J', C) of the latent of a `num_frames`-frame sequence (`num_frames` rounded up to the multiple)."""
        return (-(-num_frames // self.temporal_downsample_factor), self.latent_num_joints, self.latent_channels)

    def downsample_mask(self, attention_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """Frame mask (B, N) -> latent-frame mask (B, N'): a latent frame is valid when its first frame is."""
        return None if attention_mask is None else attention_mask[:, :: self.temporal_downsample_factor]

    def _set_latent_statistics(self, mean, std):
        if (mean is None) != (std is None):
            raise ValueError("`latents_mean` and `latents_std` must be given together.")
        size = self.latent_num_joints * self.latent_channels
        if mean is not None:
            if len(mean) != size or len(std) != size:
                raise ValueError(
                    f"`latents_mean`/`latents_std` must have {size} entries each (latent joints x channels); "
                    f"got {len(mean)} and {len(std)}."
                )
            if min(std) <= 0:
                raise ValueError("`latents_std` must be positive.")
        shape = (self.latent_num_joints, self.latent_channels)

        def as_buffer(values):  # in the default dtype, like the parameters (see skeleton_blocks.py)
            return None if values is None else torch.tensor(values, dtype=torch.get_default_dtype()).reshape(shape)

        self.register_buffer("latent_shift", as_buffer(mean), persistent=False)
        self.register_buffer("latent_scale", as_buffer(std), persistent=False)

    def scale_latents(self, z: torch.Tensor) -> torch.Tensor:
        """VAE latents (B, N', J', C) -> diffusion space: per-channel standardised if `latents_std` is set, else
        multiplied by `scaling_factor`."""
        if self.latent_scale is not None:
            return (z - self.latent_shift.to(z)) / self.latent_scale.to(z)
        return z * self.config.scaling_factor

    def unscale_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of `scale_latents`: diffusion-space latents -> what `decode` takes."""
        if self.latent_scale is not None:
            return z * self.latent_scale.to(z) + self.latent_shift.to(z)
        return z / self.config.scaling_factor

    def _check_mask(self, attention_mask, batch: int, frames: int, name: str = "attention_mask"):
        if attention_mask is None:
            return None
        if tuple(attention_mask.shape) != (batch, frames):
            raise ValueError(f"`{name}` must have shape ({batch}, {frames}); got {tuple(attention_mask.shape)}.")
        return attention_mask.bool()

    def _run(self, layer, h, mask):
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(layer, h, mask)
        return layer(h, mask)

    # ------------------------------------------------------------------------------------------ encode / decode
    def encode(
        self, x: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, return_dict: bool = True
    ) -> Union[AutoencoderKLOutput, Tuple[DiagonalGaussianDistribution]]:
        """Encode poses into the latent distribution.

        Args:
            x (`torch.Tensor` of shape `(batch, num_frames, feature_dim)`): (normalised) pose features; `num_frames`
                must be a multiple of `temporal_downsample_factor`.
            attention_mask (`torch.Tensor` of shape `(batch, num_frames)`, *optional*): True on real frames.
            return_dict (`bool`, *optional*, defaults to `True`): return an `AutoencoderKLOutput` instead of a tuple.

        Returns:
            `AutoencoderKLOutput` whose `latent_dist` is a diffusers `DiagonalGaussianDistribution` over latents of
            shape `(batch, N', J', C)` (its `parameters` are mean and logvar concatenated on dim 1, the layout that
            class splits). `latent_dist.kl()` sums over every latent element; `compute_loss` uses a masked mean.
        """
        if x.ndim != 3 or x.shape[-1] != self.spec.feature_dim:
            raise ValueError(
                f"`sample` must have shape (batch, num_frames, {self.spec.feature_dim}) for skeleton "
                f"{self.spec.name!r}; got {tuple(x.shape)}."
            )
        factor = self.temporal_downsample_factor
        if x.shape[1] == 0 or x.shape[1] % factor:
            raise ValueError(
                f"`sample` has {x.shape[1]} frames; the number of frames must be a positive multiple of {factor} "
                f"(the VAE's temporal downsampling). Pad the batch, e.g. PoseCollator(pad_to_multiple_of={factor})."
            )
        mask = self._check_mask(attention_mask, x.shape[0], x.shape[1])
        h = self.encoder_in(x).unflatten(-1, (self.num_nodes, -1))  # (B, N, J, D)
        h = _zero_padding(h, mask)
        for convs, pool, f in zip(self.encoder_convs, self.encoder_pools, self.config.temporal_downsample):
            for conv in convs:
                h = self._run(conv, h, mask)
            h = pool(h)
            mask = None if mask is None else mask[:, ::f]
            h = _zero_padding(h, mask)
        mean, logvar = self.encoder_out(h).chunk(2, dim=-1)
        posterior = DiagonalGaussianDistribution(torch.cat([mean, logvar], dim=1))
        if not return_dict:
            return (posterior,)
        return AutoencoderKLOutput(latent_dist=posterior)

    def decode(
        self,
        z: torch.Tensor,
        num_frames: Optional[int] = None,
        attention_mask: Optional[torch.Tensor] = None,
        return_dict: bool = True,
    ) -> Union[DecoderOutput, Tuple[torch.Tensor]]:
        """Decode latents (already divided by `scaling_factor`) into pose features.

        Args:
            z (`torch.Tensor` of shape `(batch, N', J', C)`): latents, `(J', C)` = `(latent_num_joints,
                latent_channels)`.
            num_frames (`int`, *optional*): keep the first `num_frames` of the `N' * temporal_downsample_factor`
                decoded frames (a predicted length that is not a multiple of the factor).
            attention_mask (`torch.Tensor` of shape `(batch, N')`, *optional*): True on real latent frames.
            return_dict (`bool`, *optional*, defaults to `True`): return a `DecoderOutput` instead of a tuple.

        Returns:
            `DecoderOutput` with `sample` of shape `(batch, num_frames, feature_dim)`.
        """
        expected = (self.latent_num_joints, self.latent_channels)
        if z.ndim != 4 or tuple(z.shape[2:]) != expected:
            raise ValueError(
                f"`z` must have shape (batch, num_latent_frames, {expected[0]}, {expected[1]}); got {tuple(z.shape)}."
            )
        mask = self._check_mask(attention_mask, z.shape[0], z.shape[1])
        total = z.shape[1] * self.temporal_downsample_factor
        if num_frames is not None and not 0 < num_frames <= total:
            raise ValueError(f"`num_frames` must be in [1, {total}] for {z.shape[1]} latent frames; got {num_frames}.")
        h = _zero_padding(self.decoder_in(z), mask)
        factors = list(reversed(self.config.temporal_downsample))
        for unpool, convs, f in zip(self.decoder_unpools, self.decoder_convs, factors):
            mask = None if mask is None else mask.repeat_interleave(f, dim=1)
            h = unpool(h, mask)
            for conv in convs:
                h = self._run(conv, h, mask)
        x = self.decoder_out(h.flatten(-2))
        if num_frames is not None:
            x = x[:, :num_frames]
        if not return_dict:
            return (x,)
        return DecoderOutput(sample=x)

    def forward(
        self,
        sample: torch.Tensor,
        sample_posterior: bool = False,
        generator: Optional[torch.Generator] = None,
        attention_mask: Optional[torch.Tensor] = None,
        return_dict: bool = True,
    ) -> Union[DecoderOutput, Tuple[torch.Tensor]]:
        """Encode and decode `sample` (B, N, feature_dim); `sample_posterior` draws z instead of using the mean."""
        posterior = self.encode(sample, attention_mask=attention_mask).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, attention_mask=self.downsample_mask(attention_mask), return_dict=return_dict)

    @torch.no_grad()
    def _latent_moments(self, batches, use_mode: bool, generator):
        """Per-element (J', C) sum, sum of squares (float64) and count of real latent frames over `batches`."""
        total = total_sq = None
        count = 0.0
        for batch in batches:
            x, mask = batch if isinstance(batch, (tuple, list)) else (batch, None)
            dist = self.encode(x, attention_mask=mask).latent_dist
            z = (dist.mode() if use_mode else dist.sample(generator=generator)).double()
            w = torch.ones(z.shape[:2], dtype=z.dtype, device=z.device)
            if mask is not None:
                w = self.downsample_mask(mask).to(z.dtype)
            w = w[:, :, None, None]
            s, sq = (z * w).sum((0, 1)), (z * z * w).sum((0, 1))
            total = s if total is None else total + s
            total_sq = sq if total_sq is None else total_sq + sq
            count += float(w.sum())
        if count < 2:
            raise ValueError("`batches` holds no real latent frames; cannot estimate latent statistics.")
        return total, total_sq, count

    def estimate_scaling_factor(
        self,
        batches: Iterable[Union[torch.Tensor, Tuple[torch.Tensor, Optional[torch.Tensor]]]],
        use_mode: bool = True,
        generator: Optional[torch.Generator] = None,
        update_config: bool = True,
    ) -> float:
        """`1 / std` of the latents over real latent frames, as the latent-diffusion recipe prescribes.

        Args:
            batches (iterable): pose tensors (B, N, feature_dim), or `(poses, attention_mask)` pairs.
            use_mode (`bool`, *optional*, defaults to `True`): use the posterior mean (else a sample).
            generator (`torch.Generator`, *optional*): for posterior samples when `use_mode=False`.
            update_config (`bool`, *optional*, defaults to `True`): also write it to `config.scaling_factor`.

        Returns:
            The scaling factor (`float`).
        """
        factor = self._scaling_factor_from_moments(*self._latent_moments(batches, use_mode, generator))
        if update_config:
            self.register_to_config(scaling_factor=factor)
        return factor

    @staticmethod
    def _scaling_factor_from_moments(total: torch.Tensor, total_sq: torch.Tensor, count: float) -> float:
        count = count * total.numel()
        mean = float(total.sum()) / count
        return 1.0 / math.sqrt(max(float(total_sq.sum()) / count - mean * mean, 1e-12))

    def estimate_latent_statistics(
        self,
        batches: Iterable[Union[torch.Tensor, Tuple[torch.Tensor, Optional[torch.Tensor]]]],
        use_mode: bool = True,
        generator: Optional[torch.Generator] = None,
        update_config: bool = True,
        min_std: float = 1e-4,
    ) -> Tuple[List[float], List[float]]:
        """Per-element latent mean and std (J' * C values each, joint-major) over real latent frames.

        With `update_config` they become `config.latents_mean` / `config.latents_std`, so `scale_latents`
        standardises every atomic joint and channel separately (`min_std` floors channels that never move);
        `config.scaling_factor` is set from the same pass, exactly as `estimate_scaling_factor` would set it.

        Returns:
            `(latents_mean, latents_std)` as lists of floats.
        """
        total, total_sq, count = self._latent_moments(batches, use_mode, generator)
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(0).sqrt().clamp_min(min_std)
        mean_l, std_l = [float(v) for v in mean.flatten()], [float(v) for v in std.flatten()]
        if update_config:
            self._set_latent_statistics(mean_l, std_l)
            factor = self._scaling_factor_from_moments(total, total_sq, count)
            self.register_to_config(latents_mean=mean_l, latents_std=std_l, scaling_factor=factor)
        return mean_l, std_l

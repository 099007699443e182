"""MaDiS's sign tokenizer: SOKE's decoupled part-wise VQ-VAE (MaDiS Sec. 3.1, SOKE), as a diffusers model.

Three independent VQ-VAEs, one per body part `p in {b, l, r}` (upper body with jaw and expression, left hand, right
hand), each a 1D convolutional encoder E_p over time, a codebook C_p and a decoder D_p:

    poses (B, T, F) --split by part--> x_p (B, T, F_p) --E_p--> z_p (B, T/4, code_dim)
      --nearest code of C_p--> ids_p (B, T/4), q_p --D_p--> x_p' (B, T, F_p) --merge--> poses' (B, T, F)

* Parts come from the skeleton's `SkeletonSpec`: the `body` and `face` joints form the first part, `left_hand`
  and `right_hand` the other two. For `smplx133` that is the 30 upper-body numbers plus jaw (3) and expression (10)
  = 43 features, and 45 per hand; every feature belongs to exactly one part.
* The encoder downsamples time 4x with two stride-2 convolutions (each followed by dilated residual blocks); the
  decoder mirrors it with nearest-neighbour upsampling and convolutions. Module names follow the T2M-GPT / SOKE /
  MaDiS release (`encoder.model.<i>...`, `Resnet1D.model.<j>.conv1/conv2`, quantiser buffer `codebook`), so a
  released part VQ-VAE's weights map onto `encoders.<p>`, `decoders.<p>` and `quantizers.<p>.codebook` key by key
  (with `reverse_encoder_dilations=True`: their encoders run the dilations wide to narrow; `hf_sign.convert`).
* Codebooks are updated by exponential moving averages (EMA) of the encodings assigned to each code, not by
  gradients: in training mode every forward pass moves a code toward the mean of its assigned encodings. A code
  whose EMA usage falls below `dead_code_threshold` is re-initialised to a random encoder output of the batch, so
  codes that nothing chose come back where the data is. Gradients pass the quantiser by the straight-through
  estimator (`z + (q - z).detach()`), and a commitment loss `||z - sg(q)||^2` keeps the encoder near its codes.
* Lengths: T need not be a multiple of 4. `encode` pads the end with zero frames (treated as padding) up to the next
  multiple of 4, so it returns ceil(T / 4) ids per part; `decode` returns 4 T' frames (T rounded up); `forward` cuts
  the reconstruction back to T frames.
* Padding: with `mask` (B, T) (True = real frame) padded frames are zeroed at the input, excluded from the
  reconstruction loss, and latent positions whose 4-frame window holds no real frame take no part in the
  commitment loss, the perplexity or the codebook updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

from ...skeletons.spec import get_skeleton

__all__ = ["PartVQVAE", "PartVQVAEOutput", "EMAQuantizer", "part_feature_indices"]

PART_NAMES = ("body", "left_hand", "right_hand")


def part_feature_indices(skeleton: str) -> List[List[int]]:
    """Feature indices of the three tokenizer parts of `skeleton`: body + face, left hand, right hand.

    Taken from the `SkeletonSpec`'s `parts` (feature joints) and `joint_slices` (their slices of the feature vector),
    in increasing feature order within each part.
    """
    spec = get_skeleton(skeleton)
    slices = spec.joint_slices
    joints = [
        list(spec.parts.get("body", ())) + list(spec.parts.get("face", ())),
        list(spec.parts.get("left_hand", ())),
        list(spec.parts.get("right_hand", ())),
    ]
    return [sorted(i for j in js for i in range(slices[j].start, slices[j].stop)) for js in joints]


@dataclass
class PartVQVAEOutput(BaseOutput):
    """Output of `PartVQVAE.forward`.

    Args:
        sample (`torch.Tensor` of shape `(B, T, feature_dim)`): the reconstruction.
        loss (`torch.Tensor`): `recon_loss + commitment_weight * commit_loss` (scalar).
        recon_loss (`torch.Tensor`): smooth-L1 reconstruction error over real frames (scalar).
        commit_loss (`torch.Tensor`): commitment loss summed over the parts (scalar).
        ids (`List[torch.LongTensor]`): code ids per part, each `(B, ceil(T / 4))`.
        perplexity (`torch.Tensor` of shape `(num_parts,)`): codebook perplexity per part over real positions.
    """

    sample: torch.Tensor = None
    loss: torch.Tensor = None
    recon_loss: torch.Tensor = None
    commit_loss: torch.Tensor = None
    ids: List[torch.LongTensor] = None
    perplexity: torch.Tensor = None


class ResBlock1D(nn.Module):
    """Dilated residual block: ReLU -> conv k=3 (dilation d) -> ReLU -> conv k=1, plus the input."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class ResStack1D(nn.Module):
    """Residual blocks with dilations 1, 3, 9, ... (the decoder runs them from wide to narrow)."""

    def __init__(self, channels: int, num_res_blocks: int, reverse: bool = False):
        super().__init__()
        dilations = [3**i for i in range(num_res_blocks)]
        self.model = nn.Sequential(*[ResBlock1D(channels, d) for d in (dilations[::-1] if reverse else dilations)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PartEncoder(nn.Module):
    """(B, F_p, T) -> (B, code_dim, T / 2**num_down): conv, then per stage a stride-2 conv and residual blocks
    (dilations 1, 3, 9, ...; from wide to narrow with `reverse=True`)."""

    def __init__(
        self, in_dim: int, hidden_dim: int, code_dim: int, num_down: int, num_res_blocks: int, reverse: bool = False
    ):
        super().__init__()
        layers: List[nn.Module] = [nn.Conv1d(in_dim, hidden_dim, 3, padding=1), nn.ReLU()]
        for _ in range(num_down):
            stride_conv = nn.Conv1d(hidden_dim, hidden_dim, 4, stride=2, padding=1)
            layers.append(nn.Sequential(stride_conv, ResStack1D(hidden_dim, num_res_blocks, reverse=reverse)))
        layers += [nn.Conv1d(hidden_dim, code_dim, 3, padding=1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PartDecoder(nn.Module):
    """(B, code_dim, T') -> (B, F_p, T' * 2**num_up): per stage residual blocks, 2x nearest upsampling and a conv."""

    def __init__(self, out_dim: int, hidden_dim: int, code_dim: int, num_up: int, num_res_blocks: int):
        super().__init__()
        layers: List[nn.Module] = [nn.Conv1d(code_dim, hidden_dim, 3, padding=1), nn.ReLU()]
        for _ in range(num_up):
            res = ResStack1D(hidden_dim, num_res_blocks, reverse=True)
            up = nn.Upsample(scale_factor=2, mode="nearest")
            layers.append(nn.Sequential(res, up, nn.Conv1d(hidden_dim, hidden_dim, 3, padding=1)))
        layers += [
            nn.Conv1d(hidden_dim, hidden_dim, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(hidden_dim, out_dim, 3, padding=1),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class EMAQuantizer(nn.Module):
    """Nearest-code quantiser with an EMA-updated codebook and dead-code reset.

    Buffers (saved with the model): `codebook` (K, D), `ema_cluster_size` (K) and `ema_embed_sum` (K, D). They start
    at zero usage, so the first training step re-initialises every code from the batch's encodings.
    """

    def __init__(self, codebook_size: int, code_dim: int, decay: float, dead_code_threshold: float, eps: float = 1e-5):
        super().__init__()
        self.codebook_size, self.decay, self.dead_code_threshold, self.eps = (
            codebook_size,
            decay,
            dead_code_threshold,
            eps,
        )
        self.register_buffer("codebook", torch.randn(codebook_size, code_dim))
        self.register_buffer("ema_cluster_size", torch.zeros(codebook_size))
        self.register_buffer("ema_embed_sum", torch.zeros(codebook_size, code_dim))

    def nearest(self, z: torch.Tensor) -> torch.LongTensor:
        """Ids of the nearest codes (squared Euclidean distance) for encodings z (N, D)."""
        codebook = self.codebook.to(z.dtype)
        distances = z.pow(2).sum(-1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(-1)[None]
        return distances.argmin(-1)

    @torch.no_grad()
    def update(self, z: torch.Tensor, ids: torch.LongTensor) -> None:
        """One EMA step on the real encodings z (N, D) with their ids (N), then dead-code reset."""
        z = z.float()
        onehot = F.one_hot(ids, self.codebook_size).float()
        self.ema_cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.ema_embed_sum.mul_(self.decay).add_(onehot.t() @ z, alpha=1 - self.decay)
        # Laplace smoothing keeps the division finite for codes that were never chosen
        n = self.ema_cluster_size.sum()
        size = (self.ema_cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.codebook.copy_((self.ema_embed_sum / size.clamp_min(self.eps)[:, None]).to(self.codebook.dtype))
        dead = self.ema_cluster_size < self.dead_code_threshold
        if dead.any() and z.shape[0] > 0:
            picks = torch.randint(0, z.shape[0], (int(dead.sum()),), device=z.device)
            self.codebook[dead] = z[picks].to(self.codebook.dtype)
            # a reset code starts with unit usage, so its EMA mean is the encoding it was reset to
            self.ema_cluster_size[dead] = 1.0
            self.ema_embed_sum[dead] = z[picks]

    def forward(
        self, z: torch.Tensor, valid: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.LongTensor, torch.Tensor, torch.Tensor]:
        """z (B, T', D), valid (B, T') bool -> (straight-through q, ids, commitment loss, perplexity)."""
        ids = self.nearest(z.reshape(-1, z.shape[-1])).view(z.shape[:-1])
        if self.training:
            self.update(z.detach()[valid], ids[valid])
        q = self.codebook.to(z.dtype)[ids]
        weight = valid.to(z.dtype)[..., None]
        commit = ((z - q.detach()).pow(2) * weight).sum() / (weight.sum() * z.shape[-1]).clamp_min(1)
        usage = torch.bincount(ids[valid], minlength=self.codebook_size).float()
        probs = usage / usage.sum().clamp_min(1)
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        return z + (q - z).detach(), ids, commit, perplexity


class PartVQVAE(ModelMixin, ConfigMixin):
    r"""Part-wise VQ-VAE sign tokenizer of MaDiS / SOKE: poses (B, T, feature_dim) <-> three id sequences (B, T/4).

    The paper's tokenizer (SOKE) uses 96 / 192 / 192 codes of dimension 512 for upper body / left hand / right hand,
    encoder width 512 and 3 residual blocks per stage; the defaults here keep the codebook sizes and shrink the
    widths so that it trains on a CPU.

    Args:
        skeleton (`str`, *optional*, defaults to `"smplx133"`): `SkeletonSpec` name; fixes the feature dimension and,
            unless `part_dims` is given, the parts (body + face, left hand, right hand).
        part_dims (`List[List[int]]`, *optional*, defaults to `None`): feature indices of each part, overriding the
            skeleton's; they must cover every feature index exactly once. `None` takes them from the skeleton
            (`part_feature_indices`): 43 / 45 / 45 features for `smplx133`.
        codebook_sizes (`Tuple[int]`, *optional*, defaults to `(96, 192, 192)`): codes per part (the paper's sizes).
        code_dim (`int`, *optional*, defaults to 64): dimension of a code (paper: 512).
        hidden_dim (`int`, *optional*, defaults to 128): channels of the encoders and decoders (paper: 512).
        num_res_blocks (`int`, *optional*, defaults to 2): dilated residual blocks per temporal stage (paper: 3).
        downsample_rate (`int`, *optional*, defaults to 4): temporal downsampling, a power of two (4: two stride-2
            convolutions).
        commitment_weight (`float`, *optional*, defaults to 0.02): weight of the commitment loss in `loss`.
        ema_decay (`float`, *optional*, defaults to 0.99): decay of the codebooks' moving averages.
        dead_code_threshold (`float`, *optional*, defaults to 1.0): a code whose EMA usage (expected assignments per
            batch) falls below it is reset to a random encoder output of the batch; 0 disables resets.
        reverse_encoder_dilations (`bool`, *optional*, defaults to `False`): run each encoder stage's residual blocks
            from the widest dilation to the narrowest, as the decoder does. The T2M-GPT / SOKE / MaDiS releases
            build their encoders this way (block `j` of a stage has dilation `3**(num_res_blocks - 1 - j)`), so
            their weights need it; `False` runs the encoder from narrow to wide.
    """

    @register_to_config
    def __init__(
        self,
        skeleton: str = "smplx133",
        part_dims: Optional[Sequence[Sequence[int]]] = None,
        codebook_sizes: Tuple[int, ...] = (96, 192, 192),
        code_dim: int = 64,
        hidden_dim: int = 128,
        num_res_blocks: int = 2,
        downsample_rate: int = 4,
        commitment_weight: float = 0.02,
        ema_decay: float = 0.99,
        dead_code_threshold: float = 1.0,
        reverse_encoder_dilations: bool = False,
    ):
        super().__init__()
        self.feature_dim = get_skeleton(skeleton).feature_dim
        parts = [list(p) for p in part_dims] if part_dims is not None else part_feature_indices(skeleton)
        if sorted(i for p in parts for i in p) != list(range(self.feature_dim)) or any(len(p) == 0 for p in parts):
            raise ValueError(
                f"`part_dims` must be non-empty parts covering each of the {self.feature_dim} feature indices of "
                f"skeleton {skeleton!r} exactly once."
            )
        if len(codebook_sizes) != len(parts):
            raise ValueError(
                f"`codebook_sizes` needs one size per part ({len(parts)}); got {len(codebook_sizes)}: {codebook_sizes}"
            )
        num_down = int(round(math.log2(downsample_rate))) if downsample_rate >= 1 else -1
        if num_down < 0 or 2**num_down != downsample_rate:
            raise ValueError(f"`downsample_rate` must be a power of two; got {downsample_rate}.")
        self.num_parts = len(parts)
        for p, idx in enumerate(parts):
            # long buffers are never cast by `torch_dtype`; not saved because the config rebuilds them
            self.register_buffer(f"part_index_{p}", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.encoders = nn.ModuleList(
            [
                PartEncoder(len(p), hidden_dim, code_dim, num_down, num_res_blocks, reverse=reverse_encoder_dilations)
                for p in parts
            ]
        )
        self.decoders = nn.ModuleList(
            [PartDecoder(len(p), hidden_dim, code_dim, num_down, num_res_blocks) for p in parts]
        )
        self.quantizers = nn.ModuleList(
            [EMAQuantizer(int(k), code_dim, ema_decay, dead_code_threshold) for k in codebook_sizes]
        )

    def part_index(self, p: int) -> torch.LongTensor:
        """Feature indices (into the last axis of the poses) of part `p`."""
        return getattr(self, f"part_index_{p}")

    # ------------------------------------------------------------------ helpers
    def _prepare(
        self, poses: torch.Tensor, mask: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Checks the input; returns padded poses (B, T4, F), frame mask (B, T4) and latent mask (B, T4 / rate)."""
        if poses.ndim != 3 or poses.shape[-1] != self.feature_dim:
            raise ValueError(f"`poses` must have shape (B, T, {self.feature_dim}); got {tuple(poses.shape)}.")
        b, t, _ = poses.shape
        if t == 0:
            raise ValueError("`poses` must hold at least one frame; got T = 0.")
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=poses.device)
        elif mask.shape != (b, t):
            raise ValueError(f"`mask` must have shape (B, T) = {(b, t)}; got {tuple(mask.shape)}.")
        mask = mask.bool()
        rate = self.config.downsample_rate
        pad = (-t) % rate
        poses = F.pad(poses * mask[..., None].to(poses.dtype), (0, 0, 0, pad))
        mask = F.pad(mask, (0, pad), value=False)
        latent_mask = mask.view(b, -1, rate).any(-1)
        return poses, mask, latent_mask

    def _encode_parts(self, poses: torch.Tensor) -> List[torch.Tensor]:
        """Encodings z_p (B, T', code_dim) of the padded poses."""
        return [
            enc(poses[..., self.part_index(p)].transpose(1, 2)).transpose(1, 2) for p, enc in enumerate(self.encoders)
        ]

    def _decode_parts(self, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Merge of the decoded parts: code vectors per part (B, T', code_dim) -> poses (B, rate * T', F)."""
        outs = [dec(c.transpose(1, 2)).transpose(1, 2) for dec, c in zip(self.decoders, codes)]
        poses = outs[0].new_zeros(outs[0].shape[0], outs[0].shape[1], self.feature_dim)
        for p, out in enumerate(outs):
            poses[..., self.part_index(p)] = out
        return poses

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def encode(self, poses: torch.Tensor, mask: Optional[torch.Tensor] = None) -> List[torch.LongTensor]:
        """Poses (B, T, feature_dim) -> code ids per part, each (B, ceil(T / downsample_rate)).

        The sequence is zero-padded at the end to a multiple of `downsample_rate`. Never updates the codebooks.
        """
        poses, _, _ = self._prepare(poses, mask)
        return [
            q.nearest(z.reshape(-1, z.shape[-1])).view(z.shape[:-1])
            for q, z in zip(self.quantizers, self._encode_parts(poses))
        ]

    def codebook(self, part: int) -> torch.Tensor:
        """Code vectors (codebook_sizes[part], code_dim) of part `part` (0 body, 1 left hand, 2 right hand)."""
        if not 0 <= part < self.num_parts:
            raise ValueError(f"`part` must be in [0, {self.num_parts}); got {part}.")
        return self.quantizers[part].codebook

    def decode_latents(self, latents: Sequence[torch.Tensor]) -> torch.Tensor:
        """Continuous code vectors per part, each (B, T', code_dim) -> poses (B, downsample_rate * T', feature_dim).

        `decode(ids)` is `decode_latents([codebook(p)[ids[p]] ...])`; the language model's physical-space loss feeds
        its projected hidden states here instead of code vectors.
        """
        if not isinstance(latents, (list, tuple)) or len(latents) != self.num_parts:
            got = len(latents) if isinstance(latents, (list, tuple)) else type(latents).__name__
            raise ValueError(f"`latents` must be a list of {self.num_parts} tensors (one per part); got {got}.")
        code_dim = self.config.code_dim
        if any(x.ndim != 3 or x.shape[-1] != code_dim or x.shape[:2] != latents[0].shape[:2] for x in latents):
            raise ValueError(
                f"`latents` must all have shape (B, T', {code_dim}); got {[tuple(x.shape) for x in latents]}."
            )
        return self._decode_parts(latents)

    def decode(self, ids: Sequence[torch.Tensor]) -> torch.Tensor:
        """Code ids per part, each (B, T') -> poses (B, downsample_rate * T', feature_dim)."""
        if not isinstance(ids, (list, tuple)) or len(ids) != self.num_parts:
            got = len(ids) if isinstance(ids, (list, tuple)) else type(ids).__name__
            raise ValueError(f"`ids` must be a list of {self.num_parts} tensors (one per part); got {got}.")
        if any(i.ndim != 2 or i.shape != ids[0].shape for i in ids):
            raise ValueError(f"`ids` must all have the same shape (B, T'); got {[tuple(i.shape) for i in ids]}.")
        codes = []
        for p, (i, q) in enumerate(zip(ids, self.quantizers)):
            if i.is_floating_point() or (i.numel() and (i.min() < 0 or i.max() >= q.codebook_size)):
                raise ValueError(f"`ids[{p}]` must be integer code ids in [0, {q.codebook_size}).")
            codes.append(q.codebook[i.long()].to(self.dtype))
        return self._decode_parts(codes)

    def forward(
        self, poses: torch.Tensor, mask: Optional[torch.Tensor] = None, return_dict: bool = True
    ) -> PartVQVAEOutput:
        """Reconstruct poses (B, T, feature_dim) through the codebooks; in training mode the codebooks are updated.

        Args:
            poses (`torch.Tensor` of shape `(B, T, feature_dim)`): pose features.
            mask (`torch.BoolTensor` of shape `(B, T)`, *optional*): True for real frames; all real by default.
            return_dict (`bool`, *optional*, defaults to `True`): return a `PartVQVAEOutput` instead of a tuple.
        """
        t = poses.shape[1] if poses.ndim == 3 else 0
        # 1. Check the input, zero padded frames, pad T to a multiple of the downsampling rate
        padded, frame_mask, latent_mask = self._prepare(poses, mask)

        # 2. Encode each part
        zs = self._encode_parts(padded)

        # 3. Quantise (EMA codebook update and dead-code reset in training mode; straight-through gradients)
        quantized, ids, commits, perplexities = [], [], [], []
        for q, z in zip(self.quantizers, zs):
            zq, i, commit, perplexity = q(z, latent_mask)
            quantized.append(zq)
            ids.append(i)
            commits.append(commit)
            perplexities.append(perplexity)

        # 4. Decode and merge the parts, back to T frames
        sample = self._decode_parts(quantized)
        frame_mask, padded = frame_mask[:, :t], padded[:, :t]
        sample = sample[:, :t]

        # 5. Losses: smooth-L1 over real frames, plus the weighted commitment
        weight = frame_mask.to(sample.dtype)[..., None]
        recon = (F.smooth_l1_loss(sample, padded, reduction="none") * weight).sum()
        recon_loss = recon / (weight.sum() * self.feature_dim).clamp_min(1)
        commit_loss = torch.stack(commits).sum()
        loss = recon_loss + self.config.commitment_weight * commit_loss
        perplexity = torch.stack(perplexities)

        if not return_dict:
            return (sample, loss, recon_loss, commit_loss, ids, perplexity)
        return PartVQVAEOutput(
            sample=sample, loss=loss, recon_loss=recon_loss, commit_loss=commit_loss, ids=ids, perplexity=perplexity
        )

"""Building blocks of Sign-SALD's skeleton-aware VAE (Shen et al., Sec. 2.1, eqs. 1-2), on (B, N, J, C) tensors.

* `JointLinear`: a separate linear layer per joint (the joint-specific MLPs at both ends of the VAE).
* `STConv` (eq. 1): graph convolution over the skeleton plus a temporal convolution, LayerNorm, activation, residual.
* `STPool` (eq. 2) / `STUnpool`: skeletal pooling to the atomic joints (average or linear, see `STPool`) and strided
  temporal pooling, and their mirror in the decoder.

`SkeletonVAE` (`skeleton_vae.py`) assembles them; see its module docstring for the whole encoder and decoder.

Constant tensors (the adjacency, the group membership) are non-persistent buffers created in the default dtype, like
the parameters: `from_pretrained(..., torch_dtype=torch.bfloat16)` builds the model under that default dtype (and
loads only the state dict), and `.to(dtype)` moves floating buffers with the parameters, so both give one dtype.
"""

from __future__ import annotations

import itertools
import math
from typing import List, Optional, Sequence, Tuple

import torch
from diffusers.models.activations import get_activation
from torch import nn

__all__ = ["JointLinear", "STConv", "STPool", "STUnpool"]


class JointLinear(nn.Module):
    """A separate linear layer per joint: joint `j` maps its `in_dims[j]` inputs to `out_dims[j]` outputs.

    Input and output are flat per-frame vectors (`(..., sum(in_dims))` -> `(..., sum(out_dims))`), joints laid out
    one after the other. Joints with the same (in, out) widths share one batched weight tensor (one einsum per
    group), so the parameter count is exactly that of `len(in_dims)` separate `nn.Linear` layers.
    """

    def __init__(self, in_dims: Sequence[int], out_dims: Sequence[int]):
        super().__init__()
        if len(in_dims) != len(out_dims):
            raise ValueError(f"`in_dims` ({len(in_dims)}) and `out_dims` ({len(out_dims)}) need one entry per joint.")
        in_off = [0, *itertools.accumulate(in_dims)]
        out_off = [0, *itertools.accumulate(out_dims)]
        groups = {}
        for j, key in enumerate(zip(in_dims, out_dims)):
            groups.setdefault(key, []).append(j)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.group_shapes: List[Tuple[int, int, int]] = []
        out_order = []
        for g, ((i, o), joints) in enumerate(groups.items()):
            bound = 1.0 / math.sqrt(i)  # nn.Linear's default initialisation
            self.weights.append(nn.Parameter(torch.empty(len(joints), i, o).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(len(joints), o).uniform_(-bound, bound)))
            cols = [c for j in joints for c in range(in_off[j], in_off[j] + i)]
            self.register_buffer(f"in_index_{g}", torch.tensor(cols, dtype=torch.long), persistent=False)
            self.group_shapes.append((len(joints), i, o))
            out_order += [c for j in joints for c in range(out_off[j], out_off[j] + o)]
        identity = out_order == list(range(len(out_order)))
        self.register_buffer(
            "out_inverse", None if identity else torch.argsort(torch.tensor(out_order)), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for g, (n, i, o) in enumerate(self.group_shapes):
            xg = x.index_select(-1, getattr(self, f"in_index_{g}")).unflatten(-1, (n, i))
            yg = torch.einsum("...ji,jio->...jo", xg, self.weights[g]) + self.biases[g]
            outs.append(yg.flatten(-2))
        y = outs[0] if len(outs) == 1 else torch.cat(outs, -1)
        return y if self.out_inverse is None else y.index_select(-1, self.out_inverse)


def _normalized_adjacency(adjacency: torch.Tensor) -> torch.Tensor:
    """D^-1/2 (A + I) D^-1/2 of a binary adjacency (self-loops added if missing)."""
    a = ((adjacency + torch.eye(adjacency.shape[0])) > 0).float()
    d_inv_sqrt = a.sum(1).rsqrt()
    return d_inv_sqrt[:, None] * a * d_inv_sqrt[None, :]


def _zero_padding(h: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    return h if mask is None else h * mask[:, :, None, None].to(h.dtype)


class STConv(nn.Module):
    """Skeletal-temporal convolution (eq. 1): `act(LN(F_skel(h) + F_temp(h))) + residual(h)` on (B, N, J, C).

    `F_skel` is a graph convolution `(A * M) h W + b_j` (normalised adjacency `A`, learnable edge importance `M`
    initialised to ones, shared weight `W`, per-joint bias `b_j`); `F_temp` is a 1-D convolution along time with
    zero padding, applied to every joint's sequence with shared weights.
    """

    def __init__(
        self, adjacency: torch.Tensor, in_dim: int, out_dim: int, kernel_size: int, dropout: float, act_fn: str
    ):
        super().__init__()
        num_joints = adjacency.shape[0]
        self.register_buffer("adjacency", adjacency.to(torch.get_default_dtype(), copy=True), persistent=False)
        self.edge_importance = nn.Parameter(torch.ones(num_joints, num_joints))
        self.graph = nn.Linear(in_dim, out_dim, bias=False)
        self.joint_bias = nn.Parameter(torch.zeros(num_joints, out_dim))
        self.temporal = nn.Conv1d(in_dim, out_dim, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(out_dim)
        self.act = get_activation(act_fn)
        self.dropout = nn.Dropout(dropout)
        self.residual = nn.Identity() if in_dim == out_dim else nn.Linear(in_dim, out_dim)

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, n, j, _ = h.shape
        skel = self.graph(torch.einsum("ij,bnjc->bnic", self.adjacency * self.edge_importance, h)) + self.joint_bias
        temp = self.temporal(h.permute(0, 2, 3, 1).reshape(b * j, -1, n))  # (B*J, C, N): time on the last axis
        temp = temp.reshape(b, j, -1, n).permute(0, 3, 1, 2)
        out = self.dropout(self.act(self.norm(skel + temp))) + self.residual(h)
        return _zero_padding(out, mask)


class STPool(nn.Module):
    """Skeletal-temporal pooling (eq. 2): `P_temp(P_skel(h))`, (B, N, J, C) -> (B, N / factor, J', C).

    `P_skel` (`pooling` is the (J', J) group average; None for no skeletal pooling) is, with `mode="average"`, a
    learnable (J', J) matrix restricted to the group assignment and initialised to the group average; with
    `mode="linear"`, every member joint j of group g gets its own (C, C) matrix W_j and the group's feature is
    sum_j h_j W_j + b_g, a linear map of the concatenated members' features, initialised to the group average
    (W_j = I / |g|). The average squeezes a 16-joint hand into C numbers by one scalar weight per joint; the linear
    map can keep every finger in its own subspace. `P_temp` is a strided convolution with kernel = stride = `factor`.
    """

    def __init__(self, dim: int, factor: int, pooling: Optional[torch.Tensor] = None, mode: str = "average"):
        super().__init__()
        self.skeletal = None
        self.mode = mode
        if pooling is not None:
            pooling = pooling.to(torch.get_default_dtype(), copy=True)
            self.register_buffer("membership", (pooling > 0).to(pooling.dtype), persistent=False)
            if mode == "linear":
                scale = pooling.sum(0)  # each joint's share of its group's average, 1 / |g|
                identities = torch.eye(dim).expand(len(scale), dim, dim)
                self.skeletal = nn.Parameter(scale[:, None, None] * identities)
                self.bias = nn.Parameter(torch.zeros(pooling.shape[0], dim))
            else:
                self.skeletal = nn.Parameter(pooling)
        self.temporal = nn.Conv1d(dim, dim, factor, stride=factor)

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.skeletal is not None and self.mode == "linear":
            h = torch.einsum("bnjc,jcd->bnjd", h, self.skeletal)  # every member's own map ...
            h = torch.einsum("gj,bnjd->bngd", self.membership, h) + self.bias  # ... summed over its group
        elif self.skeletal is not None:
            h = torch.einsum("gj,bnjc->bngc", self.skeletal * self.membership, h)
        b, n, j, c = h.shape
        h = self.temporal(h.permute(0, 2, 3, 1).reshape(b * j, c, n))
        return h.reshape(b, j, c, -1).permute(0, 3, 1, 2)


class STUnpool(nn.Module):
    """Skeletal-temporal unpooling, the inverse of `STPool`: (B, N', J', C) -> (B, N' * factor, J, C).

    Time is upsampled by a transposed convolution (kernel = stride = `factor`). Joints are restored, with
    `mode="average"`, by the transpose of the group assignment (learnable, initialised to copy each atomic joint to its
    member joints); with `mode="linear"`, by a (C, C) matrix per member joint applied to its group's feature
    (initialised to the identity, i.e. the same copy). Both add a learnable per-joint embedding.
    """

    def __init__(self, dim: int, factor: int, pooling: Optional[torch.Tensor] = None, mode: str = "average"):
        super().__init__()
        self.temporal = nn.ConvTranspose1d(dim, dim, factor, stride=factor)
        self.skeletal = None
        self.mode = mode
        if pooling is not None:
            # contiguous: a transposed view (and its clone) is not, and safetensors refuses to save it
            membership = (pooling > 0).to(torch.get_default_dtype()).t().contiguous()  # (J, J')
            self.register_buffer("membership", membership, persistent=False)
            if mode == "linear":
                self.skeletal = nn.Parameter(torch.eye(dim).expand(membership.shape[0], dim, dim).clone())
            else:
                self.skeletal = nn.Parameter(membership.clone())
            self.joint_embedding = nn.Parameter(torch.zeros(membership.shape[0], dim))

    def forward(self, h: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, n, j, c = h.shape
        h = self.temporal(h.permute(0, 2, 3, 1).reshape(b * j, c, n))
        h = h.reshape(b, j, c, -1).permute(0, 3, 1, 2)
        if self.skeletal is not None and self.mode == "linear":
            members = torch.einsum("jg,bngc->bnjc", self.membership, h)  # every joint gets its group's feature
            h = torch.einsum("bnjc,jcd->bnjd", members, self.skeletal) + self.joint_embedding
        elif self.skeletal is not None:
            h = torch.einsum("jg,bngc->bnjc", self.skeletal * self.membership, h) + self.joint_embedding
        return _zero_padding(h, mask)

"""`PoseNormalizer`: per-feature standardisation whose statistics travel with the model.

It is a diffusers `ModelMixin, ConfigMixin` holding `mean` and `std` as buffers, so a pipeline saves
it like any other component (`config.json` + `diffusion_pytorch_model.safetensors`) and
`from_pretrained` restores it bit for bit; pipelines call `denormalize` so users always get poses
in the dataset's units.
"""

from __future__ import annotations

from typing import Iterable, Optional, Union

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

ArrayLike = Union[np.ndarray, torch.Tensor]


class PoseNormalizer(ModelMixin, ConfigMixin):
    """Standardises pose features: `(x - mean) / std`, statistics fitted on the train split.

    Args:
        feature_dim (`int`): number of features per frame (133 for `smplx133`).
        representation (`str`, *optional*, defaults to `""`): `SkeletonSpec` name the statistics belong to.
        eps (`float`, *optional*, defaults to `1e-4`): floor for `std`. Features that never move in the
            train split (e.g. a joint a corpus does not animate) would otherwise divide by zero; with the
            floor they pass through scaled by `1/eps` around a constant and map back exactly.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, feature_dim: int, representation: str = "", eps: float = 1e-4):
        super().__init__()
        if not isinstance(feature_dim, int) or feature_dim <= 0:
            raise ValueError(f"`feature_dim` must be a positive int; got {feature_dim!r}.")
        if not eps > 0:
            raise ValueError(f"`eps` must be > 0; got {eps!r}.")
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("std", torch.ones(feature_dim))
        self.register_buffer("num_frames_fitted", torch.zeros((), dtype=torch.int64))

    @property
    def is_fitted(self) -> bool:
        return int(self.num_frames_fitted) > 0

    @classmethod
    def fit(
        cls,
        sequences: Iterable[ArrayLike],
        feature_dim: Optional[int] = None,
        representation: str = "",
        eps: float = 1e-4,
    ) -> "PoseNormalizer":
        """Fit mean/std over every frame of `sequences` (each (num_frames, feature_dim)).

        Statistics accumulate in float64 (sum and sum of squares per feature), so the result does not
        depend on how the corpus is chunked and stays accurate for long corpora.
        """
        total = None
        total_sq = None
        count = 0
        for i, seq in enumerate(sequences):
            arr = np.asarray(seq.detach().cpu().numpy() if isinstance(seq, torch.Tensor) else seq, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] == 0:
                raise ValueError(f"`sequences[{i}]` must have shape (num_frames > 0, feature_dim); got {arr.shape}.")
            if feature_dim is None:
                feature_dim = arr.shape[1]
            if arr.shape[1] != feature_dim:
                raise ValueError(f"`sequences[{i}]` has {arr.shape[1]} features; expected {feature_dim}.")
            if not np.isfinite(arr).all():
                frame = int(np.argwhere(~np.isfinite(arr))[0, 0])
                raise ValueError(f"`sequences[{i}]` has NaN/inf at frame {frame}.")
            total = arr.sum(0) if total is None else total + arr.sum(0)
            total_sq = (arr**2).sum(0) if total_sq is None else total_sq + (arr**2).sum(0)
            count += arr.shape[0]
        if count == 0:
            raise ValueError("`sequences` is empty; PoseNormalizer.fit needs at least one frame.")
        mean = total / count
        var = np.maximum(total_sq / count - mean**2, 0.0)
        norm = cls(feature_dim=int(feature_dim), representation=representation, eps=eps)
        norm.mean.copy_(torch.from_numpy(mean).float())
        norm.std.copy_(torch.from_numpy(np.maximum(np.sqrt(var), eps)).float())
        norm.num_frames_fitted.fill_(count)
        return norm

    def _stats(self, x: ArrayLike):
        if x.shape[-1] != self.config.feature_dim:
            raise ValueError(f"`poses` must end in feature_dim={self.config.feature_dim}; got shape {tuple(x.shape)}.")
        if isinstance(x, torch.Tensor):
            return self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)
        return self.mean.numpy().astype(x.dtype, copy=False), self.std.numpy().astype(x.dtype, copy=False)

    def normalize(self, poses: ArrayLike) -> ArrayLike:
        """Dataset units -> standardised. numpy in, numpy out; torch in, torch out."""
        mean, std = self._stats(poses)
        return (poses - mean) / std

    def denormalize(self, poses: ArrayLike) -> ArrayLike:
        """Standardised -> dataset units (inverse of `normalize`)."""
        mean, std = self._stats(poses)
        return poses * std + mean

    def forward(self, poses: torch.Tensor) -> torch.Tensor:
        return self.normalize(poses)

"""Fréchet distance (FID) between two sets of evaluator embeddings.

Generated and reference pose sequences are embedded by an evaluator encoder trained on ground truth;
a Gaussian is fitted to each set (mean, unbiased covariance) and the Fréchet distance between the two
Gaussians is reported (Heusel et al. 2017), as Sign-SALD and Sign-MExD do for poses.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch

__all__ = ["fid", "frechet_distance_from_statistics", "gaussian_statistics"]


def _as_embeddings(x, field: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        x = np.asarray(x, dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise ValueError(f"`{field}` must be an (N, D) array of embeddings ({err}).") from None
    if x.ndim != 2:
        raise ValueError(f"`{field}` must have shape (num_samples, embedding_dim); got {x.shape}.")
    if x.shape[0] < 2:
        raise ValueError(f"`{field}` has {x.shape[0]} embedding(s); a covariance needs at least 2.")
    if x.shape[1] < 1:
        raise ValueError(f"`{field}` has embedding dimension 0.")
    if not np.isfinite(x).all():
        row = int(np.nonzero(~np.isfinite(x).all(1))[0][0])
        raise ValueError(f"`{field}` contains NaN or inf (first in row {row}).")
    return x


def gaussian_statistics(embeddings, field: str = "embeddings") -> Tuple[np.ndarray, np.ndarray]:
    """Mean `(D,)` and unbiased covariance `(D, D)` of an `(N, D)` set of embeddings (N >= 2)."""
    x = _as_embeddings(embeddings, field)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_statistics(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    `||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^(1/2))`, with the last trace computed
    as the sum of square roots of the eigenvalues of the symmetric PSD matrix `s1 sigma2 s1` (`s1` the PSD
    square root of `sigma1`), which has the same spectrum as `sigma1 sigma2`. Eigen-decompositions of
    symmetric matrices keep everything real and stable even for singular covariances (N <= D), where a
    general `sqrtm` returns complex noise. Tiny negative results from rounding are clipped to 0.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise ValueError(
            f"Statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}."
        )
    s1 = _sqrt_psd(sigma1)
    inner = s1 @ sigma2 @ s1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_sqrt)
    return max(value, 0.0)


def fid(predictions, references) -> float:
    """Fréchet distance (FID) between generated and reference embeddings from an evaluator encoder.

    Args:
        predictions (`array` of shape `(N, D)`): embeddings of generated sequences (N >= 2).
        references (`array` of shape `(M, D)`): embeddings of reference sequences (M >= 2, same D).

    Returns:
        `float`: the Fréchet distance between Gaussians fitted to both sets (unbiased covariances), in
        squared embedding units; lower is better, 0 for identical sets.
    """
    pred = _as_embeddings(predictions, "predictions")
    ref = _as_embeddings(references, "references")
    if pred.shape[1] != ref.shape[1]:
        raise ValueError(
            f"`predictions` have embedding dimension {pred.shape[1]} but `references` have {ref.shape[1]}."
        )
    mu1, s1 = gaussian_statistics(pred, "predictions")
    mu2, s2 = gaussian_statistics(ref, "references")
    return frechet_distance_from_statistics(mu1, s1, mu2, s2)

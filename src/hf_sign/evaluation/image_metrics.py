"""Image quality metrics of rendered signer videos: SSIM and hand-region SSIM.

SSIM follows Wang et al. (2004), "Image quality assessment: from error visibility to structural similarity": local
means, variances and covariance under an 11 x 11 Gaussian window (sigma 1.5, normalised to sum 1), constants
`C1 = (0.01 L)^2`, `C2 = (0.03 L)^2` with `L` the data range, and

    SSIM(x, y) = (2 mu_x mu_y + C1) (2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2)).

The SSIM of an image pair is the mean of this map over the positions where the window lies inside the image ("valid",
as in the reference implementation and scikit-image with `gaussian_weights=True`), averaged over the colour channels.
Hand-region SSIM (as in the sign video literature's "Hand SSIM") is the mean of the same map inside each hand's box,
with the map computed at every pixel (reflect padding) so that small boxes near the border still count; the boxes of
one frame are averaged.

Inputs are numpy arrays or torch tensors `(N, H, W, C)` (or `(H, W, C)`, or `(H, W)` grey), in `data_range` units
(255 for uint8 frames).
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["gaussian_window", "ssim_map", "ssim", "hand_ssim"]

ArrayLike = Union[np.ndarray, torch.Tensor]


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The 1-D Gaussian window `(size,)` (float64, sums to 1)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def _as_nchw(images: ArrayLike, name: str) -> torch.Tensor:
    t = images.detach().cpu() if torch.is_tensor(images) else torch.from_numpy(np.asarray(images))
    t = t.to(torch.float64)
    if t.ndim == 2:
        t = t[None, :, :, None]
    elif t.ndim == 3:
        t = t[None]
    if t.ndim != 4:
        raise ValueError(f"`{name}` must be (N, H, W, C), (H, W, C) or (H, W); got shape {tuple(t.shape)}.")
    return t.permute(0, 3, 1, 2)


def ssim_map(
    img1: ArrayLike,
    img2: ArrayLike,
    data_range: float = 255.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    padding: str = "valid",
) -> torch.Tensor:
    """The SSIM map, averaged over channels: `(N, H - window_size + 1, W - window_size + 1)` with `padding="valid"`,
    `(N, H, W)` with `padding="same"` (reflect padding)."""
    x, y = _as_nchw(img1, "img1"), _as_nchw(img2, "img2")
    if x.shape != y.shape:
        raise ValueError(f"`img1` and `img2` must have the same shape; got {tuple(x.shape)} and {tuple(y.shape)}.")
    if padding not in ("valid", "same"):
        raise ValueError(f"`padding` must be 'valid' or 'same'; got {padding!r}.")
    h, w = x.shape[-2:]
    if padding == "valid" and min(h, w) < window_size:
        raise ValueError(f"Images of {h}x{w} pixels are smaller than the {window_size}x{window_size} SSIM window.")
    c = x.shape[1]
    g = gaussian_window(window_size, sigma)
    kernel_h = g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    kernel_v = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1)

    def blur(z: torch.Tensor) -> torch.Tensor:
        if padding == "same":
            r = window_size // 2
            z = F.pad(z, (r, r, r, r), mode="reflect" if min(h, w) > r else "replicate")
        return F.conv2d(F.conv2d(z, kernel_h, groups=c), kernel_v, groups=c)

    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean(1)


def ssim(img1: ArrayLike, img2: ArrayLike, data_range: float = 255.0, **kwargs) -> np.ndarray:
    """SSIM of every image pair `(N,)` (float64): the mean of the valid SSIM map (`kwargs` go to `ssim_map`)."""
    return ssim_map(img1, img2, data_range, **kwargs).mean((-2, -1)).numpy()


def hand_ssim(img1: ArrayLike, img2: ArrayLike, boxes: ArrayLike, data_range: float = 255.0, **kwargs) -> np.ndarray:
    """Hand-region SSIM of every image pair `(N,)`: the "same"-padded SSIM map averaged inside each box, then over
    the boxes of the frame.

    Args:
        boxes (`np.ndarray`): `(N, K, 4)` integer pixel boxes `[x0, y0, x1, y1]` (x1, y1 exclusive), e.g. both
            hands from `hf_sign.render.avatar.hand_boxes`; `(N, 4)` is one box per image.
    """
    maps = ssim_map(img1, img2, data_range, padding="same", **kwargs)
    b = np.asarray(boxes.detach().cpu() if torch.is_tensor(boxes) else boxes)
    if b.ndim == 2:
        b = b[:, None]
    if b.ndim != 3 or b.shape[0] != maps.shape[0] or b.shape[-1] != 4:
        raise ValueError(f"`boxes` must have shape ({maps.shape[0]}, num_boxes, 4); got {b.shape}.")
    h, w = maps.shape[-2:]
    out = np.zeros(maps.shape[0])
    for i in range(maps.shape[0]):
        means = []
        for x0, y0, x1, y1 in b[i].astype(int):
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if x1 <= x0 or y1 <= y0:
                raise ValueError(f"`boxes[{i}]` holds an empty box inside the {w}x{h} image: {[x0, y0, x1, y1]}.")
            means.append(float(maps[i, y0:y1, x0:x1].mean()))
        out[i] = float(np.mean(means))
    return out

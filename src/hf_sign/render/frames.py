"""Drawing pose sequences as stick-figure frames.

Works on 3D joint positions `(T, J, 3)` of any `SkeletonSpec` (its *position* view: `position_parents`,
`position_parts`, `y_down`), so the same code draws SMPL-X forward kinematics, MediaPipe holistic and
PT50 skeletons.

Projection is orthographic:

* `view="front"`: image x = position x, image y = position y. For y-up skeletons (`spec.y_down=False`,
  e.g. SMPL-X) y is flipped because image rows grow downwards. x is *not* mirrored: SMPL-X +x is the
  body's left and MediaPipe image x grows to the right, so in both cases the signer's left hand appears
  on the right of the image, as when the signer faces the viewer.
* `view="side"`: the signer seen from their right, facing the right of the image (image x = +z for
  y-up skeletons, where +z is the body's forward; -z for y-down camera-space skeletons, where z grows
  away from the camera).

One scale is used for the whole sequence (and for all panels of `render_panels`), never per frame, so
global motion and size differences stay visible. Bones take the colour of their part (`PART_COLORS`); a
bone joining two parts (elbow -> wrist when the wrist is a hand joint) is drawn as a body segment. Joints with
NaN/inf coordinates are skipped: bones touching them and their dots are simply not drawn (useful for undetected
MediaPipe hands).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from ..skeletons.spec import SkeletonSpec

# Okabe-Ito colour-blind-safe palette, one colour per part.
PART_COLORS: Dict[str, Tuple[int, int, int]] = {
    "body": (60, 60, 70),
    "left_hand": (230, 97, 0),
    "right_hand": (0, 114, 178),
    "face": (0, 158, 115),
}
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (20, 20, 20)
COUNTER_COLOR = (120, 120, 120)
VIEWS = ("front", "side")
# Above this many frames the progress bar turns on by itself (`show_progress=None`).
AUTO_PROGRESS_FRAMES = 250


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def check_positions(positions, spec: SkeletonSpec, field_name: str = "positions") -> np.ndarray:
    """Return `positions` as a float64 array after checking its shape is `(T, J, 3)` for `spec`."""
    arr = _as_numpy(positions)
    j = spec.num_position_joints
    if arr.ndim != 3 or arr.shape[1:] != (j, 3) or arr.shape[0] == 0:
        raise ValueError(
            f"`{field_name}` must have shape (num_frames >= 1, {j}, 3) for skeleton {spec.name!r}; got {arr.shape}."
        )
    return arr


def project(positions: np.ndarray, spec: SkeletonSpec, view: str = "front") -> np.ndarray:
    """Orthographic projection `(T, J, 3) -> (T, J, 2)` in image orientation (x right, y down)."""
    if view not in VIEWS:
        raise ValueError(f"`view` must be one of {VIEWS}; got {view!r}.")
    y = positions[..., 1] if spec.y_down else -positions[..., 1]
    if view == "front":
        x = positions[..., 0]
    else:
        x = -positions[..., 2] if spec.y_down else positions[..., 2]
    return np.stack([x, y], axis=-1)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _part_of_joints(spec: SkeletonSpec) -> List[str]:
    part = ["body"] * spec.num_position_joints
    for name, idx in spec.position_parts.items():
        for i in idx:
            part[i] = name
    return part


class _Panel:
    """Pre-computed drawing data of one panel: pixel coordinates, bones, colours, widths."""

    def __init__(self, uv: np.ndarray, spec: SkeletonSpec, width: int):
        self.uv = uv  # (T, J, 2) pixel coordinates, NaN where the joint is missing
        self.num_frames = uv.shape[0]
        part = _part_of_joints(spec)
        body_w = max(2, round(width / 110))
        hand_w = max(1, round(width / 300))
        self.bones = []
        for p, c in spec.position_bones:
            # A bone joining two parts (elbow -> wrist, neck -> face) is a body segment: body style.
            bone_part = part[c] if part[p] == part[c] else "body"
            line_w = body_w if bone_part == "body" else hand_w
            self.bones.append((p, c, PART_COLORS.get(bone_part, PART_COLORS["body"]), line_w))
        self.dots = []
        for j, name in enumerate(part):
            r = max(1.5, width / 110) if name == "body" else max(1.0, width / 260)
            self.dots.append((j, PART_COLORS.get(name, PART_COLORS["body"]), r))
        self.finite = np.isfinite(uv).all(-1)  # (T, J)


def _layout(
    projected: Sequence[np.ndarray], size: Tuple[int, int], top: int, bottom: int, margin: int
) -> List[np.ndarray]:
    """Map projected coordinates of every panel to pixels with ONE shared scale.

    Each panel is centred on the centre of its own bounding box over the whole sequence, so a sequence
    that drifts still fits, while equal sizes in metres stay equal sizes in pixels across panels.
    """
    w, h = size
    avail_w, avail_h = w - 2 * margin, h - top - bottom - 2 * margin
    if avail_w <= 4 or avail_h <= 4:
        raise ValueError(f"`size`={size} is too small to draw into; use at least about 64x64 pixels.")
    boxes, scale = [], np.inf
    for uv in projected:
        finite = uv[np.isfinite(uv).all(-1)]
        if len(finite) == 0:
            boxes.append((np.zeros(2), np.zeros(2)))
            continue
        lo, hi = finite.min(0), finite.max(0)
        boxes.append((lo, hi))
        ext = hi - lo
        if ext[0] > 1e-9:
            scale = min(scale, avail_w / ext[0])
        if ext[1] > 1e-9:
            scale = min(scale, avail_h / ext[1])
    if not np.isfinite(scale):  # every panel is a single point (or empty): any scale works
        scale = 1.0
    centre = np.array([w / 2.0, top + margin + avail_h / 2.0])
    return [(uv - (lo + hi) / 2.0) * scale + centre for uv, (lo, hi) in zip(projected, boxes)]


def _text_fit(draw: ImageDraw.ImageDraw, text: str, font, max_w: int) -> str:
    if draw.textlength(text, font=font) <= max_w:
        return text
    while text and draw.textlength(text + "...", font=font) > max_w:
        text = text[:-1]
    return text + "..."


def render_panels(
    sequences: Sequence,
    spec: Union[SkeletonSpec, Sequence[SkeletonSpec]],
    titles: Optional[Sequence[Optional[str]]] = None,
    size: Tuple[int, int] = (320, 320),
    view: str = "front",
    caption: Optional[str] = None,
    frame_counter: bool = True,
    show_progress: Optional[bool] = None,
) -> np.ndarray:
    """Draw several pose sequences side by side (e.g. reference vs generated).

    Sequences of different lengths are padded by holding their last frame until the longest one ends
    (the frame counter of a finished panel stops at its last frame). All panels share one scale, so
    the figures' sizes are directly comparable.

    Args:
        sequences (`Sequence[np.ndarray]`): positions `(T_i, J_i, 3)` per panel (numpy or torch).
        spec (`SkeletonSpec` or `Sequence[SkeletonSpec]`): one spec for all panels or one per panel.
        titles (`Sequence[str]`, *optional*): one title per panel, drawn at the top (`None` entries allowed).
        size (`Tuple[int, int]`, defaults to `(320, 320)`): `(width, height)` of ONE panel in pixels.
        view (`str`, defaults to `"front"`): `"front"` or `"side"` (see module docstring).
        caption (`str`, *optional*): text drawn across the bottom of the whole image (e.g. the sentence).
        frame_counter (`bool`, defaults to `True`): draw `frame/total` in each panel's bottom-left corner.
        show_progress (`bool`, *optional*): tqdm progress bar; `None` turns it on above 250 frames.

    Returns:
        `np.ndarray` of shape `(T_max, height, num_panels * width, 3)`, dtype uint8.
    """
    if len(sequences) == 0:
        raise ValueError("`sequences` must contain at least one pose sequence.")
    specs = [spec] * len(sequences) if isinstance(spec, SkeletonSpec) else list(spec)
    if len(specs) != len(sequences):
        raise ValueError(f"`spec` has {len(specs)} entries for {len(sequences)} sequences; expected one per sequence.")
    titles = list(titles) if titles is not None else [None] * len(sequences)
    if len(titles) != len(sequences):
        raise ValueError(
            f"`titles` has {len(titles)} entries for {len(sequences)} sequences; expected one per sequence."
        )
    w, h = int(size[0]), int(size[1])
    arrays = [check_positions(s, sp, f"sequences[{i}]") for i, (s, sp) in enumerate(zip(sequences, specs))]

    font_px = max(9, round(min(w, h) / 22))
    font = _font(font_px)
    top = font_px + 8 if any(t for t in titles) else 0
    bottom = (font_px + 6) * (int(frame_counter) + int(bool(caption)))
    margin = max(4, round(min(w, h) / 25))
    pixels = _layout([project(a, sp, view) for a, sp in zip(arrays, specs)], (w, h), top, bottom, margin)
    panels = [_Panel(uv, sp, w) for uv, sp in zip(pixels, specs)]
    n_frames = max(p.num_frames for p in panels)
    total_w = w * len(panels)

    # Static background (titles, separators, caption) drawn once and copied for every frame.
    base = Image.new("RGB", (total_w, h), BACKGROUND)
    bd = ImageDraw.Draw(base)
    for k, title in enumerate(titles):
        if title:
            t = _text_fit(bd, str(title), font, w - 8)
            bd.text((k * w + (w - bd.textlength(t, font=font)) / 2, 3), t, fill=TEXT_COLOR, font=font)
        if k > 0:
            bd.line([(k * w, 0), (k * w, h)], fill=(200, 200, 200), width=1)
    if caption:
        t = _text_fit(bd, str(caption), font, total_w - 8)
        bd.text(((total_w - bd.textlength(t, font=font)) / 2, h - font_px - 4), t, fill=TEXT_COLOR, font=font)

    out = np.empty((n_frames, h, total_w, 3), dtype=np.uint8)
    if show_progress is None:
        show_progress = n_frames > AUTO_PROGRESS_FRAMES
    for t in tqdm(range(n_frames), desc="drawing frames", unit="frame", disable=not show_progress):
        img = base.copy()
        draw = ImageDraw.Draw(img)
        for k, panel in enumerate(panels):
            ti = min(t, panel.num_frames - 1)  # hold the last frame of shorter sequences
            uv = panel.uv[ti]
            ok = panel.finite[ti]
            dx = k * w
            for p, c, color, lw in panel.bones:
                if ok[p] and ok[c]:
                    draw.line([(uv[p, 0] + dx, uv[p, 1]), (uv[c, 0] + dx, uv[c, 1])], fill=color, width=lw)
            for j, color, r in panel.dots:
                if ok[j]:
                    x, y = uv[j, 0] + dx, uv[j, 1]
                    draw.ellipse([x - r, y - r, x + r, y + r], fill=color)
            if frame_counter:
                label = f"{ti + 1}/{panel.num_frames}"
                y_counter = h - font_px - 4 - (font_px + 4 if caption else 0)
                draw.text((dx + 4, y_counter), label, fill=COUNTER_COLOR, font=font)
        out[t] = np.asarray(img)
    return out


def draw_frames(
    positions,
    spec: SkeletonSpec,
    size: Tuple[int, int] = (320, 320),
    view: str = "front",
    title: Optional[str] = None,
    caption: Optional[str] = None,
    frame_counter: bool = True,
    show_progress: Optional[bool] = None,
) -> np.ndarray:
    """Draw one pose sequence as stick-figure frames.

    Args:
        positions (`np.ndarray` or `torch.Tensor`): joint positions `(T, J, 3)` of `spec`'s position view
            (e.g. `spec.to_positions(features)`), in any unit: the figure is fitted to the frame.
        spec (`SkeletonSpec`): gives bones (`position_bones`), part colours (`position_parts`) and `y_down`.
        size (`Tuple[int, int]`, defaults to `(320, 320)`): `(width, height)` in pixels.
        view (`str`, defaults to `"front"`): `"front"` (x, y) or `"side"` (z, y).
        title (`str`, *optional*): text drawn at the top of every frame.
        caption (`str`, *optional*): text drawn at the bottom of every frame.
        frame_counter (`bool`, defaults to `True`): draw `frame/total` in the bottom-left corner.
        show_progress (`bool`, *optional*): tqdm progress bar; `None` turns it on above 250 frames.

    Returns:
        `np.ndarray` of shape `(T, height, width, 3)`, dtype uint8. Joints with NaN/inf coordinates are
        not drawn (nor bones touching them).
    """
    positions = check_positions(positions, spec, "positions")  # error names this argument, not sequences[0]
    return render_panels(
        [positions], spec, titles=[title], size=size, view=view, caption=caption,
        frame_counter=frame_counter, show_progress=show_progress,
    )

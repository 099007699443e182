"""Avatar frames drawn from joint positions in several appearance styles, and the matching skeleton control frames.

The pose-to-video renderer (Stable Signer) learns pose -> appearance on these pictures: `draw_avatar_frames` draws a
signer (filled torso in clothing colour, thick filled limbs, a head with hair, shaded hands with visible fingers) in
one [`AvatarStyle`], and `draw_skeleton_frames` draws the renderer's control image: coloured bones on black, one
colour per limb and per finger, in exactly the same framing, so their pixels align.

Framing: positions are projected like the stick-figure renderer (`frames.project`, front view) and ONE framing (scale
and centre) is fitted to the whole sequence, never per frame, so the camera does not jump. Sizes (limb widths, the
head) are fractions of the signer's shoulder width, so the figure looks the same in metres or in normalised units.

Depth: arms and hands are drawn back to front by their mean depth (the body's forward axis), in the avatar and in the
control image alike, so a hand in front of the body or of the other hand covers it in both.

The avatar needs the named joints of `REQUIRED_JOINTS` (and 21 MediaPipe-order hand joints per hand): `smplx133`'s
position view has them; other skeletons raise a `ValueError` listing what is missing.

Drawing is supersampled (`supersample` times the size, then box-filtered down), so edges are anti-aliased.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from ..skeletons.spec import SkeletonSpec
from .frames import check_positions, project

__all__ = [
    "AVATAR_STYLES",
    "AvatarStyle",
    "REQUIRED_JOINTS",
    "SKELETON_COLORS",
    "avatar_framing",
    "draw_avatar_frames",
    "draw_skeleton_frames",
    "get_avatar_style",
    "hand_boxes",
]

RGB = Tuple[int, int, int]
SIDES = ("left", "right")
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
_FINGER_JOINTS = {"thumb": ("cmc", "mcp", "ip", "tip")}
REQUIRED_JOINTS = ("pelvis", "neck", "head") + tuple(
    f"{side}_{j}" for side in SIDES for j in ("shoulder", "elbow", "wrist")
)


@dataclass(frozen=True)
class AvatarStyle:
    """The appearance of a drawn signer.

    Args:
        name (`str`): preset name.
        skin (`Tuple[int, int, int]`): skin colour (face, neck, hands, bare forearms).
        clothing (`Tuple[int, int, int]`): colour of the torso and sleeves.
        background (`Tuple[int, int, int]`): background colour.
        hair (`Tuple[int, int, int]`): hair colour (the top of the head).
        limb_width (`float`, *optional*, defaults to 0.22): arm width as a fraction of the shoulder width.
        torso_width (`float`, *optional*, defaults to 0.85): width of the torso at the hips, as a fraction of the
            shoulder width.
        long_sleeves (`bool`, *optional*, defaults to `True`): forearms in clothing colour; `False` shows bare
            (skin) forearms.
        hand_shading (`bool`, *optional*, defaults to `True`): shaded hands (darker palm and finger outlines, lighter
            fingertips); `False` draws them flat in the skin colour.
    """

    name: str
    skin: RGB
    clothing: RGB
    background: RGB
    hair: RGB
    limb_width: float = 0.22
    torso_width: float = 0.85
    long_sleeves: bool = True
    hand_shading: bool = True


AVATAR_STYLES: Tuple[AvatarStyle, ...] = (
    AvatarStyle("studio", skin=(224, 172, 105), clothing=(30, 40, 90), background=(235, 235, 235), hair=(60, 40, 30)),
    AvatarStyle(
        "green_screen",
        skin=(141, 85, 36),
        clothing=(25, 25, 25),
        background=(40, 160, 70),
        hair=(15, 10, 10),
        limb_width=0.25,
    ),
    AvatarStyle(
        "warm",
        skin=(255, 219, 172),
        clothing=(180, 30, 40),
        background=(245, 222, 179),
        hair=(220, 180, 90),
        limb_width=0.19,
        long_sleeves=False,
    ),
    AvatarStyle(
        "night",
        skin=(198, 134, 66),
        clothing=(230, 230, 240),
        background=(20, 30, 60),
        hair=(150, 150, 150),
        torso_width=0.95,
    ),
    AvatarStyle(
        "teal",
        skin=(120, 70, 40),
        clothing=(0, 128, 128),
        background=(250, 250, 250),
        hair=(10, 10, 10),
        limb_width=0.27,
        long_sleeves=False,
        hand_shading=False,
    ),
    AvatarStyle(
        "lavender",
        skin=(241, 194, 125),
        clothing=(230, 120, 20),
        background=(200, 190, 230),
        hair=(150, 50, 20),
        torso_width=0.75,
        hand_shading=False,
    ),
    AvatarStyle(
        "charcoal",
        skin=(234, 192, 134),
        clothing=(110, 110, 110),
        background=(15, 15, 15),
        hair=(90, 60, 20),
        limb_width=0.2,
        long_sleeves=False,
    ),
)

# Control-image colours: one per limb segment and per finger (bright, on black).
SKELETON_COLORS: Dict[str, RGB] = {
    "torso": (200, 200, 200),
    "head": (255, 255, 0),
    "left_upper_arm": (255, 0, 0),
    "left_forearm": (255, 128, 0),
    "right_upper_arm": (0, 90, 255),
    "right_forearm": (0, 200, 255),
    "left_palm": (255, 170, 170),
    "right_palm": (170, 200, 255),
    "left_thumb": (255, 0, 160),
    "left_index": (255, 230, 0),
    "left_middle": (160, 255, 0),
    "left_ring": (255, 120, 80),
    "left_pinky": (200, 0, 255),
    "right_thumb": (0, 255, 160),
    "right_index": (0, 255, 255),
    "right_middle": (120, 120, 255),
    "right_ring": (0, 160, 90),
    "right_pinky": (255, 255, 255),
}

# Proportions, as fractions of the shoulder width.
HEAD_RADIUS = 0.32
NECK_WIDTH = 0.2
FINGER_WIDTH = 0.045
PALM_OUTLINE = 0.02


def get_avatar_style(style: Union[str, AvatarStyle]) -> AvatarStyle:
    """An [`AvatarStyle`] itself, or the preset of `AVATAR_STYLES` with that name (a `ValueError` names the field)."""
    if isinstance(style, AvatarStyle):
        return style
    for preset in AVATAR_STYLES:
        if preset.name == style:
            return preset
    raise ValueError(
        f"`style` must be an AvatarStyle or one of the preset names {[s.name for s in AVATAR_STYLES]}; got {style!r}."
    )


# --------------------------------------------------------------------------------------------- anatomy and framing
def _hand_joint_names(side: str) -> List[str]:
    names = [f"{side}_wrist"]
    for f in FINGERS:
        names += [f"{side}_{f}_{s}" for s in _FINGER_JOINTS.get(f, ("mcp", "pip", "dip", "tip"))]
    return names


def _joint_index(spec: SkeletonSpec) -> Dict[str, int]:
    """Position-joint index of every joint the avatar needs; a `ValueError` lists the missing ones."""
    names = list(spec.position_joint_names)
    wanted = list(REQUIRED_JOINTS) + _hand_joint_names("left") + _hand_joint_names("right")
    missing = [n for n in wanted if n not in names]
    if missing:
        raise ValueError(
            f"Skeleton {spec.name!r} cannot be drawn as an avatar: its positions lack the joints {missing} (the "
            "avatar needs pelvis, neck, head, shoulders, elbows, wrists and 21 MediaPipe-order joints per hand)."
        )
    return {n: names.index(n) for n in wanted}


class _Figure:
    """Pixel coordinates (supersampled) and depths of one sequence, in one framing."""

    def __init__(self, positions, spec: SkeletonSpec, size: int, supersample: int):
        arr = check_positions(positions, spec, "positions")
        if not np.isfinite(arr).all():
            raise ValueError("`positions` holds NaN/inf coordinates; the avatar needs every joint of every frame.")
        if not isinstance(size, (int, np.integer)) or size < 16:
            raise ValueError(f"`size` must be an int >= 16 (pixels); got {size!r}.")
        self.index = _joint_index(spec)
        self.size, self.ss = int(size), int(supersample)
        self.num_frames = arr.shape[0]
        xy = project(arr, spec, "front")
        # depth towards the viewer: +z for y-up skeletons (SMPL-X), -z for y-down camera-space ones
        self.depth = -arr[..., 2] if spec.y_down else arr[..., 2]
        scale, centre, self.unit = avatar_framing(xy, self.index, size)
        self.uv = (xy - centre) * scale * self.ss + self.ss * size / 2.0  # (T, J, 2) supersampled pixels
        self.px = self.unit * scale * self.ss  # one shoulder width in supersampled pixels

    def p(self, t: int, name: str) -> Tuple[float, float]:
        u, v = self.uv[t, self.index[name]]
        return float(u), float(v)

    def head_centre(self, t: int) -> Tuple[float, float]:
        head, neck = np.array(self.p(t, "head")), np.array(self.p(t, "neck"))
        up = head - neck
        up = up / max(np.linalg.norm(up), 1e-6)
        return tuple(head + up * 0.8 * HEAD_RADIUS * self.px)

    def side_order(self, t: int) -> List[str]:
        """Arms back to front: the side whose elbow, wrist and hand lie further back is drawn first."""
        depth = {
            s: float(np.mean([self.depth[t, self.index[n]] for n in _hand_joint_names(s) + [f"{s}_elbow"]]))
            for s in SIDES
        }
        return sorted(SIDES, key=lambda s: depth[s])


def avatar_framing(xy: np.ndarray, index: Dict[str, int], size: int) -> Tuple[float, np.ndarray, float]:
    """One framing for a whole projected sequence `(T, J, 2)`: `(pixels per unit, centre, shoulder width)`.

    The box holds every joint of every frame and the head drawn around it, with a margin of one limb width; the
    larger side fits the image with `size / 32` pixels to spare.
    """
    shoulders = xy[:, index["left_shoulder"]] - xy[:, index["right_shoulder"]]
    unit = float(np.median(np.linalg.norm(shoulders, axis=-1)))
    if not unit > 1e-9:
        raise ValueError("`positions` has coincident shoulders; the avatar cannot be sized.")
    head, neck = xy[:, index["head"]], xy[:, index["neck"]]
    up = (head - neck) / np.maximum(np.linalg.norm(head - neck, axis=-1, keepdims=True), 1e-9)
    head_c = head + up * 0.8 * HEAD_RADIUS * unit
    pts = np.concatenate([xy.reshape(-1, 2), (head_c - HEAD_RADIUS * unit), (head_c + HEAD_RADIUS * unit)])
    lo, hi = pts.min(0) - 0.15 * unit, pts.max(0) + 0.15 * unit
    margin = size / 32.0
    scale = (size - 2 * margin) / float(max(hi - lo))
    return scale, (lo + hi) / 2.0, unit


def _shade(color: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in color)


def _segment(draw: ImageDraw.ImageDraw, a, b, width: float, color: RGB) -> None:
    """A thick line with round ends."""
    w = max(1, int(round(width)))
    draw.line([a, b], fill=color, width=w)
    r = w / 2.0
    for x, y in (a, b):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=color)


# --------------------------------------------------------------------------------------------- drawing
def _draw_hand(draw, fig: _Figure, t: int, side: str, style: AvatarStyle) -> None:
    finger_w = FINGER_WIDTH * fig.px
    palm = [
        fig.p(t, f"{side}_{n}") for n in ("wrist", "thumb_cmc", "index_mcp", "middle_mcp", "ring_mcp", "pinky_mcp")
    ]
    shaded = style.hand_shading
    outline = _shade(style.skin, 0.55) if shaded else style.skin
    if shaded:  # a dark rim around palm and fingers, drawn first and covered by the skin-coloured fill
        rim = 2 * PALM_OUTLINE * fig.px
        draw.polygon(palm, fill=outline, outline=outline, width=max(1, int(round(rim))))
        for f in FINGERS:
            pts = [fig.p(t, f"{side}_{f}_{s}") for s in _FINGER_JOINTS.get(f, ("mcp", "pip", "dip", "tip"))]
            for a, b in zip(pts[:-1], pts[1:]):
                _segment(draw, a, b, finger_w + rim, outline)
    draw.polygon(palm, fill=_shade(style.skin, 0.82) if shaded else style.skin)
    for k, f in enumerate(FINGERS):
        pts = [fig.p(t, f"{side}_{f}_{s}") for s in _FINGER_JOINTS.get(f, ("mcp", "pip", "dip", "tip"))]
        for j, (a, b) in enumerate(zip(pts[:-1], pts[1:])):
            # lighter towards the tips, neighbouring fingers in alternating tones, so fingers stay apart
            tone = (0.88 + 0.08 * j + (0.05 if k % 2 else 0.0)) if shaded else 1.0
            _segment(draw, a, b, finger_w, _shade(style.skin, tone))


def _draw_arm(draw, fig: _Figure, t: int, side: str, style: AvatarStyle) -> None:
    w = style.limb_width * fig.px
    shoulder, elbow, wrist = fig.p(t, f"{side}_shoulder"), fig.p(t, f"{side}_elbow"), fig.p(t, f"{side}_wrist")
    _segment(draw, shoulder, elbow, w, style.clothing)
    _segment(draw, elbow, wrist, 0.85 * w, style.clothing if style.long_sleeves else style.skin)
    if style.long_sleeves:  # a skin-coloured wrist between cuff and hand
        cuff = tuple(np.array(wrist) + 0.15 * (np.array(elbow) - np.array(wrist)))
        _segment(draw, cuff, wrist, 0.6 * w, style.skin)
    _draw_hand(draw, fig, t, side, style)


def _draw_body(draw, fig: _Figure, t: int, style: AvatarStyle) -> None:
    ls, rs = np.array(fig.p(t, "left_shoulder")), np.array(fig.p(t, "right_shoulder"))
    pelvis = np.array(fig.p(t, "pelvis"))
    half_hip = (ls - rs) / 2.0 * style.torso_width
    torso = [tuple(ls), tuple(rs), tuple(pelvis - half_hip), tuple(pelvis + half_hip)]
    draw.polygon(torso, fill=style.clothing)
    # round shoulders
    r = style.limb_width * fig.px / 2.0
    for x, y in (ls, rs):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=style.clothing)
    neck, head = fig.p(t, "neck"), fig.head_centre(t)
    _segment(draw, neck, fig.p(t, "head"), NECK_WIDTH * fig.px, _shade(style.skin, 0.9))
    hr = HEAD_RADIUS * fig.px
    hx, hy = head
    draw.ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=style.hair)
    # the face: the skin-coloured lower part of the head, a smaller ellipse shifted down, leaving hair on top
    draw.ellipse([hx - 0.86 * hr, hy - 0.55 * hr, hx + 0.86 * hr, hy + 1.0 * hr], fill=style.skin)


def _bone(draw, fig: _Figure, t: int, a: str, b: str, color: RGB, width: float) -> None:
    draw.line([fig.p(t, a), fig.p(t, b)], fill=color, width=max(1, int(round(width))))


def _draw_skeleton(draw, fig: _Figure, t: int, body_w: float, hand_w: float) -> None:
    c = SKELETON_COLORS
    for a, b in (("pelvis", "neck"), ("left_shoulder", "right_shoulder")):
        _bone(draw, fig, t, a, b, c["torso"], body_w)
    _bone(draw, fig, t, "neck", "head", c["head"], body_w)
    hx, hy = fig.head_centre(t)
    r = HEAD_RADIUS * fig.px * 0.5
    draw.ellipse([hx - r, hy - r, hx + r, hy + r], outline=c["head"], width=max(1, int(round(body_w))))
    for side in fig.side_order(t):
        _bone(draw, fig, t, f"{side}_shoulder", f"{side}_elbow", c[f"{side}_upper_arm"], body_w)
        _bone(draw, fig, t, f"{side}_elbow", f"{side}_wrist", c[f"{side}_forearm"], body_w)
        for f in FINGERS:
            joints = _FINGER_JOINTS.get(f, ("mcp", "pip", "dip", "tip"))
            _bone(draw, fig, t, f"{side}_wrist", f"{side}_{f}_{joints[0]}", c[f"{side}_palm"], hand_w)
            for a, b in zip(joints[:-1], joints[1:]):
                _bone(draw, fig, t, f"{side}_{f}_{a}", f"{side}_{f}_{b}", c[f"{side}_{f}"], hand_w)


def _finish(img: Image.Image, ss: int) -> np.ndarray:
    return np.asarray(img.reduce(ss) if ss > 1 else img)


def draw_avatar_frames(
    positions,
    spec: SkeletonSpec,
    style: Union[str, AvatarStyle],
    size: int = 64,
    frames: Optional[Sequence[int]] = None,
    supersample: int = 4,
) -> np.ndarray:
    """Draw a sequence as an avatar in one appearance style.

    Args:
        positions (`np.ndarray` or `torch.Tensor`): joint positions `(T, J, 3)` of `spec`'s position view (e.g.
            `spec.to_positions(features)`).
        spec (`SkeletonSpec`): the skeleton (its positions must hold `REQUIRED_JOINTS` and both hands).
        style (`AvatarStyle` or `str`): an [`AvatarStyle`] or a preset name from `AVATAR_STYLES`.
        size (`int`, *optional*, defaults to 64): width and height in pixels.
        frames (`Sequence[int]`, *optional*): draw only these frames (the framing still comes from the whole
            sequence); default: every frame.
        supersample (`int`, *optional*, defaults to 4): drawn at this many times the size, then box-filtered down.

    Returns:
        `np.ndarray` of shape `(len(frames) or T, size, size, 3)`, dtype uint8.
    """
    style = get_avatar_style(style)
    fig = _Figure(positions, spec, size, supersample)
    out = []
    for t in _frame_list(frames, fig.num_frames):
        img = Image.new("RGB", (fig.size * fig.ss,) * 2, style.background)
        draw = ImageDraw.Draw(img)
        _draw_body(draw, fig, t, style)
        for side in fig.side_order(t):
            _draw_arm(draw, fig, t, side, style)
        out.append(_finish(img, fig.ss))
    return np.stack(out)


def draw_skeleton_frames(
    positions, spec: SkeletonSpec, size: int = 64, frames: Optional[Sequence[int]] = None, supersample: int = 4
) -> np.ndarray:
    """Draw the renderer's control image: coloured bones on black, in the avatar's framing (pixels align).

    Every limb segment, both palms and every finger have their own colour (`SKELETON_COLORS`); the head is a ring
    around the avatar's head centre. Arms are drawn back to front as in the avatar. Arguments as in
    [`draw_avatar_frames`].

    Returns:
        `np.ndarray` of shape `(len(frames) or T, size, size, 3)`, dtype uint8.
    """
    fig = _Figure(positions, spec, size, supersample)
    body_w, hand_w = max(1.0, fig.ss * size / 40.0), max(1.0, fig.ss * size / 80.0)
    out = []
    for t in _frame_list(frames, fig.num_frames):
        img = Image.new("RGB", (fig.size * fig.ss,) * 2, (0, 0, 0))
        _draw_skeleton(ImageDraw.Draw(img), fig, t, body_w, hand_w)
        out.append(_finish(img, fig.ss))
    return np.stack(out)


def hand_boxes(positions, spec: SkeletonSpec, size: int = 64) -> np.ndarray:
    """Pixel box of each hand in every frame, in the avatar's framing.

    Returns:
        `np.ndarray` of shape `(T, 2, 4)`, dtype int64: `[x0, y0, x1, y1]` (x1, y1 exclusive) for the left then the
        right hand, around the hand's joints with a margin of two finger widths, clipped to the image and at least
        one pixel wide and high.
    """
    fig = _Figure(positions, spec, size, supersample=1)
    pad = 2 * FINGER_WIDTH * fig.px + 1.0
    out = np.zeros((fig.num_frames, 2, 4), dtype=np.int64)
    for k, side in enumerate(SIDES):
        idx = [fig.index[n] for n in _hand_joint_names(side)]
        pts = fig.uv[:, idx]  # (T, 21, 2)
        lo = np.floor(pts.min(1) - pad).astype(np.int64).clip(0, size - 1)
        hi = np.ceil(pts.max(1) + pad).astype(np.int64).clip(1, size)
        hi = np.maximum(hi, lo + 1)
        out[:, k] = np.concatenate([lo, hi], axis=-1)
    return out


def _frame_list(frames: Optional[Sequence[int]], num_frames: int) -> List[int]:
    if frames is None:
        return list(range(num_frames))
    frames = [int(f) for f in frames]
    bad = [f for f in frames if not 0 <= f < num_frames]
    if bad or not frames:
        raise ValueError(f"`frames` must be a non-empty list of indices in 0..{num_frames - 1}; got {frames}.")
    return frames

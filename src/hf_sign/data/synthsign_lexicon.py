"""SynthSign lexicon and signers: a parametric motion per gloss, signer variation, co-articulated sentences.

The sign parameters (`SignSpec`, `build_specs`) and the signers (`SignerProfile`, `make_signers`) are drawn
in `synthsign_signs`; this module turns them into motion.

A plural `X+` is the sign of `X` made twice, sweeping towards the dominant side. In a sentence, signs are
co-articulated (`coarticulate`): each sign's start and end assimilate to its neighbours' location,
orientation and handshape, and long sentences are signed faster. Sentences chain signs
with minimum-jerk transitions in hand space whose length grows with the distance the hands travel, start
and end in the rest pose, and add sentence-level non-manuals: a head shake over the sign before `NOT` and
`NOT` itself, raised brows (expression 0) and a forward head tilt over yes/no questions (`QUESTION`),
furrowed brows (expression 1) over wh-questions, raised brows on a rhetorical `WHY`.
"""

from __future__ import annotations

import functools
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .resample import minimum_jerk
from .synthsign_grammar import WH_GLOSSES, lexicon_glosses, text_to_gloss
from .synthsign_kinematics import (
    ANCHORS,
    BASE_ANCHOR,
    CHANNELS,
    HANDSHAPES,
    NUM_CHANNELS,
    RELAXED_HAND,
    REST_WRIST,
    WAIST_HOLD,
    channels_to_features,
    mirror_points,
    solve_twist,
)
from .synthsign_signs import (
    BODY_LOCATIONS,
    DIRECTIONS,
    LEXICON_SEED,
    ORIENTATIONS,
    PLANES,
    SignerProfile,
    SignSpec,
    build_specs,
    make_signers,
)

# ----------------------------------------------------------------------------------------- synthesis
DOM_ON_BASE = np.array([-0.03, 0.01, 0.29])  # dominant wrist when its hand is just above the base hand
_CONTACT_BODY = np.array([0.0, 0.0, -1.0])  # taps on the body move towards it
_CONTACT_SPACE = np.array([0.0, -1.0, 0.0])  # taps in space (or on the base hand) move down


def _interpolate(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """`n` frames strictly between channel rows `a` and `b` along a minimum-jerk profile."""
    t = minimum_jerk(np.arange(1, n + 1) / (n + 1.0))[:, None]
    return a[None] + (b - a)[None] * t


# Co-articulation inside signs (see `coarticulate`): boundary assimilation strength range, the fraction of a
# sign over which it fades, and the tempo-up of long sentences (per sign beyond 3, capped).
ASSIMILATION = (0.2, 0.4)
ASSIMILATION_SPAN = 0.4
ASSIMILATION_MIN_FRAMES = 6  # short signs: fade over at least this many frames (no speed spikes)
SPEEDUP_PER_SIGN = 0.05
MAX_SPEEDUP = 1.3
_MANUAL_CHANNELS = np.r_[CHANNELS["dom_pos"], CHANNELS["nd_pos"], CHANNELS["dom_ori"], CHANNELS["nd_ori"],
                         CHANNELS["dom_hand"], CHANNELS["nd_hand"]]


def coarticulate(signs: Sequence[np.ndarray], rng: Optional[np.random.Generator] = None) -> List[np.ndarray]:
    """Assimilate each sign's manual channels to its neighbours, so in-context forms differ from citation forms.

    The start of sign k is pulled towards where sign k-1 ends and its end towards where sign k+1 starts (hand
    location, palm orientation and handshape; non-manuals are left alone). The pull is `a * (neighbour -
    own boundary)` at the boundary and fades to 0 over `ASSIMILATION_SPAN` of the sign along a minimum-jerk
    profile (over at least `ASSIMILATION_MIN_FRAMES` frames, so short signs get no speed spikes; in a short sign
    the two fades overlap); `a` is drawn per boundary from `ASSIMILATION` (its midpoint without an rng).
    Displacements are computed from the citation forms, so the result does not depend on the order signs are
    processed in.
    """
    lo, hi = ASSIMILATION
    out = []
    for k, sign in enumerate(signs):
        n = len(sign)
        i = np.arange(n, dtype=np.float64)
        fade = max(ASSIMILATION_SPAN * (n - 1), float(ASSIMILATION_MIN_FRAMES))
        ch = sign.copy()
        m = _MANUAL_CHANNELS
        if k > 0:
            a = float(rng.uniform(lo, hi)) if rng is not None else (lo + hi) / 2
            w = a * (1.0 - minimum_jerk(i / fade))
            ch[:, m] += w[:, None] * (signs[k - 1][-1, m] - sign[0, m])[None]
        if k < len(signs) - 1:
            a = float(rng.uniform(lo, hi)) if rng is not None else (lo + hi) / 2
            w = a * minimum_jerk((i - (n - 1) + fade) / fade)
            ch[:, m] += w[:, None] * (signs[k + 1][0, m] - sign[-1, m])[None]
        out.append(ch)
    return out


def _envelope(T: int, start: int, end: int, ramp: int = 4) -> np.ndarray:
    t = np.arange(T, dtype=np.float64)
    up = minimum_jerk((t - start + ramp) / ramp)
    down = minimum_jerk((end + ramp - t) / ramp)
    return np.minimum(up, down)


def _cruise(s: np.ndarray, ramp: float = 0.2) -> np.ndarray:
    """Progress 0 -> 1 with constant speed in the middle and raised-cosine speed ramps at both ends.

    Peak speed is 1 / (1 - ramp) times the mean (minimum jerk: 1.875), which keeps multi-cycle circles calm.
    """
    x = np.clip(s, 0.0, 1.0)

    def area(t):  # integral of sin^2(pi u / 2 ramp)
        return t / 2 - ramp / (2 * np.pi) * np.sin(np.pi * t / ramp)

    out = np.where(
        x <= ramp,
        area(x),
        np.where(
            x <= 1 - ramp, ramp / 2 + (x - ramp), ramp / 2 + (1 - 2 * ramp) + ramp / 2 - area(np.clip(1 - x, 0, ramp))
        ),
    )
    return out / (1.0 - ramp)


def _perpendicular(v: np.ndarray) -> np.ndarray:
    p = np.cross(v, [0.0, 0.0, 1.0])
    if np.linalg.norm(p) < 0.3:
        p = np.cross(v, [1.0, 0.0, 0.0])
    return p / np.linalg.norm(p)


def _path(spec: SignSpec, s: np.ndarray, periodic: bool = False) -> np.ndarray:
    """Dominant wrist displacement (len(s), 3) from the sign's start position at phases `s` in [0, 1]."""
    v, size, r = DIRECTIONS[spec.direction], spec.size, spec.reps
    e = s if periodic else minimum_jerk(s)
    m = spec.movement
    if m in ("straight", "arc"):
        prog = e if (r == 1 and not periodic) else (1.0 - np.cos(2 * np.pi * r * s)) / 2.0
        size = size if r == 1 else 0.7 * size  # repeated movements are shorter
        d = prog[:, None] * v * size
        if m == "arc":
            d = d + (np.sin(np.pi * prog) * 0.3 * size)[:, None] * _perpendicular(v)
        return d
    if m == "circle":
        u1, u2 = (np.asarray(x) for x in PLANES[spec.plane])
        theta = 2 * np.pi * r * (s if periodic else _cruise(s)) * (1.0 if spec.clockwise else -1.0)
        return spec.size / 2 * ((np.cos(theta) - 1.0)[:, None] * u1 + np.sin(theta)[:, None] * u2)
    if m == "tap":
        contact = _CONTACT_BODY if spec.location in BODY_LOCATIONS and spec.hands != "base" else _CONTACT_SPACE
        return (spec.size / 3 * np.sin(np.pi * r * s) ** 2)[:, None] * contact
    if m == "zigzag":
        side = _perpendicular(v)
        return e[:, None] * v * size + (0.22 * size * np.sin(2 * np.pi * (r + 1) * s))[:, None] * side
    return e[:, None] * v * size  # twist, wiggle, hold: a small drift


class SynthSignLexicon:
    """The SynthSign language: gloss -> motion, signers, and the English -> gloss mapping.

    Args:
        seed (`int`, defaults to `LEXICON_SEED`): seed of the random sign parameters; keep the default to get
            the language the published corpora use.

    Example:
        ```python
        >>> lex = SynthSignLexicon()
        >>> lex.text_to_gloss("the weather tomorrow will be rainy")
        ['TOMORROW', 'WEATHER', 'RAIN']
        >>> poses, spans = lex.sentence_motion(["TOMORROW", "WEATHER", "RAIN"], "signer_01")
        >>> poses.shape[1]
        133
        ```
    """

    def __init__(self, seed: int = LEXICON_SEED):
        self.seed = seed
        self.glosses: List[str] = lexicon_glosses()
        self.specs: Dict[str, SignSpec] = build_specs(self.glosses, seed)
        self.signers: Dict[str, SignerProfile] = make_signers(seed=seed)
        self._twists: Dict[Tuple, float] = {}

    # ------------------------------------------------------------------------------- lookups
    text_to_gloss = staticmethod(text_to_gloss)

    def spec(self, gloss: str) -> SignSpec:
        base = gloss[:-1] if gloss.endswith("+") else gloss
        if base not in self.specs:
            raise ValueError(
                f"`gloss` {gloss!r} is not in the SynthSign lexicon ({len(self.specs)} glosses, plurals as 'X+')."
            )
        return self.specs[base]

    def signer(self, signer: Union[str, SignerProfile]) -> SignerProfile:
        if isinstance(signer, SignerProfile):
            return signer
        if signer not in self.signers:
            raise ValueError(f"`signer` {signer!r} is unknown; expected one of {sorted(self.signers)}.")
        return self.signers[signer]

    def _twist(self, pos: np.ndarray, orientation: str) -> float:
        key = (tuple(np.round(pos, 2)), orientation)
        if key not in self._twists:
            normal, flex = ORIENTATIONS[orientation]
            self._twists[key] = solve_twist(np.round(pos, 2), normal, flex)
        return self._twists[key]

    # ------------------------------------------------------------------------------ channels
    def rest_channels(self, signer: Union[str, SignerProfile]) -> np.ndarray:
        """One control-channel row of the signer's rest pose (arms down, relaxed hands)."""
        p = self.signer(signer)
        row = np.zeros(NUM_CHANNELS)
        row[CHANNELS["dom_pos"]] = REST_WRIST
        row[CHANNELS["nd_pos"]] = mirror_points(REST_WRIST)
        tw = self._twist(REST_WRIST, "medial")
        row[CHANNELS["dom_ori"]] = (tw, 0.0, 0.0)
        row[CHANNELS["nd_ori"]] = (tw, 0.0, 0.0)
        row[CHANNELS["dom_hand"]] = RELAXED_HAND
        row[CHANNELS["nd_hand"]] = RELAXED_HAND
        row[CHANNELS["head"]] = p.head
        row[CHANNELS["expr"]] = p.expression
        return row

    def _passive(self, p: SignerProfile) -> Tuple[np.ndarray, float]:
        if p.passive == "waist":
            return WAIST_HOLD, self._twist(mirror_points(WAIST_HOLD), "up")
        return mirror_points(REST_WRIST), self._twist(REST_WRIST, "medial")

    def _sign(
        self,
        spec: SignSpec,
        p: SignerProfile,
        rng: Optional[np.random.Generator],
        speed: float,
        nonmanual: bool = True,
        shift: float = 0.0,
        dur_scale: float = 1.0,
        amp_scale: float = 1.0,
    ) -> np.ndarray:
        def jit(sd, size=None):  # per-sample jitter; none without an rng (the signer's canonical form)
            if rng is None:
                return np.zeros(size) if size else 0.0
            return rng.normal(0.0, sd, size)
        n = max(6, int(round(0.9 * spec.base_frames * dur_scale * (1.0 + jit(0.07)) / speed)))
        s = np.linspace(0.0, 1.0, n)
        amp = p.amplitude * amp_scale * (1.0 + jit(0.05))
        offset = np.asarray(p.offset) + jit(0.008, 3) + np.array([shift, 0.0, 0.0])
        anchor = DOM_ON_BASE if spec.hands == "base" else ANCHORS[spec.location]
        start = anchor.copy()
        if spec.movement == "tap":  # start away from the contact point, touch it at each repetition
            contact = _CONTACT_BODY if spec.location in BODY_LOCATIONS and spec.hands != "base" else _CONTACT_SPACE
            start = anchor - contact * spec.size / 3 * amp
        disp = _path(spec, s) * amp
        ch = np.zeros((n, NUM_CHANNELS))
        pd = start + offset + disp
        ch[:, CHANNELS["dom_pos"]] = pd
        normal_flex = ORIENTATIONS[spec.orientation][1]
        twist = self._twist(anchor, spec.orientation) + p.twist_bias + jit(0.05)
        ori = np.zeros((n, 3))
        ori[:, 0], ori[:, 1] = twist, normal_flex
        if spec.movement == "twist":
            ori[:, 0] += 0.5 * np.sin(2 * np.pi * spec.reps * minimum_jerk(s))
        ch[:, CHANNELS["dom_ori"]] = ori
        # handshapes: optional change in the middle of the sign, wiggling fingers, signer laxness
        hs = np.repeat(HANDSHAPES[spec.handshape][None], n, 0)
        if spec.handshape_end:
            c = minimum_jerk((s - 0.25) / 0.5)[:, None]
            hs = (1 - c) * hs + c * HANDSHAPES[spec.handshape_end][None]
        if spec.movement == "wiggle":
            hs = hs.copy()
            for i in range(4):
                wave = 0.35 * np.sin(2 * np.pi * (1.5 + spec.reps) * s + 1.3 * i)  # ~5 frames per cycle
                hs[:, 9 * i + 2] += wave  # MCP and PIP curl (z) of finger i
                hs[:, 9 * i + 5] += 0.6 * wave
        hs = (1 - p.laxness) * hs + p.laxness * RELAXED_HAND[None] + jit(0.03, 45)[None]
        ch[:, CHANNELS["dom_hand"]] = hs
        # non-dominant hand
        if spec.hands == "one":
            pos, tw = self._passive(p)
            ch[:, CHANNELS["nd_pos"]] = pos
            ch[:, CHANNELS["nd_ori"]] = (tw + p.twist_bias, 0.0, 0.0)
            ch[:, CHANNELS["nd_hand"]] = RELAXED_HAND
        elif spec.hands == "base":
            base = BASE_ANCHOR + mirror_points(np.asarray(p.offset)) + jit(0.006, 3)
            ch[:, CHANNELS["nd_pos"]] = base
            btw = self._twist(mirror_points(BASE_ANCHOR), spec.base_orientation) + p.twist_bias
            ch[:, CHANNELS["nd_ori"]] = (btw, ORIENTATIONS[spec.base_orientation][1], 0.0)
            ch[:, CHANNELS["nd_hand"]] = (1 - p.laxness) * HANDSHAPES[spec.base_handshape] + p.laxness * RELAXED_HAND
        else:
            if spec.hands == "mirror":
                pn = mirror_points(pd)
            elif spec.hands == "parallel":
                pn = mirror_points(start + offset) + disp
            else:  # alternate: the other hand half a cycle later
                shifted = _path(spec, s + 0.5 / spec.reps, periodic=True) * amp
                pn = mirror_points(start + offset + shifted)
            ch[:, CHANNELS["nd_pos"]] = pn
            ch[:, CHANNELS["nd_ori"]] = ori
            ch[:, CHANNELS["nd_hand"]] = hs + jit(0.02, 45)[None]
        # face and head
        ch[:, CHANNELS["head"]] = p.head
        if spec.mouthing:
            ch[:, CHANNELS["jaw"]] = (spec.mouthing * np.sin(np.pi * max(1, spec.reps) * s) ** 2)[:, None]
        expr = np.tile(np.asarray(p.expression), (n, 1))
        env = np.sin(np.pi * s) ** 0.5
        for k, val in spec.face:
            expr[:, k] += val * env
        ch[:, CHANNELS["expr"]] = expr
        if spec.headshake and nonmanual:
            ch[:, CHANNELS["head"].start + 1] += 0.22 * env * np.sin(2 * np.pi * np.arange(n) / (9.0 / speed))
        return ch

    def sign_channels(self, gloss: str, signer: Union[str, SignerProfile] = "signer_01",
                      rng: Optional[np.random.Generator] = None, speed: Optional[float] = None,
                      nonmanual: bool = True) -> np.ndarray:
        """Control channels (T, `NUM_CHANNELS`) of one sign; a plural `X+` repeats `X` sweeping sideways."""
        spec, p = self.spec(gloss), self.signer(signer)
        speed = p.speed if speed is None else speed
        if not gloss.endswith("+"):
            return self._sign(spec, p, rng, speed, nonmanual)
        first = self._sign(spec, p, rng, speed, nonmanual, shift=0.035, dur_scale=0.75, amp_scale=0.85)
        second = self._sign(spec, p, rng, speed, nonmanual, shift=-0.05, dur_scale=0.75, amp_scale=0.85)
        return np.concatenate([first, _interpolate(first[-1], second[0], 3), second])

    @staticmethod
    def _transition_frames(a: np.ndarray, b: np.ndarray, p: SignerProfile, speed: float, rest: bool = False) -> int:
        # effort: how far the wrists travel (metres) and how much the forearms turn (radians); a 40 cm move
        # takes ~9 frames (0.37 s), peaking near 2.3 m/s like a brisk human transition
        dist = max(np.linalg.norm(a[CHANNELS["dom_pos"]] - b[CHANNELS["dom_pos"]]),
                   np.linalg.norm(a[CHANNELS["nd_pos"]] - b[CHANNELS["nd_pos"]]))
        twist = max(abs(a[CHANNELS["dom_ori"].start] - b[CHANNELS["dom_ori"].start]),
                    abs(a[CHANNELS["nd_ori"].start] - b[CHANNELS["nd_ori"].start]))
        if rest:  # raising the hands into signing space (or dropping them) is less hurried
            return int(np.clip(round((4.0 + 20.0 * dist + 1.0 * twist) * p.transition / speed), 4, 18))
        return int(np.clip(round((3.0 + 17.0 * dist + 1.5 * twist) * p.transition / speed), 3, 14))

    def sentence_channels(self, glosses: Sequence[str], signer: Union[str, SignerProfile] = "signer_01",
                          rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, List[List[int]]]:
        """Channels of a signed sentence (rest, signs joined by transitions, rest) and each sign's [start, end)."""
        if len(glosses) == 0:
            raise ValueError("`glosses` is empty; expected at least one SynthSign gloss.")
        p = self.signer(signer)
        speed = p.speed * (1.0 + (rng.normal(0.0, 0.04) if rng is not None else 0.0))
        # longer sentences are signed faster (each sign is shortened), as in natural signing
        speed *= min(1.0 + SPEEDUP_PER_SIGN * max(0, len(glosses) - 3), MAX_SPEEDUP)
        rest = self.rest_channels(p)
        n0 = int(rng.integers(2, 5)) if rng is not None else 3
        n1 = int(rng.integers(2, 5)) if rng is not None else 3
        signs = [self.sign_channels(g, p, rng, speed, nonmanual=g != "NOT") for g in glosses]
        signs = coarticulate(signs, rng)
        pieces, spans, cur, last = [np.repeat(rest[None], n0, 0)], [], n0, rest
        for sign in signs:
            nt = self._transition_frames(last, sign[0], p, speed, rest=not spans)
            pieces += [_interpolate(last, sign[0], nt), sign]
            spans.append([cur + nt, cur + nt + len(sign)])
            cur += nt + len(sign)
            last = sign[-1]
        nt = self._transition_frames(last, rest, p, speed, rest=True)
        pieces += [_interpolate(last, rest, nt), np.repeat(rest[None], n1, 0)]
        ch = np.concatenate(pieces)
        self._sentence_nonmanuals(ch, list(glosses), spans, speed)
        return ch, spans

    @staticmethod
    def _sentence_nonmanuals(ch: np.ndarray, glosses: List[str], spans: List[List[int]], speed: float) -> None:
        T, head, expr = len(ch), CHANNELS["head"].start, CHANNELS["expr"].start
        for k, g in enumerate(glosses):
            if g == "NOT":  # head shake over the negated sign and NOT
                a, b = spans[max(k - 1, 0)][0], spans[k][1]
                env = _envelope(T, a, b)
                ch[:, head + 1] += 0.22 * env * np.sin(2 * np.pi * (np.arange(T) - a) / (9.0 / speed))
            if g == "WHY" and k < len(glosses) - 1:  # rhetorical question: brows up on WHY
                ch[:, expr] += 1.4 * _envelope(T, spans[k][0] - 2, spans[k][1] + 2)
        a, b = spans[0][0], spans[-1][1]
        if glosses[-1] == "QUESTION":
            env = _envelope(T, a, b)
            ch[:, expr] += 1.6 * env
            ch[:, head] += 0.1 * env
        elif glosses[-1] in WH_GLOSSES:
            env = _envelope(T, a, b)
            ch[:, expr + 1] += 1.6 * env
            ch[:, head] += 0.06 * env

    # ------------------------------------------------------------------------------ features
    def gloss_motion(self, gloss: str, signer: Union[str, SignerProfile] = "signer_01",
                     rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """`smplx133` frames (T, 133) float32 of one sign on its own (no rest pose, no transitions).

        Args:
            gloss (`str`): a lexicon gloss, or a plural `X+`.
            signer (`str` or `SignerProfile`, defaults to `"signer_01"`): who signs (speed, size, handedness).
            rng (`np.random.Generator`, *optional*): per-sample jitter; `None` gives the signer's canonical form.
        """
        p = self.signer(signer)
        return channels_to_features(self.sign_channels(gloss, p, rng), left_handed=p.left_handed)

    def sentence_motion(self, glosses: Sequence[str], signer: Union[str, SignerProfile] = "signer_01",
                        rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, List[List[int]]]:
        """`smplx133` frames (T, 133) float32 of a gloss sequence with rest pose, transitions and non-manuals,
        plus each gloss's `[start, end)` frame span."""
        p = self.signer(signer)
        ch, spans = self.sentence_channels(glosses, p, rng)
        return channels_to_features(ch, left_handed=p.left_handed), spans

    def rest_pose(self, signer: Union[str, SignerProfile] = "signer_01") -> np.ndarray:
        """(133,) rest pose of `signer` (arms relaxed at the sides)."""
        p = self.signer(signer)
        return channels_to_features(self.rest_channels(p)[None], left_handed=p.left_handed)[0]


@functools.lru_cache(maxsize=4)
def get_lexicon(seed: int = LEXICON_SEED) -> SynthSignLexicon:
    """Cached `SynthSignLexicon` (building one solves a few dozen small IK problems)."""
    return SynthSignLexicon(seed)

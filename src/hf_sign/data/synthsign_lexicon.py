"""SynthSign lexicon and signers: a parametric motion per gloss, signer variation, co-articulated sentences.

Every gloss of `synthsign_grammar.lexicon_glosses()` gets a `SignSpec`: hand arrangement (one-handed,
mirrored, parallel, alternating, or dominant hand on a passive base hand), location (one of `ANCHORS`),
movement (straight, arc, circle, tap, zigzag, twist, wiggle, hold), direction or plane, size, 1-3
repetitions, start/end handshape from `HANDSHAPES`, palm orientation class, optional mouthing (jaw) and
facial expression. Grammatical and iconic signs (pronouns, numbers, wh-signs, `NOT`, `QUESTION`, ...)
have hand-written parameters; the others are drawn from a fixed seed so that any two signs differ in at
least three of (hands, location, movement, handshape, orientation, direction/plane), one of them shaping the
arm path (hands, location, movement or direction/plane). The lexicon and the signers
are the *language*: they do not depend on the corpus seed.

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
from dataclasses import dataclass, field
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

LEXICON_SEED = 20240611  # fixed: the lexicon and the signers are part of the language, not of a corpus
HAND_TYPES = ("one", "mirror", "parallel", "alternate", "base")
MOVEMENTS = ("straight", "arc", "circle", "tap", "zigzag", "twist", "wiggle", "hold")
DIRECTIONS: Dict[str, np.ndarray] = {k: np.asarray(v, dtype=np.float64) / np.linalg.norm(v) for k, v in {
    "forward": (0, 0, 1), "up": (0, 1, 0), "down": (0, -1, 0), "out": (-1, 0, 0), "in": (1, 0, 0),
    "back": (0, 0, -1), "up-forward": (0, 1, 1), "down-forward": (0, -0.75, 1), "out-up": (-1, 1, 0),
    "in-down": (1, -1, 0), "out-forward": (-0.75, 0, 1),
}.items()}
# Circle planes as (u1, u2): the hand starts on the circle and its centre lies along -u1 (towards the midline
# or forward), so circles never pass behind their starting point into the body.
PLANES = {"frontal": ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0)), "horizontal": ((0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),
          "sagittal": ((0.0, 0.0, -1.0), (0.0, 1.0, 0.0))}
# Palm orientation classes: target palm normal of the (right) dominant hand and the wrist flexion used.
ORIENTATIONS = {"down": ((0, -1, 0), 0.1), "up": ((0, 1, 0), 0.1), "medial": ((1, 0, 0), 0.0),
                "forward": ((0, 0.3, 1), -0.55), "body": ((0, 0, -1), 0.35)}
_BODY_LOCATIONS = ("chest", "stomach", "chin", "mouth", "forehead", "cheek", "temple", "shoulder")
_TWO_HAND_LOCATIONS = ("neutral", "high", "low", "chest", "stomach", "side")
_HANDSHAPE_CHANGES = {"S": "5", "5": "S", "B": "A", "A": "5", "O": "5", "flat-O": "5", "1": "X", "C": "S",
                      "V": "bent-B", "L": "A", "Y": "S", "claw": "S", "X": "1", "F": "5", "4": "S", "W": "S",
                      "3": "S", "I": "S", "ILY": "S", "bent-B": "B"}
_FACES = {"HAPPY": {2: 1.6}, "SAD": {2: -1.2, 1: 0.8}, "ANGRY": {1: 1.8}, "TIRED": {3: 0.6, 0: -0.6},
          "SICK": {1: 0.8, 2: -0.8}, "FUNNY": {2: 1.4, 3: 0.6}, "SHY": {2: 0.6, 0: -0.8}}


@dataclass(frozen=True)
class SignSpec:
    """Parameters of one sign (see the module docstring). Positions are for a right-handed signer."""

    gloss: str
    hands: str
    location: str
    movement: str
    handshape: str
    orientation: str
    direction: str = "forward"
    plane: str = "frontal"
    handshape_end: Optional[str] = None
    size: float = 0.11  # path length (straight/arc/zigzag), radius x 2 (circle), depth x 3 (tap)
    reps: int = 1
    clockwise: bool = True
    base_handshape: str = "B"
    base_orientation: str = "up"
    mouthing: float = 0.0
    face: Tuple[Tuple[int, float], ...] = ()
    headshake: bool = False

    @property
    def signature(self) -> Tuple[str, ...]:
        # taps move towards the location; twist, wiggle and hold barely move the wrist: no direction to differ in
        if self.movement == "circle":
            way = self.plane
        else:
            way = "-" if self.movement in ("tap", "twist", "wiggle", "hold") else self.direction
        return (self.hands, self.location, self.movement, self.handshape, self.orientation, way)

    @property
    def base_frames(self) -> float:
        r = self.reps
        return {
            "straight": 11.0 if r == 1 else 6 + 6 * r,
            "arc": 12.0 if r == 1 else 7 + 6 * r,
            "circle": 8 + 8 * r,
            "tap": 6 + 5 * r,
            "zigzag": 14.0,
            "twist": 8 + 6 * r,
            "wiggle": 10 + 4 * r,
            "hold": 11.0,
        }[self.movement]


@dataclass(frozen=True)
class SignerProfile:
    """One signer's style: speed (x tempo), amplitude (x movement size), handedness and small offsets."""

    signer_id: str
    speed: float
    amplitude: float
    left_handed: bool
    offset: Tuple[float, float, float]
    laxness: float  # 0 = crisp handshapes, towards 0.2 = fingers drift to a relaxed hand
    twist_bias: float
    head: Tuple[float, float, float]
    transition: float  # x transition length
    passive: str  # where the non-dominant hand waits during one-handed signs: "rest" or "waist"
    expression: Tuple[float, ...] = field(default=(0.0,) * 10)


def make_signers(num_signers: int = 8, seed: int = LEXICON_SEED) -> Dict[str, SignerProfile]:
    """The fixed SynthSign signers `signer_01` ... (signers 03 and 07 are left-handed)."""
    rng = np.random.default_rng([seed, 7])
    out = {}
    for i in range(1, num_signers + 1):
        sid = f"signer_{i:02d}"
        out[sid] = SignerProfile(
            signer_id=sid, speed=float(rng.uniform(0.8, 1.25)), amplitude=float(rng.uniform(0.85, 1.15)),
            left_handed=i % 4 == 3, offset=tuple(float(x) for x in rng.normal(0, 0.015, 3)),
            laxness=float(rng.uniform(0.0, 0.18)), twist_bias=float(rng.uniform(-0.15, 0.15)),
            head=tuple(float(x) for x in rng.normal(0, 0.04, 3)), transition=float(rng.uniform(0.85, 1.15)),
            passive="waist" if rng.random() < 0.4 else "rest",
            expression=tuple(float(x) for x in rng.normal(0, 0.15, 10)),
        )
    return out


# ------------------------------------------------------------------------------------- lexicon build
# Hand-written signs: (hands, location, movement, handshape, orientation, direction or circle plane, extras).
_HANDWRITTEN = {
    "ME": ("one", "chest", "tap", "1", "body", "forward", dict(reps=2)),
    "YOU": ("one", "neutral", "straight", "1", "down", "forward", {}),
    "HE": ("one", "neutral", "straight", "1", "medial", "out", {}),
    "SHE": ("one", "cheek", "straight", "1", "medial", "out-forward", {}),
    "WE": ("one", "shoulder", "arc", "1", "body", "out", {}),
    "THEY": ("one", "side", "arc", "1", "down", "back", {}),
    "MY": ("one", "chest", "tap", "B", "body", "forward", {}),
    "YOUR": ("one", "neutral", "straight", "B", "forward", "forward", {}),
    "HIS": ("one", "high", "straight", "B", "forward", "out", {}),
    "HER": ("one", "cheek", "straight", "B", "forward", "down-forward", {}),
    "OUR": ("one", "chest", "arc", "B", "body", "out", dict(size=0.16)),
    "NOT": ("one", "chin", "straight", "A", "medial", "forward", dict(headshake=True)),
    "QUESTION": ("one", "high", "straight", "1", "forward", "down-forward", dict(handshape_end="X")),
    "BUT": ("mirror", "neutral", "straight", "1", "forward", "out", {}),
    "WHAT": ("mirror", "low", "zigzag", "5", "up", "out", {}),
    "WHERE": ("one", "high", "zigzag", "1", "forward", "up", dict(size=0.05)),
    "WHO": ("one", "chin", "circle", "L", "medial", "frontal", dict(size=0.06)),
    "WHEN": (
        "base",
        "neutral",
        "circle",
        "1",
        "down",
        "horizontal",
        dict(base_handshape="1", base_orientation="medial"),
    ),
    "WHY": ("one", "forehead", "straight", "B", "body", "out-forward", dict(handshape_end="Y")),
    "HOW-MANY": ("mirror", "neutral", "straight", "S", "up", "up", dict(handshape_end="5")),
    "RIGHT-DIRECTION": ("one", "neutral", "arc", "bent-B", "medial", "out", {}),
    "LEFT": ("one", "neutral", "arc", "L", "forward", "in", {}),
    "CORRECT": ("base", "neutral", "tap", "1", "medial", "down", dict(base_handshape="1", base_orientation="medial")),
    "TOMORROW": ("one", "cheek", "arc", "A", "medial", "forward", {}),
    "YESTERDAY": ("one", "cheek", "arc", "Y", "body", "out", dict(size=0.08)),
    "NOW": ("mirror", "low", "straight", "Y", "up", "down", {}),
    "TODAY": ("mirror", "low", "tap", "Y", "up", "down", dict(reps=2)),
}


def _overrides() -> Dict[str, dict]:
    o: Dict[str, dict] = {}
    for gloss, (hands, location, movement, handshape, orientation, way, extra) in _HANDWRITTEN.items():
        o[gloss] = dict(hands=hands, location=location, movement=movement, handshape=handshape,
                        orientation=orientation, **{"plane" if movement == "circle" else "direction": way}, **extra)
    numbers = ("ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE", "TEN")
    shapes = ("1", "V", "3", "4", "5", "W", "I", "Y", "F", "A")
    movements = ("straight", "twist", "tap", "hold", "circle")
    for i, (n, hs) in enumerate(zip(numbers, shapes)):  # a unique (location, movement) pair each
        o[n] = dict(hands="one", location=("high", "neutral")[i // 5], movement=movements[i % 5], handshape=hs,
                    orientation="body" if i < 5 else "medial", direction="forward", plane="frontal", size=0.09,
                    reps=2 if movements[i % 5] == "tap" else 1)
    return o


def _choice(rng: np.random.Generator, items, probs=None):
    if probs is None:
        return items[int(rng.integers(len(items)))]
    p = np.asarray(probs, dtype=np.float64)
    return items[int(rng.choice(len(items), p=p / p.sum()))]


def _random_spec(gloss: str, rng: np.random.Generator, fixed: dict) -> SignSpec:
    """Draw a sign; every parameter in `fixed` (a hand-written override) wins over the random draw."""
    def pick(name, draw):
        value = draw()  # always draw, so the random stream does not depend on which parameters are fixed
        return fixed.get(name, value)

    hands = pick("hands", lambda: _choice(rng, HAND_TYPES, (0.5, 0.16, 0.08, 0.1, 0.16)))
    if hands == "base":
        location = pick("location", lambda: "neutral")
        on_base = ("tap", "straight", "arc", "circle", "zigzag", "hold")
        movement = pick("movement", lambda: _choice(rng, on_base, (0.3, 0.2, 0.15, 0.15, 0.1, 0.1)))
    else:
        location = pick("location", lambda: _choice(rng, _TWO_HAND_LOCATIONS if hands != "one" else tuple(ANCHORS)))
        if hands == "alternate":
            movement = pick("movement", lambda: _choice(rng, ("straight", "circle", "tap")))
        else:
            movement = pick("movement", lambda: _choice(rng, MOVEMENTS, (0.2, 0.13, 0.13, 0.14, 0.1, 0.1, 0.08, 0.12)))
    if location in ("forehead", "temple", "cheek", "mouth", "chin"):  # keep the hands from rising above the head
        directions = ("forward", "down-forward", "out-forward", "out", "down")
    elif location in _BODY_LOCATIONS + ("cross", "high"):  # no movement back into the body or face
        directions = ("forward", "down-forward", "out-forward", "out", "down", "up-forward")
    else:
        directions = tuple(DIRECTIONS)
    shapes = tuple(HANDSHAPES)
    if movement == "wiggle":
        shapes = tuple(h for h in HANDSHAPES if h not in ("S", "A", "O", "flat-O", "X", "I"))
    handshape = pick("handshape", lambda: _choice(rng, shapes))  # wiggling needs extended fingers
    reps = int(_choice(rng, (1, 2, 3), (0.55, 0.33, 0.12)))
    if hands == "alternate" or movement == "tap":
        reps = max(reps, 2)
    reps = fixed.get("reps", reps if not fixed else 1)  # hand-written signs are single unless they say otherwise
    change = (movement == "hold" or rng.random() < 0.22) and not fixed
    end = _HANDSHAPE_CHANGES[handshape] if rng.random() < 0.6 else _choice(rng, tuple(HANDSHAPES))
    size = {"circle": rng.uniform(0.07, 0.12), "tap": rng.uniform(0.09, 0.14), "zigzag": rng.uniform(0.1, 0.16),
            "twist": rng.uniform(0.02, 0.04), "wiggle": rng.uniform(0.0, 0.03), "hold": rng.uniform(0.02, 0.05)}.get(
        movement, rng.uniform(0.07, 0.14))
    mouthing = float(rng.uniform(0.08, 0.22)) if rng.random() < 0.3 and not fixed else 0.0
    spec = dict(
        gloss=gloss, hands=hands, location=location, movement=movement, handshape=handshape, reps=reps,
        orientation=pick("orientation", lambda: _choice(rng, tuple(ORIENTATIONS))),
        direction=pick("direction", lambda: _choice(rng, directions)),
        plane=pick("plane", lambda: _choice(rng, tuple(PLANES))), size=float(fixed.get("size", size)),
        clockwise=bool(rng.random() < 0.5), handshape_end=fixed.get("handshape_end", end if change else None),
        base_handshape=pick("base_handshape", lambda: _choice(rng, ("B", "S", "5", "1", "C"))),
        base_orientation=pick("base_orientation", lambda: _choice(rng, ("up", "medial", "down"))),
        mouthing=mouthing, headshake=bool(fixed.get("headshake", False)),
    )
    if spec["handshape_end"] == spec["handshape"]:
        spec["handshape_end"] = None
    if gloss in _FACES:
        spec["face"] = tuple(sorted(_FACES[gloss].items()))
    return SignSpec(**spec)


def _distinct(a: Tuple[str, ...], b: Tuple[str, ...], min_distance: int) -> bool:
    """At least `min_distance` differing parameters, one of them shaping the arm path (hands, location,
    movement or direction/plane), so no two signs differ by the hand alone."""
    return sum(x != y for x, y in zip(a, b)) >= min_distance and a[:3] + a[5:] != b[:3] + b[5:]


def build_specs(glosses: Sequence[str], seed: int = LEXICON_SEED, min_distance: int = 3) -> Dict[str, SignSpec]:
    """Sign parameters for `glosses` (hand-written overrides first, then distinct random signs)."""
    overrides = _overrides()
    specs: Dict[str, SignSpec] = {}
    for g in glosses:
        if g in overrides:
            specs[g] = _random_spec(g, np.random.default_rng([seed, 2, len(specs)]), overrides[g])
    sigs = [s.signature for s in specs.values()]
    rng = np.random.default_rng([seed, 1])
    for g in glosses:
        if g in specs:
            continue
        for _ in range(1000):
            spec = _random_spec(g, rng, {})
            if all(_distinct(spec.signature, s, min_distance) for s in sigs):
                break
        else:  # pragma: no cover - the parameter space is far larger than the lexicon
            raise RuntimeError(f"Could not find a distinct sign for gloss {g!r}.")
        specs[g] = spec
        sigs.append(spec.signature)
    return {g: specs[g] for g in glosses}


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
        contact = _CONTACT_BODY if spec.location in _BODY_LOCATIONS and spec.hands != "base" else _CONTACT_SPACE
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
            contact = _CONTACT_BODY if spec.location in _BODY_LOCATIONS and spec.hands != "base" else _CONTACT_SPACE
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

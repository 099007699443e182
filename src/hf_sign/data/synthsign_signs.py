"""SynthSign signs and signers: the parameters of each gloss's sign (`SignSpec`) and the fixed signers.

Every gloss of `synthsign_grammar.lexicon_glosses()` gets a `SignSpec`: hand arrangement (one-handed,
mirrored, parallel, alternating, or dominant hand on a passive base hand), location (one of `ANCHORS`),
movement (straight, arc, circle, tap, zigzag, twist, wiggle, hold), direction or plane, size, 1-3
repetitions, start/end handshape from `HANDSHAPES`, palm orientation class, optional mouthing (jaw) and
facial expression. Grammatical and iconic signs (pronouns, numbers, wh-signs, `NOT`, `QUESTION`, ...)
have hand-written parameters; the others are drawn from a fixed seed so that any two signs differ in at
least three of (hands, location, movement, handshape, orientation, direction/plane), one of them shaping the
arm path (hands, location, movement or direction/plane). The lexicon and the signers
are the *language*: they do not depend on the corpus seed.

`synthsign_lexicon.SynthSignLexicon` turns them into motion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .synthsign_kinematics import ANCHORS, HANDSHAPES

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
BODY_LOCATIONS = ("chest", "stomach", "chin", "mouth", "forehead", "cheek", "temple", "shoulder")
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


# New signer styles outside the range of the eight corpus signers (speed 0.8-1.25, amplitude 0.85-1.15,
# transition 0.85-1.15): a corpus built with one (`hf-sign data synthsign --signer-style NAME`) is a new signer to
# adapt a trained model to (`hf-sign finetune`).
SIGNER_STYLES = {
    # slow, large signing with long transitions, the passive hand at the waist, crisp handshapes
    "slow-expansive": dict(speed=0.65, amplitude=1.35, transition=1.4, laxness=0.02, passive="waist"),
    # fast, small signing with short transitions and lax handshapes
    "fast-compact": dict(speed=1.55, amplitude=0.7, transition=0.7, laxness=0.2, passive="rest"),
}


def make_style_signer(style: str) -> SignerProfile:
    """The signer `signer_<style>` of `SIGNER_STYLES` (offsets, head and expression of a neutral signer)."""
    if style not in SIGNER_STYLES:
        raise ValueError(f"`signer_style` must be one of {sorted(SIGNER_STYLES)}; got {style!r}.")
    return SignerProfile(
        signer_id=f"signer_{style}", left_handed=False, offset=(0.0, 0.0, 0.0), twist_bias=0.0,
        head=(0.0, 0.0, 0.0), **SIGNER_STYLES[style],
    )


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
    elif location in BODY_LOCATIONS + ("cross", "high"):  # no movement back into the body or face
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

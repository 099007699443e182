"""The letter clips of the `spoken-to-signed` fingerspelling lexicon, read onto the `holistic` skeleton at 25 fps.

`lexicon_root` finds the lexicon in the installed package and `load_letter_clips` reads its `index.csv` and
clips into `LetterClip`s (features, the letter's hold without the rise-in and drop-out, whether it is
static); `hf_sign.data.fingerspelling` builds the corpus from them.

Clip facts that matter (checked on spoken-to-signed 0.4.0; the card repeats them): the clips were
pre-processed upstream (trimmed to the active signing span, normalised so the shoulder midpoint sits
at (250, 250, 250) px with shoulders ~200 px apart, appearance removed, and time-scaled to ~1 s per
letter); `start`/`end` in the index are milliseconds of the original recordings, not of the shipped
clips, so they are ignored. Most languages are signed with the right hand and the left hand is never
detected (it is zeroed upstream for ase/gsg/sgg); the Italian clips use the left hand. Such
never-detected joints are placed on the body-pose wrist (`allow_missing` policy of
`hf_sign.data.pose_io`), and gaps in detected joints are linearly interpolated; the card reports
counts. Clips not at 25 fps are resampled to 25 fps (linear). The `fsl` rows of the index reuse the
ASL clips (upstream `create_index.py` mirrors them) and are skipped unless `include_mirrored=True`.
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm.auto import tqdm

from ..skeletons.spec import get_skeleton
from .pose_io import pose_to_holistic, read_pose_file

FPS = 25.0
INSTALL_HINT = 'pip install "hf-sign[fingerspelling]"'


def lexicon_root() -> Path:
    """Folder of the installed `spoken-to-signed` fingerspelling lexicon (`index.csv` + clips).

    Raises:
        `ImportError` (package missing) or `RuntimeError` (lexicon missing), both naming the install command.
    """
    try:
        import spoken_to_signed
    except ImportError as err:
        raise ImportError(
            f"The fingerspelling corpus reads its clips from the `spoken-to-signed` package, which is not installed: "
            f"{INSTALL_HINT}"
        ) from err
    root = Path(spoken_to_signed.__file__).resolve().parent / "assets" / "fingerspelling_lexicon"
    if not (root / "index.csv").is_file():
        raise RuntimeError(
            f"`spoken-to-signed` is installed but has no fingerspelling lexicon at {root}; reinstall it: "
            f"{INSTALL_HINT}"
        )
    return root


@dataclass
class LetterClip:
    """One letter clip on the `holistic` skeleton at 25 fps (`hold` = [start, end) of the letter proper)."""

    language: str
    spoken_language: str
    letter: str
    path: str
    features: np.ndarray
    hold: Tuple[int, int]
    static: bool


def resample(features: np.ndarray, src_fps: float, dst_fps: float = FPS) -> np.ndarray:
    """Linear resampling of (T, D) features from `src_fps` to `dst_fps` (same duration)."""
    if abs(src_fps - dst_fps) < 1e-3 or len(features) < 2:
        return features
    n = int(round((len(features) - 1) * dst_fps / src_fps)) + 1
    t = np.arange(n) * (src_fps / dst_fps)
    src = np.arange(len(features))
    return np.stack([np.interp(t, src, features[:, d]) for d in range(features.shape[1])], 1).astype(np.float32)


def find_hold(positions: np.ndarray, spec, motion_threshold: float = 0.03) -> Tuple[Tuple[int, int], bool]:
    """[start, end) of a letter clip without the hand rising in and dropping out, and whether it is static.

    A frame step is "slow" when the faster hand's mean joint speed is below `motion_threshold` x the
    shoulder width per frame; the hold runs from the first to the last slow step. Letters with
    movement (J, Z, ...) keep their movement because only the ends are trimmed.
    """
    T = len(positions)
    if T < 3:
        return (0, T), True
    sw = float(np.median(np.linalg.norm(positions[:, spec.joint_names.index("left_shoulder"), :2]
                                        - positions[:, spec.joint_names.index("right_shoulder"), :2], axis=-1)))
    step = np.linalg.norm(np.diff(positions[..., :2], axis=0), axis=-1)  # (T-1, J)
    speed = np.maximum(step[:, list(spec.parts["left_hand"])].mean(1), step[:, list(spec.parts["right_hand"])].mean(1))
    slow = np.flatnonzero(speed < motion_threshold * max(sw, 1.0))
    if len(slow) == 0:
        return (0, T), False
    a, b = int(slow[0]), int(slow[-1]) + 2
    return (a, b), bool(speed[a:b - 1].max() < 2 * motion_threshold * max(sw, 1.0))


def _in_frame_range(features: np.ndarray, dimensions, min_frames: int = 5):
    """Cut a clip to its first run of frames whose joints all lie within one frame size of the picture.

    Two upstream clips (gss `Ο`, `Φ`) leave the picture by thousands of pixels after a few frames, an
    artefact of the upstream cubic time-rescaling. Returns `((start, end), note)`; `note` is empty when the
    clip is fine (the whole clip is kept), and the range is `None` when no run of `min_frames` frames is left.
    """
    w, h = float(dimensions.width or 0), float(dimensions.height or 0)
    if w <= 0 or h <= 0:
        return (0, len(features)), ""
    xy = features.reshape(len(features), -1, 3)[..., :2]
    ok = ((xy[..., 0] >= -w) & (xy[..., 0] <= 2 * w) & (xy[..., 1] >= -h) & (xy[..., 1] <= 2 * h)).all(1)
    if ok.all():
        return (0, len(features)), ""
    worst = float(np.max(np.abs(xy - np.array([w / 2, h / 2]))))
    bad = np.flatnonzero(~ok)
    start = int(np.argmax(ok)) if ok.any() else len(ok)
    end = int(bad[bad > start][0]) if (bad > start).any() else len(ok)
    if end - start < min_frames:
        return (
            None,
            f"excluded: joints up to {worst:.0f} px from the frame centre, no {min_frames} good frames in a row",
        )
    return (start, end), (
        f"cut to frames [{start}, {end}) of {len(ok)}: later frames put joints up to {worst:.0f} px from the centre"
    )


def load_letter_clips(
    languages: Optional[Sequence[str]] = None,
    face: bool = True,
    include_mirrored: bool = False,
    stats: Optional[Dict] = None,
) -> Dict[str, List[LetterClip]]:
    """Read the lexicon's letter clips per sign language (index order), on the holistic skeleton at 25 fps.

    Args:
        languages (`Sequence[str]`, *optional*): sign-language codes to read; all by default.
        face (`bool`, defaults to `True`): `holistic` (with the face subset) or `holistic_noface` features.
        include_mirrored (`bool`, defaults to `False`): also read index rows whose clip another row already uses.
        stats (`dict`, *optional*): filled with what was done to the clips: `"languages"` (per language:
            joint-frames in all, interpolated, on an anchor, clips resampled), `"repairs"` (one line per
            cut or excluded clip) and `"mirrored"` (languages whose rows were skipped as mirrors).
    """
    root = lexicon_root()
    with (root / "index.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    spec = get_skeleton("holistic" if face else "holistic_noface")
    wanted = set(languages) if languages is not None else None
    known = sorted({r["signed_language"] for r in rows})
    if wanted is not None and not wanted <= set(known):
        unknown = sorted(wanted - set(known))
        raise ValueError(f"`languages`: unknown sign language(s) {unknown}; expected some of {known}.")
    seen_paths, out = set(), {}
    stats = stats if stats is not None else {}
    stats.setdefault("languages", {})
    stats.setdefault("repairs", [])
    stats.setdefault("mirrored", set())
    for r in tqdm(rows, desc="fingerspelling clips", unit="clip"):
        lang = r["signed_language"]
        mirrored = r["path"] in seen_paths
        seen_paths.add(r["path"])
        if mirrored and not include_mirrored:
            stats["mirrored"].add(lang)
            continue
        if wanted is not None and lang not in wanted:
            continue
        path = root / r["path"]
        pose = read_pose_file(path)
        feats, conf = pose_to_holistic(pose, source=r["path"], face=face, allow_missing=True)
        keep, note = _in_frame_range(feats, pose.header.dimensions)
        if note:
            stats["repairs"].append(f"{lang} `{r['words']}` ({r['path']}): {note}")
        if keep is None:
            continue
        feats, conf = feats[keep[0] : keep[1]], conf[keep[0] : keep[1]]
        never = (conf == 0).all(0)
        s = stats["languages"].setdefault(lang, {"values": 0, "interpolated": 0, "anchored": 0, "resampled": 0})
        s["values"] += conf.size
        s["interpolated"] += int(((conf == 0) & ~never[None]).sum())
        s["anchored"] += int(never.sum()) * len(conf)
        fps = float(pose.body.fps)
        if abs(fps - FPS) >= 1e-3:
            feats = resample(feats, fps)
            s["resampled"] += 1
        hold, static = find_hold(feats.reshape(len(feats), -1, 3), spec)
        letter = unicodedata.normalize("NFC", r["words"])  # the sgg index spells `Ä` as A + combining diaeresis
        out.setdefault(lang, []).append(LetterClip(lang, r["spoken_language"], letter, r["path"], feats, hold, static))
    return out

"""The hf-sign sample schema (DESIGN.md, "Data contract") as `datasets.Features`.

One row is one signed sentence:

| field | type | meaning |
|---|---|---|
| `id` | string | unique within the corpus |
| `text` | string | spoken-language sentence |
| `prompt` | string | request-style paraphrase (`How do you sign "..."?`), used by Stable Signer |
| `gloss` | list of string | gloss sequence, may be empty |
| `gloss_spans` | list of [start, end) frame pairs | one per gloss where known, else empty |
| `language` | string | sign language code (`ase`, `gsg`, `csl`, `synth`, ...) |
| `signer` | string | signer id |
| `fps` | float32 | frames per second of `poses` |
| `representation` | string | `SkeletonSpec` name of `poses` (`smplx133`, `holistic`, `pt50`, `joints3d`) |
| `num_frames` | int32 | `len(poses)` |
| `poses` | Array2D (num_frames, feature_dim), float32 | the pose sequence |
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from datasets import Array2D, Features, Sequence as HFSequence, Value

FEATURE_FIELDS = (
    "id",
    "text",
    "prompt",
    "gloss",
    "gloss_spans",
    "language",
    "signer",
    "fps",
    "representation",
    "num_frames",
    "poses",
)


def make_prompt(text: str) -> str:
    """Request-style paraphrase of `text` stored in the `prompt` field."""
    return f'How do you sign "{text}"?'


def sign_features(feature_dim: int) -> Features:
    """`datasets.Features` for a corpus whose poses have `feature_dim` numbers per frame."""
    if not isinstance(feature_dim, int) or feature_dim <= 0:
        raise ValueError(f"`feature_dim` must be a positive int; got {feature_dim!r}.")
    return Features(
        {
            "id": Value("string"),
            "text": Value("string"),
            "prompt": Value("string"),
            "gloss": HFSequence(Value("string")),
            "gloss_spans": HFSequence(HFSequence(Value("int32"), length=2)),
            "language": Value("string"),
            "signer": Value("string"),
            "fps": Value("float32"),
            "representation": Value("string"),
            "num_frames": Value("int32"),
            "poses": Array2D(shape=(None, feature_dim), dtype="float32"),
        }
    )


def make_sample(
    *,
    id: str,
    text: str,
    poses: np.ndarray,
    fps: float,
    representation: str,
    gloss: Optional[Sequence[str]] = None,
    gloss_spans: Optional[Sequence[Sequence[int]]] = None,
    language: str = "",
    signer: str = "",
    prompt: Optional[str] = None,
    source: str = "",
) -> Dict[str, Any]:
    """Build one schema-conformant row, validating every field.

    `source` (a file name, optional) is only used in error messages. Raises `ValueError` naming the
    field and, for poses, the first bad frame.
    """
    where = f" in {source}" if source else f" in sample {id!r}"
    poses = np.asarray(poses)
    if poses.ndim != 2:
        raise ValueError(f"`poses`{where} must be 2-D (num_frames, feature_dim); got shape {poses.shape}.")
    if poses.shape[0] == 0:
        raise ValueError(f"`poses`{where} is empty (0 frames).")
    bad = ~np.isfinite(poses)
    if bad.any():
        frame = int(np.argwhere(bad)[0, 0])
        raise ValueError(f"`poses`{where} has NaN/inf values at frame {frame}.")
    if not isinstance(text, str):
        raise ValueError(f"`text`{where} must be a string; got {type(text).__name__}.")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"`fps`{where} must be a positive number; got {fps!r}.")
    gloss = [str(g) for g in (gloss or [])]
    spans: List[List[int]] = [[int(a), int(b)] for a, b in (gloss_spans or [])]
    if spans:
        if len(spans) != len(gloss):
            raise ValueError(
                f"`gloss_spans`{where} has {len(spans)} spans for {len(gloss)} glosses; expected one per gloss."
            )
        for i, (a, b) in enumerate(spans):
            if not (0 <= a < b <= poses.shape[0]):
                raise ValueError(
                    f"`gloss_spans`{where}: span {i} = [{a}, {b}) is not inside [0, {poses.shape[0]}) frames."
                )
    return {
        "id": str(id),
        "text": text,
        "prompt": prompt if prompt is not None else make_prompt(text),
        "gloss": gloss,
        "gloss_spans": spans,
        "language": language,
        "signer": signer,
        "fps": float(fps),
        "representation": representation,
        "num_frames": int(poses.shape[0]),
        "poses": poses.astype(np.float32),
    }

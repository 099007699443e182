"""What `hf-sign render` reads, and the one-call `render_to_file`.

A render input is one pose sequence with its metadata, loaded from either

* a dataset directory in the hf-sign layout (`datasets.load_dataset(path)[split][index]`), or
* a `.npz` file written by `save_npz` (what `hf-sign generate --format npz` writes) with keys
  `poses` (T, D) float, `representation` (str), `fps` (float) and optionally `text` (str) and
  `gloss` (1-D str array). It is read with `allow_pickle=False`: no code runs on load.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from ..skeletons.spec import SkeletonSpec
from .bvh_export import save_bvh
from .frames import draw_frames, render_panels
from .pose_export import save_pose
from .video import VIDEO_EXTENSIONS, save_video

NPZ_REQUIRED_KEYS = ("poses", "representation", "fps")
OUTPUT_EXTENSIONS = VIDEO_EXTENSIONS + (".pose", ".bvh")


@dataclass
class RenderInput:
    """One pose sequence to render.

    Args:
        features (`np.ndarray`): `(T, D)` float32 pose features in the `representation`'s feature layout.
        representation (`str`): `SkeletonSpec` name (`smplx133`, `holistic`, `pt50`, ...).
        fps (`float`): frame rate.
        text (`str`, defaults to `""`): the spoken-language sentence, if known.
        gloss (`List[str]`, defaults to `[]`): gloss sequence, if known.
    """

    features: np.ndarray
    representation: str
    fps: float
    text: str = ""
    gloss: List[str] = field(default_factory=list)

    def to_positions(self) -> np.ndarray:
        """Joint positions `(T, J, 3)` through the representation's `SkeletonSpec`."""
        from ..skeletons.spec import get_skeleton

        return get_skeleton(self.representation).to_positions(self.features)


def save_npz(
    path: Union[str, Path],
    poses: np.ndarray,
    representation: str,
    fps: float,
    text: str = "",
    gloss: Sequence[str] = (),
) -> Path:
    """Write one pose sequence as a render-input `.npz` (plain arrays only, no pickles). Returns the path."""
    poses = np.asarray(poses, dtype=np.float32)
    if poses.ndim != 2:
        raise ValueError(f"`poses` must be 2-D (num_frames, feature_dim); got shape {poses.shape}.")
    if not (isinstance(fps, (int, float, np.floating, np.integer)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"`fps` must be a positive number; got {fps!r}.")
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"`path` must end with .npz; got {str(path)!r}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        poses=poses,
        representation=np.array(str(representation)),
        fps=np.array(float(fps), dtype=np.float64),
        text=np.array(str(text)),
        gloss=np.array([str(g) for g in gloss], dtype=np.str_),
    )
    return path


def _load_npz(path: Path) -> RenderInput:
    if not zipfile.is_zipfile(path):  # numpy would try to unpickle it, and say so
        raise ValueError(f"{str(path)!r} is not a .npz archive; write render inputs with `save_npz` or `np.savez`.")
    try:
        return _read_npz(path)
    except ValueError as err:
        if "pickle" not in str(err):
            raise
        # numpy's own message suggests `allow_pickle=True`, which would run code from the file
        raise ValueError(
            f"{str(path)!r} holds a non-array entry (a pickled Python object); a render input .npz holds plain arrays "
            f"only ({NPZ_REQUIRED_KEYS}, written by `save_npz` or `np.savez` of arrays) and is never unpickled."
        ) from None
    except (zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{str(path)!r} is not a readable .npz archive ({err}).") from None


def _read_npz(path: Path) -> RenderInput:
    with np.load(path, allow_pickle=False) as z:
        for key in NPZ_REQUIRED_KEYS:
            if key not in z.files:
                raise ValueError(
                    f"{str(path)!r} has no key {key!r}; a render input .npz needs {NPZ_REQUIRED_KEYS} (found "
                    f"{z.files})."
                )
        poses = np.asarray(z["poses"], dtype=np.float32)
        if poses.ndim != 2:
            raise ValueError(
                f"`poses` in {str(path)!r} must be 2-D (num_frames, feature_dim); got shape {poses.shape}."
            )
        fps = float(z["fps"])
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"`fps` in {str(path)!r} must be a positive number; got {fps}.")
        text = str(z["text"][()]) if "text" in z.files else ""
        gloss = [str(g) for g in z["gloss"].reshape(-1)] if "gloss" in z.files else []
        return RenderInput(poses, str(z["representation"][()]), fps, text, gloss)


def _load_dataset_row(path: Path, split: str, index: int) -> RenderInput:
    from ..data.io import load_corpus

    dd = load_corpus(path)
    if split not in dd:
        raise ValueError(f"`split`={split!r} not found in dataset {str(path)!r}; available splits are {sorted(dd)}.")
    ds = dd[split]
    if not (0 <= index < len(ds)):
        valid = f"0..{len(ds) - 1}" if len(ds) else "none, the split is empty"
        raise ValueError(
            f"`index`={index} out of range for split {split!r} of {str(path)!r} with {len(ds)} rows (valid: {valid})."
        )
    row = ds[int(index)]
    return RenderInput(
        features=np.asarray(row["poses"], dtype=np.float32),
        representation=str(row["representation"]),
        fps=float(row["fps"]),
        text=str(row.get("text") or ""),
        gloss=[str(g) for g in (row.get("gloss") or [])],
    )


def load_render_input(path: Union[str, Path], split: str = "test", index: int = 0) -> RenderInput:
    """Load one sequence from a dataset directory (`split`, `index`) or from a `.npz` (`save_npz`).

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: unknown split, index out of range, missing `.npz` key, or unsupported file type.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Render input {str(path)!r} does not exist.")
    if path.is_dir():
        return _load_dataset_row(path, split, index)
    if path.suffix == ".npz":
        return _load_npz(path)
    raise ValueError(f"Unsupported render input {str(path)!r}; expected a dataset directory or a .npz file.")


def _to_positions(x, spec: SkeletonSpec, field_name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 3 and arr.shape[1:] == (spec.num_position_joints, 3):
        return arr
    if arr.ndim == 2 and arr.shape[-1] == spec.feature_dim:
        return np.asarray(spec.to_positions(arr.astype(np.float32)))
    raise ValueError(
        f"`{field_name}` must be features (num_frames, {spec.feature_dim}) or positions "
        f"(num_frames, {spec.num_position_joints}, 3) for skeleton {spec.name!r}; got shape {arr.shape}."
    )


def render_to_file(
    features_or_positions,
    spec: SkeletonSpec,
    out_path: Union[str, Path],
    fps: float,
    reference=None,
    titles: Optional[Sequence[str]] = None,
    text: Optional[str] = None,
    size=(320, 320),
    view: str = "front",
    show_progress: Optional[bool] = None,
) -> Path:
    """Render a sequence to `.gif`/`.mp4` (stick figure) or export it to `.pose` or `.bvh`, by `out_path`'s extension.

    Args:
        features_or_positions: features `(T, spec.feature_dim)` (mapped with `spec.to_positions`) or
            positions `(T, J, 3)`.
        spec (`SkeletonSpec`): the sequence's skeleton.
        out_path (`str` or `Path`): output file ending in `.gif`, `.mp4`, `.pose` (MediaPipe Holistic layout,
            `hf_sign.render.pose_export`) or `.bvh` (`hf_sign.render.bvh_export`).
        fps (`float`): frame rate.
        reference (*optional*): a second sequence (features or positions, same skeleton) drawn in a panel to
            the left, e.g. the ground truth; videos only.
        titles (`Sequence[str]`, *optional*): panel titles; defaults to `["reference", "generated"]` with a
            reference and no title without one.
        text (`str`, *optional*): caption drawn under the figure(s) (videos only; `.pose` has no text field).
        size (`Tuple[int, int]`, defaults to `(320, 320)`): `(width, height)` of one panel.
        view (`str`, defaults to `"front"`): `"front"` or `"side"`.
        show_progress (`bool`, *optional*): progress bars; `None` turns them on for long sequences.

    Returns:
        `Path` of the written file.
    """
    out_path = Path(out_path)
    ext = out_path.suffix.lower()
    if ext not in OUTPUT_EXTENSIONS:
        raise ValueError(
            f"Unsupported output extension {ext or '(none)'!r} for {str(out_path)!r}; expected one of "
            f"{OUTPUT_EXTENSIONS}."
        )
    if ext in (".pose", ".bvh") and reference is not None:
        raise ValueError(
            f"`reference` cannot be written into a {ext} file; export it with its own render_to_file call."
        )
    if ext == ".bvh":  # features as they are: smplx133 rotations go into the BVH unchanged
        return save_bvh(features_or_positions, spec, out_path, fps)
    positions = _to_positions(features_or_positions, spec, "features_or_positions")
    if ext == ".pose":
        return save_pose(positions, spec, fps, out_path)
    if reference is not None:
        ref = _to_positions(reference, spec, "reference")
        frames = render_panels([ref, positions], spec, titles=list(titles or ["reference", "generated"]),
                               size=size, view=view, caption=text, show_progress=show_progress)
    else:
        title = titles[0] if titles else None
        frames = draw_frames(
            positions, spec, size=size, view=view, title=title, caption=text, show_progress=show_progress
        )
    return save_video(frames, out_path, fps, show_progress=show_progress)

"""Reading pose sequences made by any system, matched to a dataset split by sample id (`hf-sign evaluate`).

Accepted layouts (the file stem, or the key, is the sample id):

* a folder of one file per sample: `ID.pose` (pose-format, MediaPipe Holistic layout), `ID.npz` (key `poses`
  `(T, D)`; optional `fps` and `representation`, as `hf-sign generate --format npz` writes) or `ID.npy` (`(T, D)`);
* one `.npz` holding every sample: keys = ids, each a `(T, D)` array; optional scalar keys `fps` and
  `representation` apply to all;
* one Parquet file: an `id` column and a `poses` column (`T` lists of `D` numbers); optional `fps` and
  `representation` columns.

Frames are features in the dataset's skeleton layout. Sequences without an `fps` are taken to be at the dataset's
frame rate; others are resampled to it (linear for positions, nearest frame for rotations). A sequence in another
skeleton is converted when its position joints include every joint of the dataset's skeleton by name with the same
units (`holistic` -> `holistic_noface`); otherwise it is refused with an error naming both skeletons (`smplx133` <->
`holistic` would need a camera to turn metres into pixels one way and inverse kinematics the other way).

`.pose` files on a `holistic` / `holistic_noface` dataset are read as the corpus converter reads MediaPipe clips
(`hf_sign.data.pose_io`): gaps interpolated over time, keypoints never detected (confidence 0 everywhere, or absent
from the file's header, as in `spoken-to-signed`'s reduced output) placed on their nearest detected ancestor; the
count of such keypoints is reported per file.

`.pose` files on a dataset whose features are not positions (`smplx133`: joint rotations) cannot become features
(that would need inverse kinematics); they are read as that skeleton's metric joint positions instead
(`hf_sign.render.pose_export.pose_to_positions`: body joints from `POSE_WORLD_LANDMARKS`, hands through the inverse
of the pixel projection), `(T, J, 3)` with NaN at the joints a MediaPipe layout lacks (for `smplx133`: pelvis, spine,
neck, collars, head), gaps and never-detected points filled as above. Such a row is scored on the position metrics
only (`hf_sign.evaluation.harness.run_benchmark`). A file without `POSE_WORLD_LANDMARKS` (pixels only, e.g.
spoken-to-signed's output) is refused: pixels cannot be turned into metres without a camera. A source is either all
`.pose` or all feature files on such a dataset (one row is scored one way): a folder mixing them is refused; give
them as two `--predictions` sources. On position datasets `.pose` and feature files may share a folder.

Nothing is skipped silently: [`load_predictions`] returns every matched sequence and a report listing missing ids,
extra ids (no sample of the split), and unreadable or invalid files with the reason.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data.resample import resample_sequence
from ..skeletons.spec import SkeletonSpec, get_skeleton
from .conventions import position_units

__all__ = [
    "PER_SAMPLE_SUFFIXES",
    "PredictionsReport",
    "load_predictions",
    "read_pose_positions",
    "read_pose_prediction",
    "reads_pose_as_positions",
]

PER_SAMPLE_SUFFIXES = (".pose", ".npz", ".npy")


@dataclass
class PredictionsReport:
    """What was found in one predictions source (written to `predictions_report.json`)."""

    name: str
    source: str
    layout: str
    matched: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    extra: List[str] = field(default_factory=list)
    unreadable: Dict[str, str] = field(default_factory=dict)
    ignored_files: List[str] = field(default_factory=list)
    resampled: Dict[str, float] = field(default_factory=dict)
    converted: Dict[str, str] = field(default_factory=dict)
    filled_keypoints: Dict[str, int] = field(default_factory=dict)
    positions_only: bool = False


# ------------------------------------------------------------------------------------------------- .pose files
def read_pose_prediction(path, spec: SkeletonSpec) -> Tuple[np.ndarray, float, int]:
    """A MediaPipe-Holistic `.pose` file as `spec` features (`holistic` or `holistic_noface`).

    Returns:
        `(features (T, D) float32, fps, number of keypoints never detected or absent from the header)`.
    """
    from ..data.pose_io import HOLISTIC_COMPONENTS, pose_to_holistic, read_pose_file
    from ..skeletons.holistic import holistic_joint_table

    if spec.name not in ("holistic", "holistic_noface"):
        raise ValueError(
            f"{path}: a .pose prediction holds MediaPipe Holistic keypoints but the dataset's skeleton is "
            f"{spec.name!r}; .pose predictions need a 'holistic' or 'holistic_noface' dataset, or one whose features "
            "are not positions (read as its joint positions, e.g. 'smplx133')."
        )
    face = spec.name == "holistic"
    pose = read_pose_file(path)
    data = np.asarray(getattr(pose.body.data, "data", pose.body.data), dtype=np.float32)
    conf = np.asarray(getattr(pose.body.confidence, "data", pose.body.confidence), dtype=np.float32)
    # Points the header lacks are appended with confidence 0, so that they count as never detected.
    wanted: Dict[str, List[str]] = {}
    for _, component, point, _ in holistic_joint_table(face):
        if component is not None:
            wanted.setdefault(component, []).append(point)
    components, datas, confs, offset = [], [], [], 0
    for comp in pose.header.components:
        n = len(comp.points)
        extra = [p for p in wanted.get(comp.name, []) if p not in list(comp.points)]
        components.append(SimpleNamespace(name=comp.name, points=list(comp.points) + extra, format=comp.format))
        pad = (data.shape[0], data.shape[1], len(extra))
        datas += [data[:, :, offset : offset + n], np.zeros(pad + (data.shape[-1],), np.float32)]
        confs += [conf[:, :, offset : offset + n], np.zeros(pad, np.float32)]
        offset += n
    found = {c.name for c in components}
    if not found & set(HOLISTIC_COMPONENTS):
        raise ValueError(
            f"{path}: no MediaPipe Holistic component (found {sorted(found)}); expected {list(HOLISTIC_COMPONENTS)}."
        )
    for name in HOLISTIC_COMPONENTS:  # a whole component missing: all its points never detected
        if name not in found and name in wanted:
            components.append(SimpleNamespace(name=name, points=list(wanted[name]), format="XYZC"))
            pad = (data.shape[0], data.shape[1], len(wanted[name]))
            datas.append(np.zeros(pad + (data.shape[-1],), np.float32))
            confs.append(np.zeros(pad, np.float32))
    full = SimpleNamespace(
        header=SimpleNamespace(components=components),
        body=SimpleNamespace(data=np.concatenate(datas, axis=2), confidence=np.concatenate(confs, axis=2)),
    )
    features, confidence = pose_to_holistic(full, str(path), face=face, allow_missing=True)
    return features, float(pose.body.fps), int((confidence.max(axis=0) <= 0).sum())


def reads_pose_as_positions(spec: SkeletonSpec) -> bool:
    """Whether `.pose` predictions for a `spec` dataset are read as joint positions (features that are not
    positions, e.g. `smplx133` rotations) rather than as `spec` features (`holistic`)."""
    return spec.feature_kind != "position"


def read_pose_positions(path, spec: SkeletonSpec) -> Tuple[np.ndarray, float, int]:
    """A `.pose` file as `(T, J, 3)` positions of `spec`'s position joints, NaN at the joints it has no point for.

    Returns:
        `(positions float32, fps, number of mapped joints never present in the file)`.
    """
    from ..data.pose_io import fill_missing, read_pose_file
    from ..render.pose_export import POSE_WORLD, mediapipe_mapping, pose_to_positions

    joints = sorted({j for j, _, _ in mediapipe_mapping(spec)})
    if not joints:
        raise ValueError(
            f"{path}: skeleton {spec.name!r} has no joint with a MediaPipe Holistic point; a .pose prediction "
            "cannot be mapped to it."
        )
    pose = read_pose_file(path)
    found = [c.name for c in pose.header.components]
    if POSE_WORLD not in found:
        raise ValueError(
            f"{path}: a .pose prediction for the {spec.name!r} dataset (features {spec.feature_kind!r}, not "
            f"positions) is read as metric joint positions from its {POSE_WORLD!r} component, which this file "
            f"lacks (components {found}): pixel keypoints cannot be turned into metres without a camera. Write it "
            "with hf-sign (`hf-sign render ... --out FILE.pose`), or score it against a 'holistic' dataset."
        )
    positions = pose_to_positions(pose, spec)[:, joints]
    present = np.isfinite(positions).all(-1)
    # Parents inside the mapped joints: a joint's nearest ancestor that has a point (-1: none, e.g. the shoulders).
    local = {j: k for k, j in enumerate(joints)}
    parents = []
    for j in joints:
        p = spec.position_parents[j]
        while p >= 0 and p not in local:
            p = spec.position_parents[p]
        parents.append(local.get(p, -1))
    names = [spec.position_joint_names[j] for j in joints]
    filled = fill_missing(positions, present, parents, names, source=str(path), allow_missing=True)
    shoulders = [j for j in joints if spec.position_joint_names[j] in ("left_shoulder", "right_shoulder")]
    if position_units(spec)[0] == "m" and len(shoulders) == 2:  # pixels written as world points would score as metres
        width = float(
            np.median(np.linalg.norm(filled[:, local[shoulders[0]]] - filled[:, local[shoulders[1]]], axis=-1))
        )
        if not 0.05 <= width <= 2.0:
            raise ValueError(
                f"{path}: {POSE_WORLD!r} does not hold metres: the median shoulder distance is {width:.4g} (a "
                "signer's is about 0.3 m). Was the file written from pixel positions (a 'holistic' skeleton)? "
                "Score it against a 'holistic' dataset."
            )
    out = np.full((filled.shape[0], spec.num_position_joints, 3), np.nan, dtype=np.float32)
    out[:, joints] = filled
    return out, float(pose.body.fps), int((present.max(axis=0) <= 0).sum())


# ------------------------------------------------------------------------------------------------ conversion
def _to_dataset_skeleton(features: np.ndarray, representation: str, spec: SkeletonSpec, where: str) -> np.ndarray:
    """`features` of skeleton `representation` as `spec` features (same skeleton, or a position subset by name)."""
    try:
        src = get_skeleton(representation)
    except ValueError as err:
        raise ValueError(f"{where}: `representation` {representation!r} is not a registered skeleton: {err}") from None
    if src.feature_dim != features.shape[1]:
        raise ValueError(
            f"{where}: frames have {features.shape[1]} features but skeleton {src.name!r} has {src.feature_dim}."
        )
    names = list(src.position_joint_names)
    same_kind = src.feature_kind == spec.feature_kind == "position" and src.y_down == spec.y_down
    if not same_kind or not set(spec.position_joint_names) <= set(names):
        raise ValueError(
            f"{where}: the prediction's skeleton {src.name!r} cannot be converted to the dataset's {spec.name!r} "
            f"(a conversion needs position features with every {spec.name!r} joint, by name, in the same units). "
            "Score it against a dataset in its own skeleton, or export it in the dataset's skeleton first."
        )
    index = [names.index(n) for n in spec.position_joint_names]
    return features.reshape(features.shape[0], -1, 3)[:, index].reshape(features.shape[0], -1)


def _prepare(arr, fps: Optional[float], representation: Optional[str], spec, dataset_fps, where, report, sid):
    """Check one sequence, convert its skeleton and frame rate; raises `ValueError` naming `where`."""
    arr = np.asarray(arr)
    if report.positions_only:  # a .pose read as joint positions (read_pose_positions): NaN marks absent joints
        num_frames, num_joints = arr.shape[:2]
        if fps is not None and abs(float(fps) - float(dataset_fps)) > 1e-6:
            flat = resample_sequence(arr.reshape(num_frames, -1), float(fps), float(dataset_fps), kind="linear")
            arr = flat.reshape(flat.shape[0], num_joints, 3)
            report.resampled[sid] = float(fps)
        return arr.astype(np.float32)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{where}: poses must be numbers; got dtype {arr.dtype}.")
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"{where}: poses must have shape (num_frames >= 1, {spec.feature_dim}); got {arr.shape}.")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{where}: NaN or inf values in {int(bad.sum())} frame(s), the first at frame {int(np.argmax(bad))}."
        )
    arr = arr.astype(np.float32)
    if representation and representation != spec.name:
        arr = _to_dataset_skeleton(arr, representation, spec, where)
        report.converted[sid] = f"{representation} -> {spec.name}"
    elif arr.shape[1] != spec.feature_dim:
        raise ValueError(
            f"{where}: wrong frame width: {arr.shape[1]} features per frame, but the dataset's skeleton "
            f"{spec.name!r} has {spec.feature_dim}."
        )
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise ValueError(f"{where}: `fps` must be a positive number; got {fps}.")
    if fps is not None and abs(float(fps) - float(dataset_fps)) > 1e-6:
        kind = "linear" if spec.feature_kind == "position" else "nearest"
        arr = resample_sequence(arr, float(fps), float(dataset_fps), kind=kind)
        report.resampled[sid] = float(fps)
    return arr


def _scalar(z, key, cast):
    return cast(z[key][()]) if key in z.files else None


def _read_one(path: Path, spec: SkeletonSpec, report: PredictionsReport, sid: str):
    """(array, fps, representation) of one per-sample file."""
    if path.suffix == ".pose":
        read = read_pose_positions if report.positions_only else read_pose_prediction
        features, fps, filled = read(path, spec)
        if filled:
            report.filled_keypoints[sid] = filled
        return features, fps, None
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False), None, None
    with np.load(path, allow_pickle=False) as z:
        if "poses" not in z.files:
            raise ValueError(f"{path}: no key 'poses' (found {z.files}); a per-sample .npz holds `poses` (T, D).")
        return np.asarray(z["poses"]), _scalar(z, "fps", float), _scalar(z, "representation", str)


def _entries(source: Path):
    """(layout, {id: loader}) of a folder, an all-in-one .npz or a Parquet file; loaders return (arr, fps, rep)."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file() and not p.name.startswith("."))
        entries, ignored, seen = {}, [], {}
        for p in files:
            if p.suffix not in PER_SAMPLE_SUFFIXES:
                ignored.append(p.name)
                continue
            if p.stem in seen:
                raise ValueError(f"{source}: sample id {p.stem!r} has two files ({seen[p.stem]} and {p.name}).")
            seen[p.stem] = p.name
            entries[p.stem] = p
        if not entries:
            raise ValueError(
                f"{source}: no prediction files (*.pose, *.npz, *.npy, one per sample, named by sample id) in the "
                f"folder{f'; found only {ignored[:5]}' if ignored else ' (it is empty)'}."
            )
        return "folder", entries, ignored
    if source.suffix == ".npz":
        try:
            with np.load(source, allow_pickle=False) as z:
                fps, rep = _scalar(z, "fps", float), _scalar(z, "representation", str)
                entries = {k: (np.asarray(z[k]), fps, rep) for k in z.files if k not in ("fps", "representation")}
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(f"{source}: cannot read the predictions .npz ({type(err).__name__}: {err}).") from err
        return "npz", entries, []
    if source.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(source).to_pylist()
        if not table or "id" not in table[0] or "poses" not in table[0]:
            raise ValueError(f"{source}: a predictions Parquet file needs the columns 'id' and 'poses', one row each.")
        entries = {}
        for row in table:
            poses = row["poses"]
            entries[str(row["id"])] = (
                np.array(poses, dtype=np.float64) if poses else np.zeros((0, 0)),
                row.get("fps"),
                row.get("representation"),
            )
        return "parquet", entries, []
    raise ValueError(
        f"`--predictions` {str(source)!r} must be a folder of per-sample .pose/.npz/.npy files, one .npz or one "
        ".parquet file."
    )


def load_predictions(
    source, name: str, ids: Sequence[str], spec: SkeletonSpec, fps: float
) -> Tuple[Dict[str, np.ndarray], PredictionsReport]:
    """Every readable prediction of `source` whose id is in `ids`, as `(T, spec.feature_dim)` float32 at `fps`.

    Args:
        source (`str` or `Path`): folder, `.npz` or `.parquet` (see the module docstring).
        name (`str`): the row name (for messages).
        ids (`Sequence[str]`): the split's sample ids.
        spec (`SkeletonSpec`): the dataset's skeleton.
        fps (`float`): the dataset's frame rate.

    Returns:
        `(sequences by id, PredictionsReport)`; files that fail to read or check are in `report.unreadable`.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"`--predictions` {str(source)!r} does not exist.")
    layout, entries, ignored = _entries(source)
    report = PredictionsReport(name=name, source=str(source), layout=layout, ignored_files=ignored)
    poses = [k for k, e in entries.items() if isinstance(e, Path) and e.suffix == ".pose"]
    if poses and reads_pose_as_positions(spec):
        others = sorted(k for k in entries if k not in set(poses))
        if others:
            raise ValueError(
                f"`--predictions` {str(source)!r} mixes .pose files ({len(poses)}, e.g. {sorted(poses)[:3]}) with "
                f"feature files ({len(others)}, e.g. {others[:3]}): on a {spec.name!r} dataset .pose files are scored "
                "as joint positions only and feature files on every metric, so one row cannot hold both. Put them in "
                "two folders, given as two `--predictions` sources."
            )
        report.positions_only = True
    wanted = [str(i) for i in ids]
    known = set(wanted)
    report.extra = sorted(k for k in entries if k not in known)
    if not any(k in known for k in entries):
        raise ValueError(
            f"`--predictions` {str(source)!r}: none of its {len(entries)} ids matches a sample of the split (e.g. "
            f"{sorted(entries)[:3]} vs the split's {wanted[:3]}); files are matched by sample id (file stem or key)."
        )
    out: Dict[str, np.ndarray] = {}
    for sid in wanted:
        if sid not in entries:
            report.missing.append(sid)
            continue
        entry = entries[sid]
        where = str(entry) if isinstance(entry, Path) else f"{source} [{sid}]"
        try:
            arr, seq_fps, rep = _read_one(entry, spec, report, sid) if isinstance(entry, Path) else entry
            out[sid] = _prepare(arr, seq_fps, rep, spec, fps, where, report, sid)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:  # corrupt or truncated files
            reason = str(err) if isinstance(err, ValueError) else f"{where}: {type(err).__name__}: {err}"
            report.unreadable[sid] = reason
    report.matched = list(out)
    return out, report

"""Scoring of the benchmark (`hf_sign.evaluation.harness`): the evaluator models it scores with and [`PoseScorer`].

* [`prepare_evaluators`]: the folder holding `recognizer/` and `contrastive/`, given, reused from an earlier run on
  the same dataset, or trained there through the `train_evaluators` callable the caller passes (evaluation never
  imports training, DESIGN.md).
* [`load_evaluators`]: both evaluator models from that folder, as an [`Evaluators`].
* [`PoseScorer`]: every metric of the benchmark (back-translation, DTW-JPE, MPJPE, FID, SiCLIP, SiBLEU) of generated
  poses against one fixed set of references, with the reference positions and embeddings computed once.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ..skeletons.spec import SkeletonSpec
from .conventions import DEFAULT_CONVENTIONS, convention_metrics, parse_conventions, position_units
from .metrics import back_translation, dtw_jpe, fid, mpjpe, sibleu, siclip_retrieval

logger = logging.getLogger(__name__)

__all__ = [
    "FEATURE_METRICS",
    "Evaluators",
    "PoseScorer",
    "load_evaluators",
    "position_view",
    "prepare_evaluators",
]


# ------------------------------------------------------------------------------------------ evaluators
@dataclass
class Evaluators:
    """The two evaluator models and where they came from."""

    recognizer: Any
    contrastive: Any
    directory: Path
    trained_here: bool = False


def prepare_evaluators(
    dataset: Union[str, os.PathLike],
    evaluator_dir: Optional[Union[str, os.PathLike]],
    out_dir: Union[str, os.PathLike],
    config: str = "default",
    seed: int = 0,
    train_evaluators: Optional[Callable[..., Any]] = None,
) -> tuple:
    """Folder holding `recognizer/` and `contrastive/`: `evaluator_dir`, or `out_dir/evaluators` (reused when a
    previous run on the same dataset left them, else trained there with
    `train_evaluators(dataset, out_dir/evaluators, config=config, seed=seed)`). Returns `(path, trained_here)`.

    `train_evaluators` is a callable with the signature of `hf_sign.training.evaluator_trainer.train_evaluators`;
    without it and without evaluators to use, a `ValueError` says how to get them."""
    if evaluator_dir is not None:
        path = Path(evaluator_dir)
        for sub in ("recognizer", "contrastive"):
            if not (path / sub / "config.json").is_file():
                raise ValueError(
                    f"`evaluator_dir` {str(path)!r} has no {sub}/config.json; train the evaluators with "
                    "`hf-sign train evaluator --dataset DIR --output-dir DIR` (train_evaluators) first."
                )
        return path, False
    if not isinstance(dataset, (str, os.PathLike)):
        raise ValueError(
            "`evaluator_dir` is required when `dataset` is an in-memory DatasetDict (evaluators train from a folder)."
        )
    path = Path(out_dir) / "evaluators"
    if all((path / sub / "config.json").is_file() for sub in ("recognizer", "contrastive")):
        args_file = path / "evaluator_training_args.json"
        trained_on = (
            json.loads(args_file.read_text(encoding="utf-8")).get("dataset_dir") if args_file.is_file() else None
        )
        if trained_on is not None and os.path.abspath(str(trained_on)) != os.path.abspath(str(dataset)):
            raise ValueError(
                f"{path} holds evaluators trained on {trained_on!r}, not on `dataset` {str(dataset)!r}; "
                "pass `evaluator_dir` or use another `out_dir`."
            )
        logger.info("Reusing the evaluators in %s", path)
        return path, False
    if train_evaluators is None:
        raise ValueError(
            f"No `evaluator_dir` and no evaluators in {str(path)!r}: pass `evaluator_dir` (trained with "
            "`hf-sign train evaluator --dataset DIR --output-dir DIR`) or a `train_evaluators` callable "
            "(hf_sign.training.evaluator_trainer.train_evaluators); `hf-sign benchmark` without `--evaluator` does "
            "the latter."
        )
    if not callable(train_evaluators):
        raise ValueError(f"`train_evaluators` must be callable; got {type(train_evaluators).__name__}.")
    logger.warning("No `evaluator_dir`: training the evaluators (config %r, seed %d) into %s", config, seed, path)
    train_evaluators(str(dataset), str(path), config=config, seed=seed)
    return path, True


def load_evaluators(
    evaluator_dir: Union[str, os.PathLike], device: Optional[Union[str, torch.device]] = None
) -> Evaluators:
    """Load `recognizer/` and `contrastive/` from `evaluator_dir` with `AutoModel`, in eval mode on `device`."""
    from transformers import AutoModel

    from . import evaluators as _registered  # noqa: F401 - registers the hf_sign_* model types

    path = Path(evaluator_dir)
    models = {}
    for sub in ("recognizer", "contrastive"):
        if not (path / sub / "config.json").is_file():
            raise ValueError(f"`evaluator_dir` {str(path)!r} has no {sub}/config.json.")
        models[sub] = AutoModel.from_pretrained(str(path / sub)).eval()
        if device is not None:
            models[sub].to(device)
    return Evaluators(models["recognizer"], models["contrastive"], path)

# --------------------------------------------------------------------------------------------- scoring
def _positions(spec: SkeletonSpec, poses: Sequence[np.ndarray]) -> List[np.ndarray]:
    """Positions of many sequences with one forward-kinematics call (much faster than one call each)."""
    lengths = np.cumsum([0] + [p.shape[0] for p in poses])
    flat = np.asarray(spec.to_positions(np.concatenate(poses).astype(np.float32)), dtype=np.float32)
    return [flat[a:b] for a, b in zip(lengths[:-1], lengths[1:])]


# Metrics that read the skeleton's features (evaluator models, sign tokens): "–" for rows of joint positions.
FEATURE_METRICS = (
    "bleu1",
    "bleu2",
    "bleu3",
    "bleu4",
    "rouge_l",
    "fid",
    "siclip_r1",
    "siclip_r5",
    "siclip_median_rank",
    "sibleu",
)


def position_view(spec: SkeletonSpec, predictions: Sequence[np.ndarray]) -> Dict[str, Any]:
    """The joints and groups a row of joint positions is scored on (`PoseScorer.score(..., positions_only=True)`).

    The joints are those finite in every frame of every prediction (a `.pose` file has no pelvis, spine, neck,
    collars or head for `smplx133`). Positions are taken as `(T, len(joints) + 1, 3)`: the kept joints, then the
    shoulders' midpoint, the body's root (the pelvis is missing); each hand stays relative to its wrist.

    Returns:
        `dict`: `joints` (position-joint indices kept), `groups` (`dtw_jpe` / `mpjpe` keyword arguments in the
        taken layout), `wrists` and `shoulders` (indices in the taken layout).
    """
    have = np.logical_and.reduce([np.isfinite(p).all(axis=(0, 2)) for p in predictions])
    joints = [j for j in range(spec.num_position_joints) if have[j]]
    local = {j: k for k, j in enumerate(joints)}
    names = list(spec.position_joint_names)
    anchors = {key: names.index(key) if key in names else None for key in ("left_shoulder", "right_shoulder")}
    anchors.update({"left wrist": spec.wrist_indices[0], "right wrist": spec.wrist_indices[1]})
    lacking = [key for key, j in anchors.items() if j not in local]
    if lacking:
        raise ValueError(
            f"Joint positions of skeleton {spec.name!r} lack {lacking} in some frame; a row of joint positions is "
            "aligned on the shoulders' midpoint (body) and the wrists (hands), which every frame needs."
        )

    def part(name):
        kept = [local[j] for j in spec.position_parts.get(name, ()) if j in local]
        return kept or None

    groups = {
        "body_joints": part("body"),
        "left_hand_joints": part("left_hand"),
        "right_hand_joints": part("right_hand"),
        "root_index": len(joints),
        "wrist_indices": (local[anchors["left wrist"]], local[anchors["right wrist"]]),
    }
    shoulders = (local[anchors["left_shoulder"]], local[anchors["right_shoulder"]])
    return {"joints": joints, "groups": groups, "wrists": groups["wrist_indices"], "shoulders": shoulders}


def _take(seq: np.ndarray, view: Dict[str, Any]) -> np.ndarray:
    """The kept joints of `seq` and, last, the shoulders' midpoint (the root of `position_view`)."""
    kept = np.asarray(seq, dtype=np.float32)[:, view["joints"]]
    return np.concatenate([kept, kept[:, list(view["shoulders"])].mean(axis=1, keepdims=True)], axis=1)


def _bt_reference(row: Mapping[str, Any], target: str) -> str:
    from .evaluators.layers import word_tokens

    if target == "gloss":
        if not row["gloss"]:
            raise ValueError(
                f"Sample {row['id']!r} has an empty `gloss`; the recogniser transcribes glosses (target='gloss')."
            )
        return " ".join(row["gloss"])
    return " ".join(word_tokens(row["text"]))


class PoseScorer:
    """Every metric of the benchmark against one fixed set of references (cached positions and embeddings).

    Args:
        references (`List[np.ndarray]`): reference feature sequences `(T_i, D)` in dataset units.
        texts (`List[str]`): the samples' texts (SiCLIP targets).
        glosses (`List[List[str]]`): the samples' gloss sequences (back-translation references).
        spec (`SkeletonSpec`): skeleton of the features (`to_positions`, joint groups).
        evaluators ([`Evaluators`]): recogniser + contrastive model.
        batch_size (`int`, *optional*, defaults to 32): evaluator batch size.
        ids (`List[str]`, *optional*): sample ids for messages.
        fps (`float`, *optional*): frame rate of the references and predictions (SLRTP's 12 fps); default `spec.fps`.
        conventions (`Sequence[str]`, *optional*, defaults to `("soke",)`): pose-error conventions of
            `hf_sign.evaluation.conventions` computed besides the harness' own DTW-JPE (SOKE) and MPJPE.
    """

    def __init__(
        self,
        references,
        texts,
        glosses,
        spec: SkeletonSpec,
        evaluators: Evaluators,
        batch_size: int = 32,
        ids=None,
        fps: Optional[float] = None,
        conventions: Sequence[str] = DEFAULT_CONVENTIONS,
    ):
        n = len(references)
        for field_name, values in (("texts", texts), ("glosses", glosses)):
            if len(values) != n:
                raise ValueError(
                    f"`{field_name}` has {len(values)} entries but `references` has {n}; they must pair up."
                )
        if n == 0:
            raise ValueError("`references` is empty; the benchmark needs at least one sample.")
        self.references = [np.asarray(r, dtype=np.float32) for r in references]
        self.ids = list(ids) if ids is not None else [str(i) for i in range(n)]
        self.spec, self.ev, self.batch_size = spec, evaluators, batch_size
        self.fps = float(fps if fps is not None else spec.fps)
        self.conventions = parse_conventions(conventions)
        # "mm" columns hold small units per position unit: millimetres for metric skeletons, pixels stay pixels
        self.small_units = position_units(spec)[2]
        target = getattr(evaluators.recognizer.config, "target", "gloss")
        rows = [{"id": i, "text": t, "gloss": list(g)} for i, t, g in zip(self.ids, texts, glosses)]
        self.bt_references = [_bt_reference(r, target) for r in rows]
        self.ref_positions = _positions(spec, self.references)
        self.ref_embeddings = self._pose_embeddings(self.references)
        # SiCLIP candidates: the distinct texts of the split (repeated sentences are one candidate)
        first: Dict[str, int] = {}
        for i, t in enumerate(texts):
            first.setdefault(t, i)
        self.candidate_texts = list(first)
        index = {t: j for j, t in enumerate(self.candidate_texts)}
        self.targets = np.array([index[t] for t in texts], dtype=np.int64)
        self.text_embeddings = evaluators.contrastive.get_text_embeddings(self.candidate_texts).numpy()

    def _pose_embeddings(self, poses) -> np.ndarray:
        return self.ev.contrastive.get_pose_embeddings(list(poses), batch_size=self.batch_size).numpy()

    def score(
        self, predictions: Sequence[np.ndarray], sign_tokens=None, reference_tokens=None, positions_only: bool = False
    ) -> tuple:
        """Metrics of `predictions` (one sequence per reference). Returns `(metrics, per_sample, positions)`.

        `predictions` are `(T, D)` features, or with `positions_only=True` `(T, J, 3)` positions of the skeleton's
        position joints with NaN at joints they lack (`.pose` files on `smplx133`). Those are scored on the position
        metrics over the joints they have ([`position_view`]: body relative to the shoulders' midpoint, hands to their
        wrists), against the references' positions of the same joints; the `FEATURE_METRICS` are `None`.
        """
        if len(predictions) != len(self.references):
            raise ValueError(
                f"`predictions` has {len(predictions)} sequences but `references` has {len(self.references)}; they "
                "must pair up."
            )
        preds = [np.asarray(p, dtype=np.float32) for p in predictions]
        m: Dict[str, Any] = {}
        small = self.small_units
        # 1. positions and the joints scored: every position joint, or those a row of positions has
        if positions_only:
            pos = preds
            view = position_view(self.spec, pos)
            p_sel, r_sel = [_take(p, view) for p in pos], [_take(r, view) for r in self.ref_positions]
            groups, wrists, shoulders = view["groups"], view["wrists"], view["shoulders"]
            unaligned_p, unaligned_r = [p[:, :-1] for p in p_sel], [r[:, :-1] for r in r_sel]  # without the midpoint
            m.update({k: None for k in FEATURE_METRICS}, positions_only=True, num_position_joints=len(view["joints"]))
            hyps = [None] * len(preds)
        else:
            pos = _positions(self.spec, preds)
            p_sel, r_sel = unaligned_p, unaligned_r = pos, self.ref_positions
            groups, wrists, shoulders = {"skeleton": self.spec}, None, None
            hyps = self.ev.recognizer.generate(preds, batch_size=self.batch_size)
            m.update(back_translation(hyps, self.bt_references, tokenize="none"))
        # 2. pose errors: DTW-JPE (SOKE), MPJPE and the other conventions
        dtw = dtw_jpe(p_sel, r_sel, **groups, per_sample=True, units="m")
        mp = mpjpe(p_sel, r_sel, **groups, scale=small, units="mm", per_sample=True)
        for g in ("body", "hands"):
            m[f"dtw_jpe_{g}"] = small * dtw[f"dtw_jpe_{g}_normalized"]
            m[f"dtw_jpe_{g}_sum"] = dtw[f"dtw_jpe_{g}"]
            m[f"mpjpe_{g}"] = mp[f"mpjpe_{g}"]
        conv = convention_metrics(
            self.conventions, unaligned_p, unaligned_r, self.spec, self.fps, wrist_indices=wrists, shoulders=shoulders
        )
        m.update({k: v for k, v in conv.items() if not k.endswith("_per_sample")})
        # 3. distribution and semantics: the evaluators read features
        if not positions_only:
            emb = self._pose_embeddings(preds)
            m["fid"] = fid(emb, self.ref_embeddings) if len(preds) >= 2 else None
            sim = emb @ self.text_embeddings.T
            ret = siclip_retrieval(similarity=sim, targets=self.targets, ks=(1, 5))
            m.update({k: ret[k] for k in ("siclip_r1", "siclip_r5", "siclip_median_rank")})
            m["sibleu"] = None
            if sign_tokens is not None and reference_tokens is not None:
                sb = sibleu(sign_tokens, reference_tokens)
                m["sibleu"] = sb["sibleu"]
                m.update({k: v for k, v in sb.items() if k != "sibleu"})
        lengths = [p.shape[0] for p in preds]
        m["mean_num_frames"] = float(np.mean(lengths))
        per_sample = [
            {
                "id": sid,
                "reference_gloss": ref,
                "hypothesis_gloss": hyp,
                "dtw_jpe_body_mm": small * dtw["dtw_jpe_body_normalized_per_sample"][i],
                "dtw_jpe_hands_mm": small * dtw["dtw_jpe_hands_normalized_per_sample"][i],
                "dtw_jpe_body_sum_m": dtw["dtw_jpe_body_per_sample"][i],
                "dtw_jpe_hands_sum_m": dtw["dtw_jpe_hands_per_sample"][i],
                "mpjpe_body_mm": mp["mpjpe_body_per_sample"][i],
                "mpjpe_hands_mm": mp["mpjpe_hands_per_sample"][i],
                "num_frames_generated": lengths[i],
                "num_frames_reference": int(self.references[i].shape[0]),
                **{k[: -len("_per_sample")]: v[i] for k, v in conv.items() if k.endswith("_per_sample")},
            }
            for i, (sid, ref, hyp) in enumerate(zip(self.ids, self.bt_references, hyps))
        ]
        return m, per_sample, pos

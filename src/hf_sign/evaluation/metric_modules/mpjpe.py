"""MPJPE as an `evaluate` metric; a thin wrapper of `hf_sign.evaluation.metrics.mpjpe`.

Load it offline with `evaluate.load("<path>/mpjpe.py")`.
"""

import datasets
import evaluate

from hf_sign.evaluation.metrics import mpjpe

_CITATION = """\
@article{ionescu2014human36m,
  title={Human3.6M: Large Scale Datasets and Predictive Methods for 3D Human Sensing in Natural Environments},
  author={Ionescu, Catalin and Papava, Dragos and Olaru, Vlad and Sminchisescu, Cristian},
  journal={IEEE TPAMI},
  year={2014}
}
"""

_DESCRIPTION = """\
Mean per-joint position error between generated and reference joint positions after aligning the
sequence lengths (linear time resampling of the prediction by default), with the body translated to its
root and each hand to its wrist; body and hands reported separately. Units are those of the positions
(metres for `smplx133`) times `scale`.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of arrays `(T1, J, 3)`): generated joint positions. Feature encoding: nested
        `datasets.Sequence` of float64, frames -> joints -> coordinates.
    references (`list` of arrays `(T2, J, 3)`): ground-truth joint positions, same `J`.
    skeleton (`str` or `SkeletonSpec`, *optional*): e.g. `"smplx133"`, or explicit `body_joints`,
        `left_hand_joints`, `right_hand_joints`, `root_index`, `wrist_indices`.
    align (`str`, *optional*, defaults to `"resample"`): `"resample"` (prediction resampled to the
        reference length), `"truncate"` (both cut to the shorter) or `"none"` (lengths must match).
    scale (`float`, *optional*, defaults to 1.0): multiplies distances (1000 for metres -> millimetres).
    units (`str`, *optional*): name of the resulting units.
    per_sample (`bool`, *optional*, defaults to `False`): also return per-pair values.
Returns:
    `mpjpe_body`, `mpjpe_hands`, `mpjpe_left_hand`, `mpjpe_right_hand` (mean over pairs), `units`, `alignment`.
Examples:
    >>> metric = evaluate.load("src/hf_sign/evaluation/metric_modules/mpjpe.py")
    >>> results = metric.compute(predictions=generated, references=ground_truth, skeleton="smplx133")
"""

_POSES = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float64"))))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MPJPE(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _POSES, "references": _POSES}),
        )

    def _compute(self, predictions, references, **kwargs):
        return mpjpe(predictions, references, **kwargs)

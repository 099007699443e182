"""DTW-JPE (SOKE) as an `evaluate` metric; a thin wrapper of `hf_sign.evaluation.metrics.dtw_jpe`.

Load it offline with `evaluate.load("<path>/dtw_jpe.py")`.
"""

import datasets
import evaluate

from hf_sign.evaluation.metrics import dtw_jpe

_CITATION = """\
@inproceedings{zuo2025soke,
  title={Signs as Tokens: A Retrieval-Enhanced Multilingual Sign Language Generator},
  author={Zuo, Ronglai and Potamias, Rolandos Alexandros and Ververas, Evangelos and Deng, Jiankang and
          Zafeiriou, Stefanos},
  booktitle={ICCV},
  year={2025}
}
"""

_DESCRIPTION = """\
DTW joint position error: per-frame mean Euclidean joint error after translating the body to its root
and each hand to its wrist, summed along the optimal plain-DTW alignment of the generated and reference
sequences (exact batched DTW). Body and hands are reported separately, with a length-normalised variant.
Units are those of the positions (metres for `smplx133`) times `scale`.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of arrays `(T1, J, 3)`): generated joint positions, one sequence per sample.
        Feature encoding: nested `datasets.Sequence` of float64, frames -> joints -> coordinates (evaluate
        has no ragged 3-D array feature); numpy arrays, torch tensors and nested lists are accepted.
    references (`list` of arrays `(T2, J, 3)`): ground-truth joint positions, same `J`.
    skeleton (`str` or `SkeletonSpec`, *optional*): e.g. `"smplx133"`; gives the body/hand joints, the root
        and the wrists. Or pass `body_joints`, `left_hand_joints`, `right_hand_joints`, `root_index`,
        `wrist_indices` explicitly.
    normalize (`str`, *optional*, defaults to `"path"`): `"path"` (divide by the optimal path's length),
        `"reference"` (by the reference length) or `"none"`.
    scale (`float`, *optional*, defaults to 1.0): multiplies distances (1000 for metres -> millimetres).
    units (`str`, *optional*): name of the resulting units.
    per_sample (`bool`, *optional*, defaults to `False`): also return per-pair values.
    device (`str`, *optional*): run on e.g. `"cuda"`.
Returns:
    `dtw_jpe_body`, `dtw_jpe_hands`, `dtw_jpe_left_hand`, `dtw_jpe_right_hand` (mean over pairs of the DTW
    path sums), the same with `_normalized`, `units` and `normalization`.
Examples:
    >>> metric = evaluate.load("src/hf_sign/evaluation/metric_modules/dtw_jpe.py")
    >>> results = metric.compute(
    ...     predictions=generated, references=ground_truth, skeleton="smplx133", scale=1000, units="mm"
    ... )
"""

_POSES = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float64"))))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DTWJPE(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _POSES, "references": _POSES}),
            reference_urls=["https://arxiv.org/abs/2411.17799"],
        )

    def _compute(self, predictions, references, **kwargs):
        return dtw_jpe(predictions, references, **kwargs)

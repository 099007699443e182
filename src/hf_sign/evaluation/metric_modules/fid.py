"""FID over evaluator embeddings as an `evaluate` metric; a thin wrapper of `hf_sign.evaluation.metrics.fid`.

Load it offline with `evaluate.load("<path>/fid.py")`.
"""

import datasets
import evaluate

from hf_sign.evaluation.metrics import fid

_CITATION = """\
@inproceedings{heusel2017gans,
  title={GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium},
  author={Heusel, Martin and Ramsauer, Hubert and Unterthiner, Thomas and Nessler, Bernhard and Hochreiter, Sepp},
  booktitle={NeurIPS},
  year={2017}
}
"""

_DESCRIPTION = """\
Frechet distance between Gaussians fitted to the evaluator embeddings of generated and of reference pose
sequences (mean and unbiased covariance), computed with symmetric eigen-decompositions for stability.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of `D`-dim vectors): embeddings of generated sequences (at least 2).
    references (`list` of `D`-dim vectors): embeddings of reference sequences, same `D`. `evaluate` stores
        predictions and references as pairs, so this module needs as many of each; the plain function
        `hf_sign.evaluation.metrics.fid` accepts sets of different sizes.
Returns:
    `fid` (`float`): squared embedding units, 0 for identical sets.
Examples:
    >>> metric = evaluate.load("src/hf_sign/evaluation/metric_modules/fid.py")
    >>> metric.compute(predictions=generated_embeddings, references=real_embeddings)
"""

_VECTOR = datasets.Sequence(datasets.Value("float64"))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FID(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _VECTOR, "references": _VECTOR}),
        )

    def _compute(self, predictions, references):
        return {"fid": fid(predictions, references)}

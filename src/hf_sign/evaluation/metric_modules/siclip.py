"""SiCLIP sign-to-text retrieval (MaDiS) as an `evaluate` metric; a thin wrapper of
`hf_sign.evaluation.metrics.siclip_retrieval`.

Load it offline with `evaluate.load("<path>/siclip.py")`.
"""

import datasets
import evaluate

from hf_sign.evaluation.metrics import siclip_retrieval

_CITATION = """\
@article{madis2026,
  title={MaDiS: Masked Diffusion Language Model for Sign Language Generation},
  year={2026}
}
"""

_DESCRIPTION = """\
SiCLIP: sign-to-text retrieval with a contrastive (CLIP-style) evaluator trained on ground-truth pairs.
R@k is the percentage of generated signs whose own text is among the k most similar texts (ties count
against the sign); 0-100.
"""

_KWARGS_DESCRIPTION = """\
Two input layouts (the first example decides):
    1. predictions: sign embeddings (`D` floats each), references: the paired text embeddings (`D` floats);
       similarity is the cosine, sign i's text is row i.
    2. predictions: rows of a sign-by-text similarity matrix (`M` floats each), references: the index of
       each sign's own text (`int`).
Args:
    ks (`list` of `int`, *optional*, defaults to `(1, 5)`): cut-offs to report.
Returns:
    `siclip_r1`, `siclip_r5` (0-100), `siclip_median_rank`, `siclip_mean_rank`.
Examples:
    >>> metric = evaluate.load("src/hf_sign/evaluation/metric_modules/siclip.py")
    >>> metric.compute(predictions=sign_embeddings, references=text_embeddings)["siclip_r1"]
"""

_VECTOR = datasets.Sequence(datasets.Value("float64"))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SiCLIP(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": _VECTOR, "references": datasets.Value("int64")}),
                datasets.Features({"predictions": _VECTOR, "references": _VECTOR}),
            ],
        )

    def _compute(self, predictions, references, ks=(1, 5)):
        if len(references) and isinstance(references[0], int):
            return siclip_retrieval(similarity=predictions, targets=references, ks=ks)
        return siclip_retrieval(predictions, references, ks=ks)

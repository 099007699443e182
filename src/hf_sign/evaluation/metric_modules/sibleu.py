"""SiBLEU (MaDiS) as an `evaluate` metric; a thin wrapper of `hf_sign.evaluation.metrics.sibleu`.

Load it offline with `evaluate.load("<path>/sibleu.py")`.
"""

import datasets
import evaluate

from hf_sign.evaluation.metrics import sibleu

_CITATION = """\
@article{madis2026,
  title={MaDiS: Masked Diffusion Language Model for Sign Language Generation},
  year={2026}
}
"""

_DESCRIPTION = """\
SiBLEU: corpus BLEU (default BLEU-4) between generated and ground-truth sign-token ids, computed per body
part tokenizer (upper body, left hand, right hand) and averaged; 0-100.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of `list` of `list` of `int`): per sample, one token-id list per part, in the
        order of `part_names` (feature: `datasets.Sequence(datasets.Sequence(int64))`, parts -> tokens).
    references: ground-truth tokens in the same layout (non-empty per part).
    part_names (`list` of `str`, *optional*): part names; defaults to body, left_hand, right_hand for
        three parts and part0, part1, ... otherwise.
    max_order (`int`, *optional*, defaults to 4): BLEU order.
    smooth_method (`str`, *optional*, defaults to `"none"`): sacrebleu BLEU smoothing.
Returns:
    `sibleu_<part>` per part, `sibleu_hands` (mean of both hands) and `sibleu` (mean over parts).
Examples:
    >>> metric = evaluate.load("src/hf_sign/evaluation/metric_modules/sibleu.py")
    >>> metric.compute(predictions=[[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]],
    ...                references=[[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]])["sibleu"]
    100.0
"""

_TOKENS = datasets.Sequence(datasets.Sequence(datasets.Value("int64")))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SiBLEU(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _TOKENS, "references": _TOKENS}),
        )

    def _compute(self, predictions, references, **kwargs):
        return sibleu(predictions, references, **kwargs)
